"""Delivering: the one place where messages leave the process.

A Transport takes fully serialised messages and reports one Outcome per
message through a callback; the caller writes the ledger from that report,
so a row says `sent` only after the transport confirmed it. Messages are
pulled lazily, so a member who unsubscribes during a send is skipped from
then on, and a stop request ends the send after the message in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .config import Config
from .errors import DeliveryError
from .models import DeliveryState


@dataclass(frozen=True)
class Message:
    """One member's copy of one issue, ready to go."""

    issue: int
    email: str  # the ledger key: the member's normalised address
    sender: str  # envelope MAIL FROM, a bare address
    recipients: tuple[str, ...]  # envelope RCPT TO
    message_id: str
    data: bytes  # the whole RFC 5322 message, CRLF line endings


@dataclass(frozen=True)
class Outcome:
    """What the transport knows happened to one message."""

    message: Message
    state: DeliveryState  # SENT, or FAILED (PENDING: stopped before it was tried)
    permanent: bool = False
    code: int | None = None
    detail: str = ""
    attempts: int = 1


Report = Callable[[Outcome], None]


@dataclass
class SendReport:
    """What one `send` did; `to_json` is the shape `send --json` promises."""

    issue: int
    sent: int = 0
    skipped: int = 0  # already sent in an earlier run, or unsubscribed mid-send
    failed: list[tuple[str, str]] = field(default_factory=list)  # (address, why)
    dry_run: bool = False
    would_send: list[tuple[str, str]] = field(default_factory=list)  # (address, name)
    subject: str = ""
    shortened: int = 0  # articles the size budget showed in part

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "issue": self.issue,
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": [{"email": e, "error": why} for e, why in self.failed],
        }
        if self.dry_run:
            data["dry_run"] = True
            data["subject"] = self.subject
            data["would_send"] = [{"email": e, "name": n} for e, n in self.would_send]
        return data


class Transport(Protocol):
    """Outbox folder, SMTP relay, or a test double: the seam for bytes leaving.

    A transport may set `redelivery_replaces = True` when delivering a
    message again replaces the earlier copy instead of adding a second one
    (the outbox writes one file per member); send then marks no `pending`
    rows for it, since a repeat after a crash cannot reach anyone twice.
    """

    name: str

    def deliver(self, messages: Iterable[Message], report: Report, stop: threading.Event) -> None:
        """Send each message once, call `report` for each, return when done or stopped."""
        ...


def make_transport(config: Config, via: str | None = None) -> Transport:
    """The transport named by `via`, or by [email] transport: the one place that picks it."""
    kind = via or config.email.transport
    if kind == "outbox":
        from .outbox import OutboxTransport

        return OutboxTransport(config.outbox_dir)
    if kind == "smtp":
        from .smtp import SmtpTransport

        return SmtpTransport.from_config(config)
    raise DeliveryError(
        f"unknown transport {kind!r}",
        hint='expected "outbox" or "smtp" ([email] transport, or --via)',
    )
