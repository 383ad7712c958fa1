"""Schema migrations: databases of every age end up at `metadata`, keeping their rows.

tests/fixtures/db/release-0.1.sql is `sqlite3 .dump` of a database made by
release 0.1 (git 4a5cd3f) run as is: `init`, `members import` of
examples/members.csv (and one removed), `ingest` of the example inbox,
`assemble`, `send --via outbox`. That release had no version table.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, event, insert, inspect, select, text
from sqlalchemy.engine import Engine

from gongbao_feed import migrations
from gongbao_feed.config import load_config
from gongbao_feed.errors import StoreError
from gongbao_feed.migrations import alembic_config, head, revisions
from gongbao_feed.models import Member, MemberStatus
from gongbao_feed.schema import metadata
from gongbao_feed.store import Store

from .helpers_cli import run

RELEASE_01 = Path(__file__).parent / "fixtures" / "db" / "release-0.1.sql"
OLD_TABLES = ("issues", "members", "articles", "issue_articles", "deliveries")
ACTIVE_MEMBERS_SENT = 4  # of the 5 in the dump; the fifth had unsubscribed


def db_file(workdir: Path) -> Path:
    return workdir / "state" / "gongbao.db"


def load_release_01(workdir: Path) -> Path:
    """The working folder's database replaced by release 0.1's."""
    db = db_file(workdir)
    for old in db.parent.glob(db.name + "*"):
        old.unlink()  # `init` made one at head
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(RELEASE_01.read_text(encoding="utf-8"))
    return db


def table_rows(db: Path, table: str) -> list[tuple[object, ...]]:
    """Every row, in the columns release 0.1 had (later revisions may add some)."""
    columns = ", ".join(OLD_COLUMNS.get(table, ["*"]))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(f"SELECT {columns} FROM {table} ORDER BY rowid").fetchall()


def _release_01_columns() -> dict[str, list[str]]:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(RELEASE_01.read_text(encoding="utf-8"))
        return {t: [row[1] for row in conn.execute(f"PRAGMA table_info({t})")]
                for t in OLD_TABLES}


OLD_COLUMNS = _release_01_columns()


def sqlite_schema(db: Path) -> dict[str, str]:
    """name → CREATE statement, whitespace folded, for every table and index."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    return {name: re.sub(r"\s+", " ", sql) for name, sql in rows}


def versions(db: Path) -> list[tuple[object, ...]]:
    return table_rows(db, "alembic_version")


def differences(engine: Engine) -> list[object]:
    """What autogenerate would change to make the database match store.metadata."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts=migrations.COMPARE)
        return list(compare_metadata(context, metadata))


def run_revisions(engine: Engine, target: str = "head") -> None:
    """The revisions themselves (not create_all) from an empty database."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), target)


# -- (a) a database made by release 0.1 --------------------------------------------


def test_release_01_database_upgrades_keeping_every_row_and_sends_nothing_twice(
    workdir: Path,
) -> None:
    db = load_release_01(workdir)
    before = {t: table_rows(db, t) for t in OLD_TABLES}
    assert [len(before[t]) for t in OLD_TABLES] == [1, 5, 9, 9, 4]

    code, out, err = run(workdir, "db", "upgrade")

    assert code == 0, err
    assert out == f"schema at revision {head()} (head)\n"
    assert "release 0.1" in err and "applied revision 0002" in err
    assert {t: table_rows(db, t) for t in OLD_TABLES} == before
    assert versions(db) == [(head(),)]
    assert table_rows(db, "gone_articles") == []
    with Store(load_config(workdir / "config.toml").database_url) as store:
        issue = store.issue(1)
        assert issue is not None
        assert list(issue.article_ids) == [row[2] for row in before["issue_articles"]]
        assert {m.email: m.status for m in store.members()} == {
            row[0]: row[2] for row in before["members"]
        }
        assert differences(store.engine) == []

    code, out, err = run(workdir, "send", "--issue", "1", "--via", "outbox", "--json")
    assert code == 0, err
    assert isinstance(out, dict)
    assert (out["sent"], out["skipped"], out["failed"]) == (0, ACTIVE_MEMBERS_SENT, [])
    assert {t: table_rows(db, t) for t in OLD_TABLES}["deliveries"] == before["deliveries"]


