"""The store: articles, issues, members and the delivery ledger.

SQLAlchemy Core over any database URL: a SQLite file by default, PostgreSQL
when several machines share one send. Every method that changes data runs in
one transaction, so a crash leaves either all of a page or none of it.
Times are stored in UTC and come back timezone-aware.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.expression import ClauseElement

from . import migrations
from .editorial import Correction, Revision, Withdrawal
from .errors import StoreError
from .i18n import _
from .migrations import SchemaReport, SchemaState
from .models import (
    Article,
    Byline,
    Delivery,
    DeliveryState,
    Issue,
    Member,
    MemberStatus,
    mailbox_key,
    same_story,
)
from .review import Approval, Problem, SendCheck
from .schema import (
    approvals_t,
    article_revisions_t,
    articles_t,
    bounces_t,
    bytewise,
    corrections_t,
    deliveries_t,
    feed_ids_t,
    gone_t,
    issue_articles_t,
    issues_t,
    members_t,
    send_checks_t,
    signups_t,
    upsert,
    withdrawals_t,
)


@dataclass(frozen=True)
class GoneArticle:
    """An article stored from a page that a re-read of that page no longer has.

    It is reported, not deleted: it may already have been mailed and be in
    the feeds, and what was published stays published.
    """

    id: str
    title: str
    source: str


@dataclass(frozen=True)
class SaveResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: list[GoneArticle] = field(default_factory=list)


def _row_to_article(row: Any) -> Article:
    return Article(
        id=row.id,
        date=row.date,
        title=row.title,
        kicker=row.kicker,
        subtitle=row.subtitle,
        dateline=row.dateline,
        byline=Byline.from_dict(json.loads(row.byline)),
        captions=tuple(json.loads(row.captions)),
        paragraphs=tuple(json.loads(row.paragraphs)),
        section=row.section,
        source=row.source,
        position=row.position,
        revision=row.revision,
        first_seen=row.first_seen,
        updated=row.updated,
        issue=row.issue,
    )


def _article_values(a: Article) -> dict[str, Any]:
    return {
        "date": a.date,
        "title": a.title,
        "kicker": a.kicker,
        "subtitle": a.subtitle,
        "dateline": a.dateline,
        "section": a.section,
        "byline": json.dumps(a.byline.to_dict(), ensure_ascii=False),
        "captions": json.dumps(list(a.captions), ensure_ascii=False),
        "paragraphs": json.dumps(list(a.paragraphs), ensure_ascii=False),
        "content_hash": a.content_hash,
        "source": a.source,
        "position": a.position,
    }


def _row_to_member(row: Any) -> Member:
    return Member(
        email=row.email,
        name=row.name,
        status=MemberStatus(row.status),
        joined=row.joined,
        unsubscribed_at=row.unsubscribed_at,
        unsubscribed_via=row.unsubscribed_via,
        bounced_at=row.bounced_at,
        bounce_reason=row.bounce_reason,
        soft_bounces=row.soft_bounces or 0,
    )


def _row_to_approval(row: Any) -> Approval:
    return Approval(
        issue=row.issue,
        requested_at=row.requested_at,
        editors=tuple(json.loads(row.editors)),
        approved_at=row.approved_at,
        approved_by=row.approved_by,
        approved_via=row.approved_via,
        sent_at=row.sent_at,
    )


def _row_to_delivery(row: Any) -> Delivery:
    return Delivery(
        issue=row.issue,
        email=row.email,
        state=DeliveryState(row.state),
        transport=row.transport,
        attempts=row.attempts,
        permanent=bool(row.permanent),
        code=row.code,
        detail=row.detail,
        message_id=row.message_id,
        updated=row.updated,
    )


def sqlite_file(url: str) -> Path | None:
    """The file behind a sqlite URL, so its folder can be made first."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix and ":memory:" not in url:
        return Path(url[len(prefix):])
    return None


#: A SQLite database holds members' names and addresses: its owner alone may read it.
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700

log = logging.getLogger("gongbao_feed.store")


def make_private(path: Path) -> None:
    """A SQLite file readable by its owner alone, in a folder others cannot list.

    A missing folder is made 0700 and a missing file 0600 (before SQLite
    opens it; its -wal and -shm files take the file's mode). An existing
    file that others can read (0644 from an earlier release) is tightened
    to 0600 with a warning, as are its -wal and -shm; when this user may not
    change it, the warning says to. An existing folder is left as it is: it
    may hold other things, and with the file 0600 others see only its name.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # SQLite says what is wrong with the path when it opens it
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except OSError:
            continue
        if not mode & 0o077:
            continue
        try:
            file.chmod(mode & 0o700)
        except OSError:
            log.warning(
                _("warning: {path} can be read by other users of this machine (mode {mode:04o}) "
                  "and it holds members' names and addresses")
                .format(path=file, mode=mode)
                + "\n  " + _("hint: {hint}").format(
                    hint=_("run `chmod 600 {path}` as its owner").format(path=file))
            )
            continue
        log.warning(_("note: {path} could be read by other users of this machine "
                      "(mode {mode:04o}); it holds members' names and addresses, so it is now "
                      "readable by its owner only ({new:04o})")
                    .format(path=file, mode=mode, new=mode & 0o700))


def _open_engine(url: str) -> Engine:
    path = sqlite_file(url)
    if path is not None:
        make_private(path)
    try:
        engine = create_engine(url, future=True)
    except SQLAlchemyError as exc:
        raise _cannot_open(url, exc) from None
    except ModuleNotFoundError as exc:  # the driver the URL names is not installed
        raise StoreError(
            _("the database driver for {driver} is not installed ({module})").format(
                driver=make_url(url).drivername, module=exc.name),
            hint=_("for PostgreSQL: pip install 'gongbao-feed[postgres]' (psycopg 3)"),
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _cannot_open(url: str, exc: SQLAlchemyError) -> StoreError:
    shown = make_url(url).render_as_string(hide_password=True)
    return StoreError(
        _("cannot open the database {database}: {reason}").format(
            database=shown, reason=f"{exc.__class__.__name__}: {exc}"),
        hint=_("check [database] url in config.toml"),
    )


def schema_state(url: str) -> SchemaState:
    """Where a database's schema stands (`gongbao-feed db version`); changes nothing."""
    engine = _open_engine(url)
    try:
        return migrations.read_state(engine)
    except SQLAlchemyError as exc:
        raise _cannot_open(url, exc) from None
    finally:
        engine.dispose()


