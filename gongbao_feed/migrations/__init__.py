"""Schema migrations: Alembic used as a library, the revisions in versions/.

The schema is the `metadata` in store.py; each revision in versions/ takes a
database one step towards it. Revision ids are four digits, one after the
other (0001 the schema of release 0.1, 0002 the next, ...), and each file is
named after its id (`0002_gone_articles.py`), so the newest one, `head()`, is
read from the file names without importing Alembic: `Store` checks the
database against it on every open with one query.

    ensure_current(engine)  what Store does on open: a new (empty) database
                            is created at head (store.metadata, stamped);
                            one that is behind stops with a StoreError that
                            says to run `gongbao-feed db upgrade`
    upgrade(engine)         what `gongbao-feed db upgrade` does: every pending
                            revision, in one transaction
    read_state(engine)      where a database stands, changing nothing

A database made by release 0.1 has the tables but no `alembic_version`
table; it is recognised by its `articles` table and counts as revision 0001.
Adding a revision: README, "Schema migrations" (`python -m gongbao_feed.migrations`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import column, inspect, select, table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from ..errors import StoreError
from ..i18n import N_, _, ngettext

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

HERE = Path(__file__).resolve().parent
VERSIONS = HERE / "versions"
VERSION_TABLE = "alembic_version"
BASELINE = "0001"  # release 0.1's schema, which had no version table
LEGACY_MARKER = "articles"  # a table every release has had
UPGRADE_HINT = N_("run `gongbao-feed db upgrade` (back up the database first)")
# Serialises `db upgrade` runs on PostgreSQL (SQLite: BEGIN IMMEDIATE does it).
_PG_LOCK_KEY = 0x6762_6664_6221  # "gbfdb!"

_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")
_version_t = table(VERSION_TABLE, column("version_num"))


@functools.cache
def revisions() -> tuple[str, ...]:
    """Every revision id, oldest first, from the file names in versions/."""
    found = sorted(
        m.group(1) for p in VERSIONS.iterdir() if (m := _REVISION_FILE.match(p.name))
    )
    if not found:
        raise StoreError(_("no schema revisions in {folder}").format(folder=VERSIONS),
                         hint=_("reinstall gongbao-feed"))
    return tuple(found)


def upgrade_hint() -> str:
    """UPGRADE_HINT in the operator's language."""
    return _(UPGRADE_HINT)


def head() -> str:
    return revisions()[-1]


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands.

    `revision` is None for a database with none of our tables; `legacy` is
    a database made by release 0.1 (revision 0001, no version table).
    """

    revision: str | None
    head: str
    legacy: bool = False

    @property
    def current(self) -> bool:
        return self.revision == self.head

    @property
    def empty(self) -> bool:
        return self.revision is None

    @property
    def known(self) -> bool:
        return self.revision is None or self.revision in revisions()

    def describe(self) -> str:
        if self.empty:
            return _("no schema yet (any command creates it at revision {head})").format(
                head=self.head)
        if self.current:
            return _("schema at revision {revision} (head)").format(revision=self.revision)
        if not self.known:
            return _("schema at revision {revision}, unknown to this release "
                     "(its head is {head})").format(revision=self.revision, head=self.head)
        if self.legacy:
            return _("schema at revision {revision}, made by release 0.1 (no version table); "
                     "head is {head}").format(revision=self.revision, head=self.head)
        return _("schema at revision {revision}; head is {head}").format(
            revision=self.revision, head=self.head)

    def to_json(self) -> dict[str, Any]:
        return {"revision": self.revision, "head": self.head, "current": self.current,
                "legacy": self.legacy}


@dataclass(frozen=True)
class SchemaReport:
    """The state before and after opening (or upgrading) a database."""

    before: SchemaState
    after: SchemaState
    applied: tuple[str, ...] = field(default=())  # revisions run, oldest first
    created: bool = False  # a new database, made at head

    def lines(self) -> list[str]:
        """What changed, for stderr; `after.describe()` is the result."""
        if self.created:
            return [_("created the schema at revision {revision}").format(
                revision=self.after.revision)]
        out = []
        if self.before.legacy and self.applied:
            out.append(_("recognised a database made by release 0.1: revision {revision}")
                       .format(revision=BASELINE))
        out += [_("applied revision {revision}").format(revision=rev) for rev in self.applied]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"before": self.before.revision, "legacy": self.before.legacy,
                "created": self.created, "applied": list(self.applied),
                "revision": self.after.revision, "head": self.after.head,
                "current": self.after.current}


def read_state(engine: Engine) -> SchemaState:
    """One query (`SELECT version_num FROM alembic_version`) when the table is there."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(_version_t.c.version_num)).scalars().all()
    except (OperationalError, ProgrammingError):
        with engine.connect() as conn:
            found = inspect(conn)
            if found.has_table(VERSION_TABLE):
                raise  # the table is there: something else is wrong
            legacy = found.has_table(LEGACY_MARKER)
        return SchemaState(BASELINE if legacy else None, head(), legacy=legacy)
    if len(rows) > 1:
        raise StoreError(
            _("the database {database} has several schema versions: {versions}").format(
                database=_name(engine), versions=", ".join(rows)),
            hint=_("it was upgraded by a branch of gongbao-feed; restore a backup"),
        )
    return SchemaState(rows[0] if rows else None, head())


