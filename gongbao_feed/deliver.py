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
from dataclasses import dataclass
from typing import Protocol

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


class Transport(Protocol):
    """Outbox folder, SMTP relay, or a test double: the seam for bytes leaving."""

    name: str

    def deliver(self, messages: Iterable[Message], report: Report, stop: threading.Event) -> None:
        """Send each message once, call `report` for each, return when done or stopped."""
        ...
