"""Ledger rows in batches, for a transport where delivering again replaces the copy.

The outbox writes one file per member under a stable name
(`redelivery_replaces = True`), so a message delivered twice is the same file
written twice, never a second copy in anyone's hands. Its ledger rows may
therefore wait a moment and go in together: every `size` outcomes or every
`seconds`, in one transaction, instead of one commit per member, which cost
more than writing the file.

What does not change: a row is added only from the transport's report, after
the member's file was renamed into place, so the ledger never says `sent`
for a file that is not there. A crash before a batch's commit loses at most
that batch's rows; the next send finds those members unsettled and writes
their files again, replacing them under the same names.

SMTP, where a repeat would reach a person twice, keeps one committed row per
message: send uses a batch only for transports that declare
`redelivery_replaces`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .models import Delivery
from .store import Store


class LedgerBatch:
    """Collects rows; commits them when `size` are waiting or `seconds` have passed,
    and whatever is left on leaving the `with` block (also after an error: each
    row held describes a file already in place)."""

    def __init__(
        self,
        store: Store,
        size: int = 200,
        seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.size = size
        self.seconds = seconds
        self.clock = clock
        self._rows: list[Delivery] = []
        self._since = clock()

    def add(self, row: Delivery) -> None:
        if not self._rows:
            self._since = self.clock()
        self._rows.append(row)
        if len(self._rows) >= self.size or self.clock() - self._since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        self.store.record_deliveries(rows)

    def __enter__(self) -> LedgerBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
