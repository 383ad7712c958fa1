"""The mail layer's one record: a message ready to leave, with its envelope.

Rendering (digest.py) makes these; a transport (transport.py) takes them.
Neither knows the other: this type is what they share.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One member's copy of one issue, serialised (RFC 5322, CRLF line endings).

    `email` is the ledger key (the member's normalised address); `sender` and
    `recipients` are the SMTP envelope (RFC 5321 MAIL FROM and RCPT TO), which
    may differ from the From: and To: headers inside `data`. `test` marks a
    test copy (`send --to`): no ledger row, and the outbox keeps it apart.
    `confirmation` marks a signup's confirmation request (signup.py): no
    issue (`issue` is 0), no ledger row, and the outbox writes it to
    outbox/confirm/, never among an issue's copies.
    """

    issue: int
    email: str
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    data: bytes
    test: bool = False
    confirmation: bool = False
