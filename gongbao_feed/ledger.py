"""The delivery ledger, summed up: what `gongbao-feed deliveries` shows.

Pure: ledger rows in, a summary out. A row is `pending` from the moment a
send hands the message to the transport until the relay answers; `sent`
only after the relay's 2xx to DATA (or the outbox file's rename);
`failed` with the relay's code and text, permanent (5xx: the next send
leaves it alone unless asked with --retry-failed) or temporary (4xx, a lost
connection, tries used up: the next send tries again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .models import Delivery, DeliveryState


@dataclass(frozen=True)
class IssueCounts:
    issue: int
    pending: int = 0
    sent: int = 0
    failed: int = 0
    permanent: int = 0  # of the failed

    def to_json(self) -> dict[str, int]:
        return {
            "issue": self.issue,
            "pending": self.pending,
            "sent": self.sent,
            "failed": self.failed,
            "failed_permanent": self.permanent,
            "failed_temporary": self.failed - self.permanent,
        }


@dataclass(frozen=True)
class LedgerSummary:
    issues: tuple[IssueCounts, ...] = ()
    failures: tuple[Delivery, ...] = field(default=())

    def total(self, state: DeliveryState) -> int:
        return sum(getattr(c, state.value) for c in self.issues)

    def to_json(self) -> dict[str, Any]:
        return {
            "issues": [c.to_json() for c in self.issues],
            "total": {s.value: self.total(s) for s in DeliveryState},
            "failures": [
                {
                    "issue": d.issue,
                    "email": d.email,
                    "permanent": d.permanent,
                    "code": d.code,
                    "reason": d.detail,
                    "attempts": d.attempts,
                    "transport": d.transport,
                    "updated": d.updated.isoformat() if d.updated else None,
                }
                for d in self.failures
            ],
        }

    def lines(self) -> list[str]:
        """The human view: one line per issue, then one per failure."""
        if not self.issues:
            return ["no deliveries recorded yet"]
        out = []
        for c in self.issues:
            line = f"issue {c.issue}: {c.sent} sent, {c.failed} failed"
            if c.failed:
                line += f" ({c.permanent} permanent, {c.failed - c.permanent} temporary)"
            line += f", {c.pending} pending"
            out.append(line)
        if self.failures:
            out.append("failures:")
            for d in self.failures:
                kind = "permanent" if d.permanent else "temporary"
                code = f"{d.code} " if d.code is not None else ""
                tries = f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}"
                out.append(
                    f"  issue {d.issue}  {d.email}  {code}{kind}, {tries}: {d.detail or '-'}"
                )
        return out


def summarise(rows: Iterable[Delivery]) -> LedgerSummary:
    counts: dict[int, dict[str, int]] = {}
    failures: list[Delivery] = []
    for d in rows:
        c = counts.setdefault(d.issue, {"pending": 0, "sent": 0, "failed": 0, "permanent": 0})
        c[d.state.value] += 1
        if d.state is DeliveryState.FAILED:
            failures.append(d)
            c["permanent"] += d.permanent
    return LedgerSummary(
        issues=tuple(IssueCounts(issue, **c) for issue, c in sorted(counts.items())),
        failures=tuple(sorted(failures, key=lambda d: (d.issue, not d.permanent, d.email))),
    )