class Store:
    """The database behind every stage; open with a SQLAlchemy URL."""

    def __init__(self, url: str, *, upgrade: bool = False) -> None:
        """Open the database, checking its schema revision (one query).

        A new, empty database is created at the newest revision. One made by
        an older release stops with a StoreError that says to run
        `gongbao-feed db upgrade`, unless `upgrade` (that command) is set:
        then its pending migrations run first. `schema` says what was done.
        """
        self.url = url
        self.engine: Engine = _open_engine(url)
        try:
            self.schema: SchemaReport = (
                migrations.upgrade(self.engine) if upgrade
                else migrations.ensure_current(self.engine)
            )
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise _cannot_open(url, exc) from None
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction. On SQLite it takes the write lock at BEGIN
        (BEGIN IMMEDIATE): a transaction that read first and then tried to write
        would fail at once (SQLITE_BUSY) when another process wrote in between,
        which is what several senders or two `assemble` runs do."""
        if self.engine.dialect.name != "sqlite":
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def autocommit(self) -> Iterator[Any]:
        """The driver's own connection (DBAPI), in autocommit, held: each statement its
        own transaction, seeing every other process's latest commit. For the send
        loop's DriverStatements; back to the pool on exit."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn.connection.dbapi_connection

    def errors(self) -> tuple[type[BaseException], ...]:
        """What a failing database raises: SQLAlchemy's errors, and the driver's own
        (DriverStatement runs on the driver's cursor), for a caller that must turn a
        database gone away into a clear message."""
        return (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error)

    def hot(self, statement: ClauseElement) -> DriverStatement:
        """`statement` compiled once for this database, to run on a driver connection."""
        return DriverStatement(statement, self.engine.dialect)

    # -- articles -----------------------------------------------------------
    def save_articles(self, articles: Iterable[Article], now: datetime) -> SaveResult:
        """Add new articles, revise changed ones, leave identical ones alone.

        All of one page in one transaction. An article is the same article
        when its id matches, or, for a corrected headline, when it stands at
        the same place of the same source file, its old id is gone from the
        page and its body is substantially the same (`models.same_story`): a
        different story put where an old one stood is a new article, so it
        is mailed. Articles stored earlier from the same source and date that
        the page no longer has come back as `gone`, untouched, the first time
        a read of the page misses them (and again if they return and go).
        """
        articles = list(articles)
        new = updated = unchanged = 0
        on_page = {a.id for a in articles}
        saved: set[str] = set()  # stored ids this page now accounts for
        with self.transaction() as conn:
            earlier = _page_rows(conn, articles)
            for art in articles:
                row = conn.execute(select(articles_t).where(articles_t.c.id == art.id)).first()
                if row is None and art.source:
                    row = _earlier_edition(art, earlier, on_page | saved)
                values = _article_values(art)
                if row is None:
                    conn.execute(
                        articles_t.insert().values(
                            id=art.id, revision=1, first_seen=now, updated=now, **values
                        )
                    )
                    saved.add(art.id)
                    new += 1
                    continue
                saved.add(row.id)
                if (row.content_hash != values["content_hash"]
                        and row.content_hash == replace(art, section=row.section).content_hash):
                    # Only the section moved (a page header now read, a [sections] pattern
                    # changed): where the paper placed it, not what it says, so no
                    # revision and no correction note, and nobody is told.
                    conn.execute(
                        articles_t.update()
                        .where(articles_t.c.id == row.id)
                        .values(section=art.section, content_hash=values["content_hash"],
                                source=art.source, position=art.position)
                    )
                    unchanged += 1
                elif row.content_hash != values["content_hash"]:
                    conn.execute(
                        articles_t.update()
                        .where(articles_t.c.id == row.id)
                        .values(revision=row.revision + 1, updated=now, **values)
                    )
                    _keep_revision(conn, row, art.correction, now)
                    updated += 1
                else:
                    if art.correction and row.issue is not None:
                        _note_unnoted(conn, row.id, art.correction, now)
                    if (row.source, row.position) != (art.source, art.position):
                        conn.execute(
                            articles_t.update()
                            .where(articles_t.c.id == row.id)
                            .values(source=art.source, position=art.position)
                        )
                    unchanged += 1
            missing = [r for r in earlier if r.id not in saved]
            noted = set(
                conn.execute(
                    select(gone_t.c.article_id).where(
                        gone_t.c.article_id.in_([r.id for r in earlier])
                    )
                ).scalars()
            )
            if noted & saved:  # back on the page in a later edition
                conn.execute(gone_t.delete().where(gone_t.c.article_id.in_(noted & saved)))
            fresh = [r for r in missing if r.id not in noted]
            if fresh:
                conn.execute(
                    gone_t.insert(), [{"article_id": r.id, "noticed": now} for r in fresh]
                )
        gone = [GoneArticle(r.id, r.title, r.source) for r in fresh]
        return SaveResult(new, updated, unchanged, gone)

    def article(self, article_id: str) -> Article | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(articles_t).where(articles_t.c.id == article_id)).first()
        return None if row is None else _row_to_article(row)

    def articles(self, ids: Iterable[str]) -> list[Article]:
        """Articles by id, in the order asked for; unknown ids are skipped."""
        ids = list(ids)
        with self.engine.connect() as conn:
            rows = conn.execute(select(articles_t).where(articles_t.c.id.in_(ids))).all()
        found = {r.id: _row_to_article(r) for r in rows}
        return [found[i] for i in ids if i in found]

    def all_articles(self) -> list[Article]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(articles_t).order_by(*_PAGE_ORDER)).all()
        return [_row_to_article(r) for r in rows]

    def unissued_articles(self) -> list[Article]:
        """Articles in no issue yet and not withdrawn, in publication order (date, page,
        position): what the next issue may take. A withdrawn one never goes into one."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(articles_t)
                .where(and_(articles_t.c.issue.is_(None), ~articles_t.c.id.in_(_WITHDRAWN)))
                .order_by(*_PAGE_ORDER)
            ).all()
        return [_row_to_article(r) for r in rows]

    # -- issues -------------------------------------------------------------
    def last_issue_number(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(issues_t.c.number))).scalar() or 0)

    def add_issue(self, issue: Issue, publish: Callable[[Issue], None] | None = None) -> None:
        """Record an issue and claim its articles; `publish` (the manifest
        writer) runs inside the transaction, so a failed write records nothing."""
        with self.transaction() as conn:
            taken = conn.execute(
                select(articles_t.c.id).where(
                    and_(articles_t.c.id.in_(issue.article_ids), articles_t.c.issue.is_not(None))
                )
            ).all()
            if taken:
                raise StoreError(_("article {id} is already in an issue").format(id=taken[0].id))
            later = select(issues_t.c.number).where(issues_t.c.number >= issue.number)
            if conn.execute(later).first():
                raise StoreError(_("issue number {number} is not after the last issue")
                                 .format(number=issue.number))
            try:
                conn.execute(
                    issues_t.insert().values(
                        number=issue.number, date=issue.date, title=issue.title,
                        created=issue.created,
                    )
                )
                for pos, aid in enumerate(issue.article_ids):
                    conn.execute(
                        issue_articles_t.insert().values(
                            issue=issue.number, position=pos, article_id=aid
                        )
                    )
            except IntegrityError as exc:
                # PostgreSQL, several machines: another one recorded this number or
                # these articles between the checks above and these inserts.
                raise StoreError(
                    _("issue {number} was not recorded: the number or one of its "
                      "articles is taken, or an article is unknown ({reason})")
                    .format(number=issue.number, reason=exc.orig)
                ) from None
            conn.execute(
                articles_t.update()
                .where(articles_t.c.id.in_(issue.article_ids))
                .values(issue=issue.number)
            )
            if publish is not None:
                publish(issue)

    def issue(self, number: int) -> Issue | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(issues_t).where(issues_t.c.number == number)).first()
            if row is None:
                return None
            return self._issue(conn, row)

    def issues(self, newest_first: bool = True, limit: int | None = None) -> list[Issue]:
        order = issues_t.c.number.desc() if newest_first else issues_t.c.number
        with self.engine.connect() as conn:
            rows = conn.execute(select(issues_t).order_by(order).limit(limit)).all()
            return [self._issue(conn, r) for r in rows]

    @staticmethod
    def _issue(conn: Connection, row: Any) -> Issue:
        ids = conn.execute(
            select(issue_articles_t.c.article_id)
            .where(issue_articles_t.c.issue == row.number)
            .order_by(issue_articles_t.c.position)
        ).scalars()
        return Issue(row.number, row.date, row.title, tuple(ids), row.created)

    # -- feed ids -----------------------------------------------------------
    def feed_ids(self, kind: str) -> dict[str, str]:
        """Every stored feed id of one kind ("article", "issue", "feed"), by key."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(feed_ids_t.c.key, feed_ids_t.c.id).where(feed_ids_t.c.kind == kind)
            ).all()
        return {r.key: r.id for r in rows}

    def keep_feed_ids(self, kind: str, minted: dict[str, str], now: datetime) -> dict[str, str]:
        """Store ids minted for keys that have none yet; return the stored ids for `minted`'s keys.

        An id already stored wins (another render may have minted it first,
        two assembles or senders at once: ON CONFLICT DO NOTHING keeps
        theirs), so an id, once published, never changes.
        """
        if not minted:
            return {}
        keys = list(minted)
        with self.transaction() as conn:
            rows = [{"kind": kind, "key": k, "id": v, "minted": now} for k, v in minted.items()]
            conn.execute(
                upsert(conn, feed_ids_t).on_conflict_do_nothing(
                    index_elements=[feed_ids_t.c.kind, feed_ids_t.c.key]
                ),
                rows,
            )
            stored = conn.execute(
                select(feed_ids_t.c.key, feed_ids_t.c.id).where(
                    and_(feed_ids_t.c.kind == kind, feed_ids_t.c.key.in_(keys))
                )
            ).all()
        return {r.key: r.id for r in stored}

    # -- editorial decisions (editorial.py) -------------------------------------
    def withdraw(self, article_id: str, when: datetime, by: str, reason: str) -> Withdrawal:
        """Record a withdrawal; StoreError if the article is unknown or already withdrawn."""
        with self.transaction() as conn:
            self._known(conn, article_id)
            if conn.execute(
                select(withdrawals_t.c.id).where(
                    and_(withdrawals_t.c.article_id == article_id,
                         withdrawals_t.c.restored_at.is_(None))
                )
            ).first():
                raise StoreError(
                    _("article {id} is already withdrawn").format(id=article_id),
                    hint=_("`gongbao-feed articles show {id}` says when and why").format(
                        id=article_id),
                )
            conn.execute(withdrawals_t.insert().values(
                article_id=article_id, withdrawn_at=when, withdrawn_by=by, reason=reason,
            ))
        return Withdrawal(article_id, when, by, reason)

    def restore(self, article_id: str, when: datetime, by: str) -> Withdrawal:
        """End the article's active withdrawal; StoreError if it has none."""
        with self.transaction() as conn:
            self._known(conn, article_id)
            row = conn.execute(
                select(withdrawals_t).where(
                    and_(withdrawals_t.c.article_id == article_id,
                         withdrawals_t.c.restored_at.is_(None))
                )
            ).first()
            if row is None:
                raise StoreError(_("article {id} is not withdrawn").format(id=article_id))
            conn.execute(
                withdrawals_t.update().where(withdrawals_t.c.id == row.id)
                .values(restored_at=when, restored_by=by)
            )
        return Withdrawal(article_id, row.withdrawn_at, row.withdrawn_by, row.reason, when, by)

    def withdrawals(
        self, article_id: str | None = None, active_only: bool = True
    ) -> list[Withdrawal]:
        """Withdrawals, oldest first: the active ones (default) or every one on record."""
        query = select(withdrawals_t).order_by(withdrawals_t.c.id)
        if article_id is not None:
            query = query.where(withdrawals_t.c.article_id == article_id)
        if active_only:
            query = query.where(withdrawals_t.c.restored_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Withdrawal(r.article_id, r.withdrawn_at, r.withdrawn_by, r.reason, r.restored_at,
                       r.restored_by)
            for r in rows
        ]

    def corrections(self, article_id: str | None = None) -> list[Correction]:
        """Corrections, oldest first: one article's, or every one."""
        query = select(corrections_t).order_by(corrections_t.c.id)
        if article_id is not None:
            query = query.where(corrections_t.c.article_id == article_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Correction(r.article_id, r.revision, r.corrected_at, r.note, r.noted_by, r.noted_at)
            for r in rows
        ]

    def note_correction(
        self, article_id: str, note: str, when: datetime, by: str
    ) -> Correction:
        """Set the editor's note on the article's latest correction, or, when it has none,
        record a correction of its current revision now with that note."""
        with self.transaction() as conn:
            row = self._known(conn, article_id)
            latest = conn.execute(
                select(corrections_t).where(corrections_t.c.article_id == article_id)
                .order_by(corrections_t.c.id.desc()).limit(1)
            ).first()
            if latest is None:
                conn.execute(corrections_t.insert().values(
                    article_id=article_id, revision=row.revision, corrected_at=when, note=note,
                    noted_by=by, noted_at=when,
                ))
                return Correction(article_id, row.revision, when, note, by, when)
            conn.execute(
                corrections_t.update().where(corrections_t.c.id == latest.id)
                .values(note=note, noted_by=by, noted_at=when)
            )
            return Correction(article_id, latest.revision, latest.corrected_at, note, by, when)

    def revisions(self, article_id: str) -> list[Revision]:
        """The article's earlier texts, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(article_revisions_t)
                .where(article_revisions_t.c.article_id == article_id)
                .order_by(article_revisions_t.c.revision)
            ).all()
        return [Revision(r.article_id, r.revision, r.saved, json.loads(r.content)) for r in rows]

    @staticmethod
    def _known(conn: Connection, article_id: str) -> Any:
        row = conn.execute(select(articles_t).where(articles_t.c.id == article_id)).first()
        if row is None:
            raise StoreError(
                _("there is no article {id}").format(id=article_id),
                hint=_("`gongbao-feed articles list` shows every article's id"),
            )
        return row

    # -- approvals and the quality gate (review.py) ------------------------------
    def request_approval(self, issue: int, when: datetime, editors: Sequence[str]) -> Approval:
        """Record that `issue` waits for an editor (its proof went to `editors`); an issue
        already on record keeps its record (a second proof changes nothing)."""
        with self.transaction() as conn:
            if conn.execute(select(approvals_t.c.issue)
                            .where(approvals_t.c.issue == issue)).first() is None:
                conn.execute(approvals_t.insert().values(
                    issue=issue, requested_at=when, editors=json.dumps(list(editors))))
        found = self.approval(issue)
        assert found is not None
        return found

    def approval(self, issue: int) -> Approval | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(approvals_t).where(approvals_t.c.issue == issue)).first()
        return None if row is None else _row_to_approval(row)

    def approvals(self, awaiting: bool = False, to_send: bool = False) -> list[Approval]:
        """Approval records by issue: all, those `awaiting` an editor, or those approved
        whose send to the members has not run to its end (`to_send`)."""
        query = select(approvals_t).order_by(approvals_t.c.issue)
        if awaiting:
            query = query.where(approvals_t.c.approved_at.is_(None))
        if to_send:
            query = query.where(and_(approvals_t.c.approved_at.is_not(None),
                                     approvals_t.c.sent_at.is_(None)))
        with self.engine.connect() as conn:
            return [_row_to_approval(r) for r in conn.execute(query).all()]

    def approve(self, issue: int, when: datetime, by: str, via: str) -> tuple[Approval, bool]:
        """Approve `issue` (made an approval record if it had none); (the record, whether
        this call approved it). An issue approved already keeps who and when."""
        with self.transaction() as conn:
            row = conn.execute(select(approvals_t).where(approvals_t.c.issue == issue)).first()
            insert = upsert(conn, approvals_t)
            if row is None and insert is not None:  # another approver may insert meanwhile
                conn.execute(insert.values(
                    issue=issue, requested_at=when, editors="[]", approved_at=when,
                    approved_by=by, approved_via=via,
                ).on_conflict_do_nothing(index_elements=[approvals_t.c.issue]))
                mine = conn.execute(select(approvals_t).where(approvals_t.c.issue == issue)).one()
                # (psycopg reports no rowcount for ON CONFLICT DO NOTHING: read it back)
                changed = (mine.approved_by, mine.approved_via) == (by, via) and \
                    _row_to_approval(mine).approved_at == when
            elif row is None:
                conn.execute(approvals_t.insert().values(
                    issue=issue, requested_at=when, editors="[]", approved_at=when,
                    approved_by=by, approved_via=via))
                changed = True
            else:
                changed = conn.execute(
                    approvals_t.update()
                    .where(and_(approvals_t.c.issue == issue,
                                approvals_t.c.approved_at.is_(None)))
                    .values(approved_at=when, approved_by=by, approved_via=via)
                ).rowcount > 0
        found = self.approval(issue)
        assert found is not None
        return found, changed

    def mark_sent(self, issue: int, when: datetime) -> None:
        """An approved issue's send to the members ran to its end."""
        with self.transaction() as conn:
            conn.execute(
                approvals_t.update()
                .where(and_(approvals_t.c.issue == issue, approvals_t.c.sent_at.is_(None)))
                .values(sent_at=when))

    def record_check(self, check: SendCheck) -> None:
        """Keep the gate's latest verdict for the issue (replacing an earlier one)."""
        values = {
            "checked_at": check.checked_at, "passed": check.passed,
            "problems": json.dumps([p.to_json() for p in check.problems], ensure_ascii=False),
            "forced_at": check.forced_at, "forced_by": check.forced_by,
        }
        with self.transaction() as conn:
            insert = upsert(conn, send_checks_t)
            if insert is not None:  # several senders at once: one statement, no race
                conn.execute(insert.values(issue=check.issue, **values)
                             .on_conflict_do_update(index_elements=[send_checks_t.c.issue],
                                                    set_=values))
                return
            conn.execute(send_checks_t.delete().where(send_checks_t.c.issue == check.issue))
            conn.execute(send_checks_t.insert().values(issue=check.issue, **values))

    def send_checks(self) -> list[SendCheck]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(send_checks_t).order_by(send_checks_t.c.issue)).all()
        return [
            SendCheck(r.issue, r.checked_at, bool(r.passed),
                      tuple(Problem.from_json(p) for p in json.loads(r.problems)),
                      r.forced_at, r.forced_by)
            for r in rows
        ]

    # -- members ------------------------------------------------------------
    def member(self, email: str) -> Member | None:
        """The member whose mailbox this is, however `email` is capitalised."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(members_t).where(members_t.c.mailbox == mailbox_key(email))
            ).first()
        return None if row is None else _row_to_member(row)

    def members(self, active_only: bool = False) -> list[Member]:
        query = select(members_t).order_by(members_t.c.joined, bytewise(members_t.c.email))
        if active_only:
            query = query.where(members_t.c.status == MemberStatus.ACTIVE.value)
        with self.engine.connect() as conn:
            return [_row_to_member(r) for r in conn.execute(query).all()]

    def iter_members(self, active_only: bool = False, batch: int = 500) -> Iterator[Member]:
        """Members in address order, read `batch` at a time: a send of any size
        holds one batch in memory, and no read transaction stays open."""
        after = ""
        while True:
            query = (
                select(members_t)
                .where(bytewise(members_t.c.email) > after)
                .order_by(bytewise(members_t.c.email))
                .limit(batch)
            )
            if active_only:
                query = query.where(members_t.c.status == MemberStatus.ACTIVE.value)
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            yield from (_row_to_member(r) for r in rows)
            if len(rows) < batch:
                return
            after = rows[-1].email

    def count_members(self, active_only: bool = False) -> int:
        query = select(func.count()).select_from(members_t)
        if active_only:
            query = query.where(members_t.c.status == MemberStatus.ACTIVE.value)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def save_member(self, member: Member) -> None:
        self.save_members([member])

    def save_members(self, members: Iterable[Member]) -> None:
        """Insert or update members, all in one transaction (an import is all or nothing).

        A member is found by mailbox (`mailbox_key`): a member already on file
        keeps the spelling first saved, whatever spelling this save uses. One
        INSERT … ON CONFLICT DO UPDATE per member where the database has it
        (SQLite, PostgreSQL): no window between "is it there?" and the insert
        for another machine's import or sign-up to fall into.
        """
        rows: dict[str, dict[str, Any]] = {}  # a mailbox twice: the last one counts
        for member in members:
            key = mailbox_key(member.email)
            rows[key] = {
                "email": rows[key]["email"] if key in rows else member.email,
                "mailbox": key,
                "name": member.name,
                "status": member.status.value,
                "joined": member.joined,
                "unsubscribed_at": member.unsubscribed_at,
                "unsubscribed_via": member.unsubscribed_via,
                "bounced_at": member.bounced_at,
                "bounce_reason": member.bounce_reason,
                "soft_bounces": member.soft_bounces,
            }
        if not rows:
            return
        with self.transaction() as conn:
            insert = upsert(conn, members_t)
            if insert is not None:
                stmt = insert.on_conflict_do_update(
                    index_elements=[members_t.c.mailbox],
                    set_={c: insert.excluded[c] for c in _MEMBER_FIELDS},
                )
                conn.execute(stmt, list(rows.values()))
                return
            for key, row in rows.items():
                values = {c: row[c] for c in _MEMBER_FIELDS}
                exists = conn.execute(
                    select(members_t.c.email).where(members_t.c.mailbox == key)
                ).first()
                if exists:
                    conn.execute(
                        members_t.update().where(members_t.c.mailbox == key).values(**values)
                    )
                else:
                    conn.execute(
                        members_t.insert().values(email=row["email"], mailbox=key, **values)
                    )

    def remove_member(self, email: str) -> bool:
        """Delete the member whose mailbox this is, in any spelling."""
        with self.transaction() as conn:
            return bool(conn.execute(
                members_t.delete().where(members_t.c.mailbox == mailbox_key(email))
            ).rowcount)

    def unsubscribe(self, email: str, when: datetime, via: str) -> bool:
        """Mark a member unsubscribed, found by mailbox (any spelling of it, such as
        the one an older link carries); False if unknown or already out."""
        with self.transaction() as conn:
            result = conn.execute(
                members_t.update()
                .where(
                    and_(
                        members_t.c.mailbox == mailbox_key(email),
                        members_t.c.status == MemberStatus.ACTIVE.value,
                    )
                )
                .values(
                    status=MemberStatus.UNSUBSCRIBED.value,
                    unsubscribed_at=when,
                    unsubscribed_via=via,
                )
            )
            return bool(result.rowcount)

    # -- bounces (their rules are in bounces.py and Newsroom.process_bounces) -----
    def bounce_seen(self, fingerprint: str) -> bool:
        """Whether a message with these bytes (its SHA-256) was processed before."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(bounces_t.c.id).where(bounces_t.c.fingerprint == fingerprint)
            ).first() is not None

    def soft_bounced_issues(self, email: str) -> list[int]:
        """The issues this member's recorded soft bounces name, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(bounces_t.c.issue).distinct()
                .where(bounces_t.c.email == email, bounces_t.c.kind == "soft",
                       bounces_t.c.issue.is_not(None))
                .order_by(bounces_t.c.issue.desc())
            ).all()
        return [r.issue for r in rows]

    def sent_between(self, email: str, after: int, before: int) -> list[int]:
        """Issues strictly between `after` and `before` the ledger has as sent to `email`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries_t.c.issue).where(
                    deliveries_t.c.email == email,
                    deliveries_t.c.state == DeliveryState.SENT.value,
                    deliveries_t.c.issue > after, deliveries_t.c.issue < before,
                ).order_by(deliveries_t.c.issue)
            ).all()
        return [r.issue for r in rows]

    def record_bounce(
        self, *, fingerprint: str, received: datetime, kind: str, email: str | None,
        issue: int | None, status: str | None, detail: str, source: str,
        member: Member | None = None, was: MemberStatus | None = None,
    ) -> bool:
        """Record one processed message and, in the same transaction, save `member`
        (its new status and counters) if its status is still `was` (an unsubscribe
        from the web page in between is not undone). False, and nothing saved, when
        a message with these bytes was recorded before: processing it again changes
        nothing."""
        with self.transaction() as conn:
            if conn.execute(
                select(bounces_t.c.id).where(bounces_t.c.fingerprint == fingerprint)
            ).first() is not None:
                return False
            conn.execute(bounces_t.insert().values(
                fingerprint=fingerprint, received=received, kind=kind, email=email,
                issue=issue, status=status, detail=detail, source=source,
            ))
            if member is not None:
                conn.execute(
                    members_t.update()
                    .where(members_t.c.mailbox == mailbox_key(member.email),
                           members_t.c.status == (was or member.status).value)
                    .values(**{
                        "status": member.status.value,
                        "unsubscribed_at": member.unsubscribed_at,
                        "unsubscribed_via": member.unsubscribed_via,
                        "bounced_at": member.bounced_at,
                        "bounce_reason": member.bounce_reason,
                        "soft_bounces": member.soft_bounces,
                    })
                )
        return True

    def is_active(self, email: str) -> bool:
        with self.engine.connect() as conn:
            status = conn.execute(_MEMBER_STATUS, {"k_mailbox": mailbox_key(email)}).scalar()
        return status == MemberStatus.ACTIVE.value

    @contextmanager
    def activity_checker(self) -> Iterator[Callable[[str], bool]]:
        """is_active() for a send's every member: one connection held, in autocommit,
        so each check is one statement that sees every other process's latest
        commit (an unsubscribe from the web page counts at once), with no
        transaction kept open between checks."""
        status = self.hot(_MEMBER_STATUS)
        active = MemberStatus.ACTIVE.value
        with self.autocommit() as driver:

            def is_active(email: str) -> bool:
                rows = status.rows(driver, {"k_mailbox": mailbox_key(email)})
                return bool(rows) and rows[0][0] == active

            yield is_active

    # -- web signups, double opt-in (signup.py) ----------------------------------
    def request_signup(
        self, email: str, name: str, now: datetime, resend_after: timedelta
    ) -> bool:
        """Record a signup from the web form; True when a confirmation is to be sent now.

        One transaction. A new address becomes a `pending` member (never
        mailed a digest); an active member is left as they are and sent
        nothing; any other member (unsubscribed, bounced) keeps their status
        until the confirmation is followed. The signup row holds the name
        given and when the last confirmation went: within `resend_after` of
        it, no other is sent (False), however many requests arrive, and the
        decision is one conditional upsert, so two requests at once (two
        processes, two machines) send one.
        """
        key = mailbox_key(email)
        with self.transaction() as conn:
            row = conn.execute(
                select(members_t.c.status).where(members_t.c.mailbox == key)
            ).first()
            if row is not None and row.status == MemberStatus.ACTIVE.value:
                return False
            if row is None:
                conn.execute(members_t.insert().values(
                    email=email, mailbox=key, name=name, status=MemberStatus.PENDING.value,
                    joined=now,
                ))
            elif row.status == MemberStatus.PENDING.value and name:
                conn.execute(members_t.update().where(members_t.c.mailbox == key)
                             .values(name=name))
            values = {"mailbox": key, "email": email, "name": name, "requested": now,
                      "confirmation_sent": now}
            insert = upsert(conn, signups_t)
            if insert is not None:
                stmt = insert.values(**values).on_conflict_do_update(
                    index_elements=[signups_t.c.mailbox],
                    set_={"name": insert.excluded.name, "requested": now,
                          "confirmation_sent": now},
                    where=signups_t.c.confirmation_sent <= now - resend_after,
                ).returning(signups_t.c.mailbox)
                # A row back: inserted, or updated because the last one is old enough.
                # (rowcount is no guide: psycopg may report -1 for an upsert.)
                if conn.execute(stmt).first() is not None:
                    return True
                conn.execute(signups_t.update().where(signups_t.c.mailbox == key)
                             .values(requested=now, name=name or signups_t.c.name))
                return False
            sent = conn.execute(
                select(signups_t.c.confirmation_sent).where(signups_t.c.mailbox == key)
            ).scalar()
            if sent is None:
                conn.execute(signups_t.insert().values(**values))
                return True
            fresh = sent > now - resend_after
            conn.execute(signups_t.update().where(signups_t.c.mailbox == key).values(
                name=name or signups_t.c.name, requested=now,
                **({} if fresh else {"confirmation_sent": now})))
            return not fresh

    def confirm_signup(self, email: str, issued: datetime, now: datetime) -> bool:
        """Follow a confirmation link made at `issued`: the member becomes active.

        True when the member is active afterwards. A pending member becomes
        active (joined now); an unsubscribed or bounced one only if they left
        before the link was made, so an old link cannot undo a later
        unsubscribe; an active one stays as they are. The name given with the
        signup, if any, is theirs from now. Unknown addresses (removed by the
        operator meanwhile) change nothing.
        """
        key = mailbox_key(email)
        with self.transaction() as conn:
            member = conn.execute(select(members_t).where(members_t.c.mailbox == key)).first()
            if member is None:
                return False
            if member.status == MemberStatus.ACTIVE.value:
                return True
            left = member.unsubscribed_at
            # Whole seconds: the link's time has no fraction; the same second counts as before.
            if (member.status != MemberStatus.PENDING.value and left is not None
                    and int(left.timestamp()) > int(issued.timestamp())):
                return False
            signup = conn.execute(select(signups_t).where(signups_t.c.mailbox == key)).first()
            values: dict[str, Any] = {
                "status": MemberStatus.ACTIVE.value, "unsubscribed_at": None,
                "unsubscribed_via": None,
            }
            if member.status == MemberStatus.PENDING.value:
                values["joined"] = now
            if signup is not None and signup.name:
                values["name"] = signup.name
            conn.execute(members_t.update().where(members_t.c.mailbox == key).values(**values))
            conn.execute(signups_t.delete().where(signups_t.c.mailbox == key))
            return True

    # -- the delivery ledger's rows (its rules are in ledger.py) ----------------
    def delivery(self, issue: int, email: str) -> Delivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(_DELIVERY_ROW, {"k_issue": issue, "k_email": email}).first()
        return None if row is None else _row_to_delivery(row)

    def deliveries(self, issue: int | None = None) -> list[Delivery]:
        query = select(deliveries_t).order_by(deliveries_t.c.issue, bytewise(deliveries_t.c.email))
        if issue is not None:
            query = query.where(deliveries_t.c.issue == issue)
        with self.engine.connect() as conn:
            return [_row_to_delivery(r) for r in conn.execute(query).all()]