def test_the_baseline_revision_is_release_01s_schema_exactly(tmp_path: Path) -> None:
    legacy, baseline = tmp_path / "legacy.db", tmp_path / "baseline.db"
    with contextlib.closing(sqlite3.connect(legacy)) as conn:
        conn.executescript(RELEASE_01.read_text(encoding="utf-8"))
    engine = create_engine(f"sqlite:///{baseline}")
    try:
        run_revisions(engine, "0001")
    finally:
        engine.dispose()
    made = sqlite_schema(baseline)
    del made["alembic_version"]
    assert made == sqlite_schema(legacy)


# -- (b) any other command on a database that is behind ----------------------------


@pytest.mark.parametrize("args", [("status",), ("ingest",), ("members", "list"),
                                  ("send", "--via", "outbox")], ids=" ".join)
def test_commands_on_an_old_database_stop_and_say_to_run_db_upgrade(
    workdir: Path, args: tuple[str, ...]
) -> None:
    db = load_release_01(workdir)
    schema = sqlite_schema(db)

    code, _out, err = run(workdir, *args)

    assert code == 1
    assert "schema revision 0001" in err and "release 0.1" in err
    assert "hint: run `gongbao-feed db upgrade`" in err
    assert "Traceback" not in err
    assert sqlite_schema(db) == schema  # nothing created, nothing stamped


def test_a_database_at_an_older_revision_stops_until_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    run_revisions(engine, "0001")
    engine.dispose()
    with pytest.raises(StoreError) as caught:
        Store(url)
    assert "is at schema revision 0001; this release needs revision" in caught.value.message
    assert caught.value.hint is not None and "gongbao-feed db upgrade" in caught.value.hint

    with Store(url, upgrade=True) as store:
        assert store.schema.applied == revisions()[1:]
        assert store.schema.after.current and not store.schema.before.legacy
    with Store(url) as store:
        assert store.schema.before.current


def test_a_database_from_a_newer_release_is_refused_even_by_db_upgrade(workdir: Path) -> None:
    db = db_file(workdir)
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    for args in (("status",), ("db", "upgrade")):
        code, _out, err = run(workdir, *args)
        assert code == 1
        assert "revision 9999, which this release does not know" in err
        assert "install that release" in err
    assert versions(db) == [("9999",)]


# -- (c) a new database is at head and equals metadata -----------------------------


