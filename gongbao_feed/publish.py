"""The library API: one object per working folder, one method per stage.

The CLI and the scheduler are thin layers over `Newsroom`; a user can import
it and drive the same stages from Python. The clock is injected, so tests
and reruns can fix "now".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from .config import Config, load_config
from .ingest import IngestReport, inbox_files, ingest
from .store import Store

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Newsroom:
    """A working folder: its config, its store and its clock."""

    def __init__(self, config: Config, clock: Clock = system_clock) -> None:
        self.config = config
        self.clock = clock
        self._store: Store | None = None

    @classmethod
    def open(cls, config_path: Path | str | None = None, clock: Clock = system_clock) -> Newsroom:
        return cls(load_config(config_path), clock)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.config.database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Newsroom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        """Today in the paper's time zone, not the server's."""
        return self.now().astimezone(self.config.tz).date()

    # -- stages ---------------------------------------------------------------
    def ingest(
        self, paths: Iterable[Path] | None = None, on_date: date | None = None
    ) -> IngestReport:
        """Read pages (default: the whole inbox) into the store."""
        files = list(paths) if paths is not None else inbox_files(self.config.inbox)
        return ingest(
            self.store, files, explicit_date=on_date, today=self.today(), now=self.now()
        )
