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

import threading
from collections.abc import Callable, Iterator
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

    @property
    def ok(self) -> bool:
        return not self.failed and self.error is None

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
        for member in members:
            if not is_active(member.email):  # unsubscribed since the claim
                ledger.release([member.email])
                report.skipped += 1
                progress()
                continue
            try:
                message = make_message(member)
            except DeliveryError as exc:  # this member's copy cannot be made
                ledger.fail(member, exc.message)
                report.failed.append((member.email, exc.message))
                progress()
                continue
            yield message

    with ledger:
        while not stop.is_set():
            members = ledger.claim(claim_size)
            if not members:
                break
            transport.deliver(messages(members), record, stop)