#: The ids of the articles withdrawn now (not restored).
_WITHDRAWN = select(withdrawals_t.c.article_id).where(withdrawals_t.c.restored_at.is_(None))

_MEMBER_FIELDS = ("name", "status", "joined", "unsubscribed_at", "unsubscribed_via",
                  "bounced_at", "bounce_reason", "soft_bounces")

# A send runs these once or twice a member: built once, they skip SQLAlchemy's
# statement construction, which cost more than SQLite's work (3× per row).
_MEMBER_STATUS = select(members_t.c.status).where(
    members_t.c.mailbox == bindparam("k_mailbox")
)
_DELIVERY_KEY = and_(
    deliveries_t.c.issue == bindparam("k_issue"), deliveries_t.c.email == bindparam("k_email")
)
_DELIVERY_ROW = select(deliveries_t).where(_DELIVERY_KEY)


# Text by code point on every database (see `bytewise`): the publication order.
_PAGE_ORDER = (
    articles_t.c.date, bytewise(articles_t.c.source), articles_t.c.position,
    bytewise(articles_t.c.id),
)


def _page_rows(conn: Connection, articles: Sequence[Article]) -> list[Any]:
    """The rows stored before this save from the pages (source, date) these articles are on.

    Read once, before any write, so `gone` and the corrected-headline match
    both see the page as it was, not as this save is leaving it.
    """
    pages = sorted({(a.source, a.date) for a in articles if a.source})
    if not pages:
        return []
    where = [and_(articles_t.c.source == src, articles_t.c.date == day) for src, day in pages]
    return list(conn.execute(select(articles_t).where(or_(*where)).order_by(*_PAGE_ORDER)).all())


