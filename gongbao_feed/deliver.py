"""Delivering: one issue to its members, through a transport, by way of the ledger.

The send loop is the same for every transport and every sender: claim the
next members (ledger.py), make each one's message just in time (so an
unsubscribe during a send counts at once), hand the messages to the
transport, settle each claim from the transport's report. Several senders,
in other processes or on other machines, run this same loop on the same
issue; the ledger's claims keep them apart.

`make_transport` is the one place that picks a concrete transport from the
config; the interface they share is in transport.py, so neither the outbox
nor SMTP imports this module.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .config import Config
from .errors import DeliveryError
from .i18n import _
from .ledger import Ledger
from .mail import Message
from .models import DeliveryState, Member
from .outbox import OutboxTransport
from .smtp import SmtpTransport
from .transport import Outcome, Transport

#: Members claimed at a time: small enough that a stop gives few back, large
#: enough that a claim's round trip to the database is a small share of a send.
CLAIM_SIZE = 100


@dataclass
class SendReport:
    """What one `send` did; `to_json` is the shape `send --json` promises.

    `error` is set when the send stopped on a fatal error (the relay refused
    the login, the database went away): the counts are what it did before.
    """

    issue: int
    sent: int = 0
    skipped: int = 0  # already settled when this sender began, or unsubscribed mid-send
    failed: list[tuple[str, str]] = field(default_factory=list)  # (address, why)
    dry_run: bool = False
    would_send: list[tuple[str, str]] = field(default_factory=list)  # (address, name)
    subject: str = ""
    shortened: int = 0  # articles the size budget showed in part
    error: str | None = None
    active: int | None = None  # active members when the send began; None for a test copy

    @property
    def ok(self) -> bool:
        return not self.failed and self.error is None

    def no_members_note(self) -> tuple[str, str] | None:
        """(message, hint) when there was no active member to send to; None otherwise."""
        if self.active != 0:
            return None
        return (
            _("there are no active members to send issue {issue} to").format(issue=self.issue),
            _("add members with `gongbao-feed members import FILE.csv` (a sheet with the "
              "columns email and name) or `gongbao-feed members add EMAIL --name NAME`, "
              "then run `gongbao-feed send` again"),
        )

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "issue": self.issue,
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": [{"email": e, "error": why} for e, why in self.failed],
        }
        if self.error is not None:
            data["error"] = self.error
        if self.dry_run:
            data["dry_run"] = True
            data["subject"] = self.subject
            data["would_send"] = [{"email": e, "name": n} for e, n in self.would_send]
        return data


def make_transport(config: Config, via: str | None = None) -> Transport:
    """The transport named by `via`, or by [email] transport."""
    kind = via or config.email.transport
    if kind == "outbox":
        return OutboxTransport(config.outbox_dir)
    if kind == "smtp":
        return SmtpTransport.from_config(config)
    raise DeliveryError(
        _("unknown transport {kind!r}").format(kind=kind),
        hint=_('expected "outbox" or "smtp" ([email] transport, or --via)'),
    )


def send_claimed(
    ledger: Ledger,
    transport: Transport,
    make_message: Callable[[Member], Message],
    report: SendReport,
    *,
    stop: threading.Event,
    is_active: Callable[[str], bool],
    progress: Callable[[], None] = lambda: None,
    claim_size: int = CLAIM_SIZE,
) -> None:
    """Claim, make, deliver, settle, until no member of the issue is left unclaimed.

    Raises what the transport raises on a fatal error (a refused login): the
    ledger is closed first, so every claim not settled is given back.
    """
    def record(outcome: Outcome) -> None:
        ledger.settle(outcome)
        if outcome.state is DeliveryState.SENT:
            report.sent += 1
        elif outcome.state is DeliveryState.FAILED:
            report.failed.append((outcome.message.email, outcome.detail or _("not delivered")))
        else:
            return
        progress()

    def messages(members: list[Member]) -> Iterator[Message]:
        with contextlib.closing(made_ahead(members, is_active, make_message)) as ahead:
            yield from _settle_unmade(ahead)

    def _settle_unmade(ahead: Iterator[tuple[Member, _Made]]) -> Iterator[Message]:
        for member, made in ahead:
            if made is None:  # unsubscribed since the claim
                ledger.release([member.email])
                report.skipped += 1
                progress()
            elif isinstance(made, DeliveryError):  # this member's copy cannot be made
                ledger.fail(member, made.message)
                report.failed.append((member.email, made.message))
                progress()
            else:
                yield made

    with ledger:
        while not stop.is_set():
            members = ledger.claim(claim_size)
            if not members:
                break
            with contextlib.closing(messages(members)) as batch:
                transport.deliver(batch, record, stop)


_Made = Message | DeliveryError | None


def made_ahead(
    members: Iterable[Member],
    is_active: Callable[[str], bool],
    make_message: Callable[[Member], Message],
) -> Iterator[tuple[Member, _Made]]:
    """Each member with their copy (None: no longer subscribed), made ahead of the caller.

    The next copy is checked and made on a second thread while the transport
    hands the current one over (the relay's round trips, a file's fsync), so
    the database lookup and the personalisation are off the send's critical
    path. Only the check and the making run there; every ledger write stays
    with the caller, in order, so a claim is still settled before the next
    message is handed over whole (for SMTP, before its final dot), and a
    crash repeats no more than before. At most two copies wait made (one
    handed over, one finished behind it), so the check is at most two
    messages older than the send: still "at once" for an unsubscribe.
    Stopping early (a stop, a fatal error) leaves the made copy unused: its
    claim is still held, and the ledger's close gives it back.
    """
    ready: queue.Queue[tuple[Member, _Made] | BaseException | None] = queue.Queue(maxsize=1)
    closed = threading.Event()

    def put(item: tuple[Member, _Made] | BaseException | None) -> bool:
        while not closed.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for member in members:
                made: _Made = None
                if is_active(member.email):
                    try:
                        made = make_message(member)
                    except DeliveryError as exc:
                        made = exc
                if not put((member, made)):
                    return
            put(None)
        except BaseException as exc:  # the database went away: the caller raises it
            put(exc)

    maker = threading.Thread(target=make, name="make-ahead", daemon=True)
    maker.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()
        maker.join()