def test_init_makes_the_database_at_head_equal_to_metadata(workdir: Path) -> None:
    db = db_file(workdir)
    assert versions(db) == [(head(),)]
    engine = create_engine(f"sqlite:///{db}")
    try:
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_the_revisions_from_an_empty_database_make_metadata(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    try:
        run_revisions(engine)
        assert differences(engine) == []
        with engine.begin() as conn:  # the service's job store is not ours to compare
            conn.execute(text("CREATE TABLE gongbao_jobs (id VARCHAR(191) PRIMARY KEY)"))
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_a_missing_or_empty_database_file_is_created_at_head(tmp_path: Path) -> None:
    for db in (tmp_path / "new" / "missing.db", tmp_path / "empty.db"):
        if db.name == "empty.db":
            db.touch()
        with Store(f"sqlite:///{db}") as store:
            assert store.schema.created and store.schema.after.current
        assert versions(db) == [(head(),)]
    with Store("sqlite://") as store:  # in memory
        assert store.schema.after.revision == head()


# -- (d) db upgrade at head changes nothing ----------------------------------------


def test_db_upgrade_on_a_current_database_changes_nothing(workdir: Path) -> None:
    db = db_file(workdir)
    schema = sqlite_schema(db)

    code, out, err = run(workdir, "db", "upgrade")
    assert (code, out, err) == (0, f"schema at revision {head()} (head)\n", "")

    code, out, _ = run(workdir, "db", "upgrade", "--json")
    assert code == 0
    assert out == {"before": head(), "legacy": False, "created": False, "applied": [],
                   "revision": head(), "head": head(), "current": True}
    assert sqlite_schema(db) == schema

    code, out, _ = run(workdir, "db", "version", "--json")
    assert (code, out) == (0, {"revision": head(), "head": head(), "current": True,
                               "legacy": False})


def test_db_version_names_an_old_database_and_changes_nothing(workdir: Path) -> None:
    db = load_release_01(workdir)
    code, out, err = run(workdir, "db", "version")
    assert code == 0
    assert out == f"schema at revision 0001, made by release 0.1 (no version table); " \
                  f"head is {head()}\n"
    assert "gongbao-feed db upgrade" in err
    assert "alembic_version" not in sqlite_schema(db)


# -- the revisions themselves --------------------------------------------------------


def test_revision_files_are_numbered_one_after_the_other() -> None:
    """What `head()` reads from the file names is what Alembic reads from the files."""
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head()]
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert tuple(chain) == revisions()
    assert revisions() == tuple(f"{n:04d}" for n in range(1, len(revisions()) + 1))
    for rev in script.walk_revisions():
        assert Path(rev.path).name.startswith(rev.revision + "_")
        previous = f"{int(rev.revision) - 1:04d}" if rev.revision != "0001" else None
        assert rev.down_revision == previous


def test_every_revision_downgrades_to_nothing_and_up_again(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'roundtrip.db'}")
    try:
        run_revisions(engine)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == ["alembic_version"]
        run_revisions(engine)
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_store_checks_the_schema_with_one_query(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    Store(url).close()
    seen: list[str] = []
    engine = create_engine(url)
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: seen.append(statement))
    try:
        assert migrations.ensure_current(engine).after.current
    finally:
        engine.dispose()
    assert len(seen) == 1 and "alembic_version" in seen[0]


# -- PostgreSQL --------------------------------------------------------------------


def test_postgresql_new_database_and_the_revisions_both_make_metadata(pg_url: str) -> None:
    with Store(pg_url) as store:
        assert store.schema.created
        assert differences(store.engine) == []
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
            conn.execute(text("DROP TABLE alembic_version"))
        run_revisions(store.engine)
        assert differences(store.engine) == []


def test_postgresql_release_01_database_upgrades_keeping_every_row(
    tmp_path: Path, pg_url: str
) -> None:
    """Release 0.1's tables as its create_all made them on PostgreSQL, with the dump's rows."""
    legacy = tmp_path / "legacy.db"
    with contextlib.closing(sqlite3.connect(legacy)) as conn:
        conn.executescript(RELEASE_01.read_text(encoding="utf-8"))
    source = create_engine(f"sqlite:///{legacy}")
    old = MetaData()
    old.reflect(source)
    for table in old.tables.values():
        for col in table.columns:
            col.type = col.type.as_generic()  # SQLite's DATETIME → DateTime
    old.tables["issues"].c.number.autoincrement = False  # as release 0.1 declared it
    target = create_engine(pg_url)
    try:
        with source.connect() as src, target.begin() as dst:
            old.create_all(dst)
            for table in old.sorted_tables:
                rows = [dict(r._mapping) for r in src.execute(select(table))]
                if rows:
                    dst.execute(insert(table), rows)
        before = _pg_rows(target, old)
        with pytest.raises(StoreError, match="gongbao-feed db upgrade"):
            Store(pg_url)

        with Store(pg_url, upgrade=True) as store:
            assert store.schema.before.legacy
            assert store.schema.applied == revisions()[1:]
            assert differences(store.engine) == []
        assert _pg_rows(target, old) == before
    finally:
        source.dispose()
        target.dispose()


def _pg_rows(engine: Engine, old: MetaData) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
            for t in old.sorted_tables
        }