def _earlier_edition(art: Article, earlier: Sequence[Any], taken: set[str]) -> Any | None:
    """The stored row `art` is a later edition of, when its headline changed (its id with it).

    Only a row at the same place of the same page, not claimed by an article
    on the page under its own id or already matched, and with substantially
    the same body. Several rows can share that place (a story that went and
    the one that replaced it), hence every one is tried.
    """
    for row in earlier:
        if (
            row.id not in taken
            and (row.source, row.date, row.position) == (art.source, art.date, art.position)
            and same_story(_row_to_article(row), art)
        ):
            return row
    return None


def _keep_revision(conn: Connection, row: Any, note: str | None, now: datetime) -> None:
    """Save the text `row` held before this update; a published article's change is a
    correction (editorial.py), noted with the page's `更正：` line if it had one."""
    old = _row_to_article(row)
    conn.execute(
        article_revisions_t.insert().values(
            article_id=row.id, revision=row.revision, saved=row.updated,
            content=json.dumps(old.content(), ensure_ascii=False, sort_keys=True),
        )
    )
    if row.issue is not None:
        conn.execute(
            corrections_t.insert().values(
                article_id=row.id, revision=row.revision + 1, corrected_at=now, note=note,
                noted_by="page" if note else None, noted_at=now if note else None,
            )
        )


