"""Shared fixtures: a fresh working folder made by `init`, the example pages, and a
PostgreSQL server of the tests' own (`pg_server`, one per xdist worker) with a
fresh database for each test that asks (`pg_url`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from gongbao_feed.config import load_config
from gongbao_feed.publish import Newsroom
from gongbao_feed.skeleton import init_folder

from .pg import PgServer, PgUnavailable

# Messages in English unless a test chooses a language (tests/test_i18n.py):
# the tests that assert English text must not depend on the machine's locale.
# Set here, at import, so every subprocess a test starts inherits it too.
os.environ["LANG"] = "C.UTF-8"
for _key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_key, None)

# --hypothesis-profile=quick reports a failure without the (slow) shrinking.
settings.register_profile("quick", phases=[Phase.explicit, Phase.generate])

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_INBOX = REPO / "inbox"


class FixedClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 22, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**kwargs)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working folder as `gongbao-feed init` makes it, with the example pages in its inbox."""
    folder = tmp_path / "paper"
    init_folder(folder)
    for page in EXAMPLE_INBOX.iterdir():
        if page.is_file():
            shutil.copy(page, folder / "inbox" / page.name)
    return folder


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def room(workdir: Path, clock: FixedClock):
    with Newsroom(load_config(workdir / "config.toml"), clock=clock) as newsroom:
        yield newsroom


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server started for this test process, stopped (and its folder
    removed) at the end. Not installed: a failure in CI, a skip with the reason
    elsewhere."""
    try:
        server = PgServer.start()
    except PgUnavailable as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing and in_ci():
        pytest.fail(f"PostgreSQL tests cannot run in CI: {missing}", pytrace=False)
    if missing:
        pytest.skip(f"PostgreSQL tests skipped: {missing}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for this test alone: "postgresql+psycopg://…"."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)