# -- 0005: one row per mailbox ---------------------------------------------------------

LUO = ("Luo.Bin@members.example.org", "luo.bin@members.example.org",
       "LUO.BIN@members.example.org")


def _fill_0003_with_spellings(engine: Engine) -> None:
    """A database at revision 0003 (the schema before 0005) as an older release left it
    after importing one mailbox in three capitalisations, then sending issues 1-3."""
    run_revisions(engine, "0003")
    members = [  # email, name, status, joined, unsubscribed_at, via
        (LUO[1], "", "active", "2026-11-02 08:00:00", None, None),
        (LUO[0], "罗斌", "active", "2026-11-01 08:00:00", None, None),
        (LUO[2], "LUO BIN", "unsubscribed", "2026-11-03 08:00:00", "2026-11-20 09:00:00",
         "one-click"),
        ("zhou.li@example.org", "周丽", "active", "2026-11-01 08:00:00", None, None),
    ]
    deliveries = [  # issue, email, state: issue 1 sent to every spelling, 2 to one, 3 failed
        (1, LUO[0], "sent"), (1, LUO[1], "sent"), (1, LUO[2], "sent"),
        (2, LUO[1], "sent"),
        (3, LUO[0], "failed"), (3, LUO[2], "sent"),
        (1, "zhou.li@example.org", "sent"),
    ]
    with engine.begin() as conn:
        for n in (1, 2, 3):
            conn.execute(text("INSERT INTO issues (number, date, title, created) "
                              "VALUES (:n, '2026-11-20', :t, '2026-11-20 07:30:00')"),
                         {"n": n, "t": f"第{n}期"})
        for email, name, status, joined, out_at, via in members:
            conn.execute(text(
                "INSERT INTO members (email, name, status, joined, unsubscribed_at, "
                "unsubscribed_via) VALUES (:e, :n, :s, :j, :u, :v)"),
                {"e": email, "n": name, "s": status, "j": joined, "u": out_at, "v": via})
        for issue, email, state in deliveries:
            conn.execute(text(
                "INSERT INTO deliveries (issue, email, state, transport, attempts, permanent, "
                "detail, message_id, updated, claimed_by) VALUES (:i, :e, :s, 'outbox', 1, "
                ":p, '', '', '2026-11-20 07:31:00', '')"),
                {"i": issue, "e": email, "s": state, "p": False})


def _check_merged(url: str) -> None:
    with Store(url) as store:
        members = store.members()
        assert [(m.email, m.name, m.status) for m in members] == [
            (LUO[0], "罗斌", "unsubscribed"),  # the first imported spelling; unsubscribed wins
            ("zhou.li@example.org", "周丽", "active"),
        ]
        luo = store.member("luo.BIN@members.example.org")
        assert luo is not None and luo.email == LUO[0]
        assert luo.unsubscribed_via == "one-click"
        assert [(d.issue, d.email, d.state) for d in store.deliveries()] == [
            (1, LUO[0], "sent"), (1, "zhou.li@example.org", "sent"),
            (2, LUO[0], "sent"),  # moved to the kept spelling
            (3, LUO[0], "sent"),  # the row that went furthest stays
        ]
        assert differences(store.engine) == []
        # The unique mailbox holds from now on: another spelling is the same member.
        store.save_member(Member(LUO[1], "", MemberStatus.ACTIVE, luo.joined))
        assert store.count_members() == 2


def test_0005_merges_one_mailboxs_spellings_and_their_deliveries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    try:
        _fill_0003_with_spellings(engine)
    finally:
        engine.dispose()
    with Store(url, upgrade=True) as store:
        assert "0005" in store.schema.applied
    _check_merged(url)


def test_0005_on_postgresql(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        _fill_0003_with_spellings(engine)
    finally:
        engine.dispose()
    with Store(pg_url, upgrade=True) as store:
        assert "0005" in store.schema.applied
    _check_merged(pg_url)