def _note_unnoted(conn: Connection, article_id: str, note: str, now: datetime) -> None:
    """A page re-read with the same text but a new `更正：` line: the note for its latest
    correction, if that one has none yet (an editor's note is never overwritten)."""
    latest = conn.execute(
        select(corrections_t.c.id, corrections_t.c.note)
        .where(corrections_t.c.article_id == article_id)
        .order_by(corrections_t.c.id.desc())
        .limit(1)
    ).first()
    if latest is not None and not latest.note:
        conn.execute(
            corrections_t.update().where(corrections_t.c.id == latest.id)
            .values(note=note, noted_by="page", noted_at=now)
        )


class DriverStatement:
    """A statement of the send loop, run on the database driver's own cursor.

    A send runs two statements per message, one per member (their status
    just before their copy is made, the settle after the relay's reply),
    on threads that share the GIL with the SMTP connection. SQLAlchemy's
    execute costs 15–20 µs of CPU a call even with the compiled form cached,
    the driver's own 3–4 µs. So the statement is compiled here once for the
    dialect, and each call builds its parameters as SQLAlchemy would
    (`construct_params`, then each type's bind processor: a datetime to
    SQLite's text, say) and hands them to the driver. Driver errors come
    through as the driver raises them. `driver` is a DBAPI connection in
    autocommit (`Store.autocommit`).
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if any(b.expanding or b.literal_execute for b in compiled.binds.values()):
            raise ValueError("a DriverStatement takes no IN-list or literal-execute parameters")
        self.sql = compiled.string
        self._compiled = compiled
        self._order = compiled.positiontup if compiled.positional else None
        self._processors = {
            name: process
            for name, bind in compiled.binds.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }

    def parameters(self, values: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        params = self._compiled.construct_params(values, escape_names=False)
        for name, process in self._processors.items():
            if name in params:
                params[name] = process(params[name])
        if self._order is None:
            return params
        return [params[name] for name in self._order]

    def execute(self, driver: Any, values: dict[str, Any]) -> int:
        """Run it; the number of rows it changed."""
        cursor = driver.cursor()
        try:
            cursor.execute(self.sql, self.parameters(values))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def rows(self, driver: Any, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run it; every row of its result, as the driver gives them (no result types)."""
        cursor = driver.cursor()
        try:
            cursor.execute(self.sql, self.parameters(values))
            return list(cursor.fetchall())
        finally:
            cursor.close()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()