def ensure_current(engine: Engine) -> SchemaReport:
    """Store's check on open: pass at head, create at head when empty, else stop."""
    before = read_state(engine)
    if before.current:
        return SchemaReport(before, before)
    if before.empty:
        return upgrade(engine, before)
    raise _out_of_date(engine, before)


def upgrade(engine: Engine, before: SchemaState | None = None) -> SchemaReport:
    """Bring a database to head in one transaction, and say what was done.

    Empty: the tables of store.metadata, stamped at head (tests prove the
    revisions lead to the same schema). Made by release 0.1: stamped 0001,
    then upgraded. Otherwise: every pending revision. What to do is decided
    again under the write lock, as another process may have done it meanwhile.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    from ..schema import metadata

    before = before or read_state(engine)
    if not before.known:
        raise _out_of_date(engine, before)
    created = False
    with _migrating(engine) as conn:
        start = MigrationContext.configure(conn).get_current_revision()
        cfg = alembic_config(conn)
        if start is None and not inspect(conn).has_table(LEGACY_MARKER):
            metadata.create_all(conn)
            command.stamp(cfg, "head")
            created = True
        else:
            if start is None:
                command.stamp(cfg, BASELINE)
                start = BASELINE
            command.upgrade(cfg, "head")
            _check_foreign_keys(conn)
        end = MigrationContext.configure(conn).get_current_revision()
    ids = revisions()
    applied: tuple[str, ...] = ()
    if not created and start in ids and end in ids:
        applied = ids[ids.index(start) + 1 : ids.index(end) + 1]
    return SchemaReport(before, read_state(engine), applied, created)


def alembic_config(conn: Connection | None = None) -> AlembicConfig:
    """Alembic's config in code: no alembic.ini, the scripts in this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Only our tables: the job store (gongbao_jobs) and anything else is not ours."""
    if type_ == "table":
        from ..schema import metadata

        return name in metadata.tables
    return True


def same_default(
    _context: Any, _inspected: Any, _column: Any, inspected: str | None, _metadata: Any,
    rendered: str | None,
) -> bool | None:
    """Alembic's SQLite comparison takes DEFAULT '' for a changed default; None: its call."""
    if inspected is not None and rendered is not None and _unquoted(inspected) == "":
        return False if _unquoted(rendered) == "" else None
    return None


def _unquoted(sql: str) -> str:
    sql = re.sub(r"^\((.*)\)$", r"\1", sql.strip())
    quoted = re.fullmatch(r"'(.*)'", sql)
    return quoted.group(1) if quoted else sql


# How a database is compared with store.metadata: what `new` drafts from, and
# what the tests assert finds no difference.
COMPARE = {
    "include_name": include_name,
    "compare_type": True,
    "compare_server_default": same_default,
}


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction that holds the write lock from the start.

    SQLite: foreign keys off for the run (a batch migration copies and
    drops tables; checked before commit), BEGIN IMMEDIATE so DDL is
    transactional and two upgrades queue. PostgreSQL: an advisory lock.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
        else:
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
                yield conn


def _check_foreign_keys(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table_name, rowid, parent, _fk = broken[0]
        raise StoreError(
            ngettext("the upgrade would leave {n} row pointing at nothing "
                     "(first: {table} row {rowid} → {parent}); nothing was changed",
                     "the upgrade would leave {n} rows pointing at nothing "
                     "(first: {table} row {rowid} → {parent}); nothing was changed",
                     len(broken)).format(n=len(broken), table=table_name, rowid=rowid,
                                         parent=parent),
            hint=_("restore a backup, or repair those rows with sqlite3 and upgrade again"),
        )


def _out_of_date(engine: Engine, state: SchemaState) -> StoreError:
    where = _name(engine)
    if not state.known:
        return StoreError(
            _("the database {database} is at schema revision {revision}, which this release "
              "does not know (its newest is {head}): a newer gongbao-feed has upgraded it")
            .format(database=where, revision=state.revision, head=state.head),
            hint=_("install that release of gongbao-feed (or a newer one)"),
        )
    if state.legacy:
        message = _("the database {database} is at schema revision {revision} (made by "
                    "release 0.1, no version table); this release needs revision {head}")
    else:
        message = _("the database {database} is at schema revision {revision}; "
                    "this release needs revision {head}")
    return StoreError(
        message.format(database=where, revision=state.revision, head=state.head),
        hint=upgrade_hint(),
    )


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
