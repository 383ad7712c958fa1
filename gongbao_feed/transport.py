"""The seam where messages leave the process: the Transport interface.

A transport takes messages and reports one Outcome per message through a
callback, after the message was delivered or refused (the outbox file
renamed into place; the relay's reply to DATA, RFC 5321 §4.2). The ledger
records a delivery only from that report. This module imports no concrete
transport: the outbox (outbox.py), SMTP (smtp.py) and the RecordingTransport
below all stand behind it, and `Newsroom(transport=…)` takes any of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .mail import Message
from .models import DeliveryState


@dataclass(frozen=True)
class Outcome:
    """What the transport knows happened to one message.

    `state` is SENT or FAILED; PENDING means it was never tried (a stop came
    first). `permanent` marks a refusal a retry cannot fix (an SMTP 5xx);
    `code` and `detail` are the relay's reply or the file system's error.
    """

    message: Message
    state: DeliveryState
    permanent: bool = False
    code: int | None = None
    detail: str = ""
    attempts: int = 1


Report = Callable[[Outcome], None]


class Transport(Protocol):
    """Outbox folder, SMTP relay, or a test double.

    `redelivery_replaces` declares whether delivering a message again
    replaces the earlier copy (the outbox's one file per member) instead of
    handing a person a second one (SMTP). The ledger chooses from it how
    eagerly it must record: a transport that replaces may have its outcomes
    settled in batches, since a repeat after a crash reaches no one twice.
    """

    name: str
    redelivery_replaces: bool

    def deliver(self, messages: Iterable[Message], report: Report, stop: threading.Event) -> None:
        """Send each message once, call `report` for each, return when done or stopped.

        Messages are pulled lazily, so the caller can make each one just in
        time; after `stop` is set no new message is taken.
        """
        ...


@dataclass
class RecordingTransport:
    """A transport that keeps what it is given: the test double, in the library.

    Like httpx's MockTransport, it is injected (`Newsroom(transport=…)`),
    never patched in. `refuse` maps an address to the Outcome fields of a
    refusal (`{"code": 550, "detail": "…", "permanent": True}`); every other
    message is reported SENT. `delivered` holds the messages in order.
    `after_each`, if set, is called with each message after its report: a
    test changes the world there mid-send (a member unsubscribes, the
    database goes away).
    """

    name: str = "recording"
    redelivery_replaces: bool = False
    refuse: dict[str, dict[str, object]] = field(default_factory=dict)
    delivered: list[Message] = field(default_factory=list)
    after_each: Callable[[Message], None] | None = None

    def deliver(self, messages: Iterable[Message], report: Report, stop: threading.Event) -> None:
        for message in messages:
            if stop.is_set():
                break
            refusal = self.refuse.get(message.email)
            if refusal is not None:
                report(Outcome(
                    message,
                    DeliveryState.FAILED,
                    permanent=bool(refusal.get("permanent", False)),
                    code=refusal.get("code"),  # type: ignore[arg-type]
                    detail=str(refusal.get("detail", "refused")),
                ))
                continue
            self.delivered.append(message)
            report(Outcome(message, DeliveryState.SENT))
            if self.after_each is not None:
                self.after_each(message)
