"""The database's tables: one definition for the store, the ledger and the migrations.

SQLAlchemy Core Table objects on one MetaData, plus the two column helpers
every database needs the same way (UTC datetimes; text compared by code
point). The store queries these tables, the ledger writes the deliveries
table, and the migrations compare a database with this metadata; none of
them import each other for it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        # Naive UTC from a TIMESTAMP column (SQLite, PostgreSQL `timestamp`); an
        # aware value if a column is ever `timestamptz`: the same instant, in UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class bytewise(FunctionElement[Any]):  # lower case: it reads as a SQL function
    """A text column compared and sorted by code point, on every database.

    SQLite compares text byte by byte (UTF-8, so by code point); PostgreSQL by
    the database's collation (en_US, zh_CN: "alice" before "Bob", 八 before
    一, punctuation ignored), so a list ordered by address or page file
    would come out in another order, and pages of members (`iter_members`)
    would follow rules the code cannot know. `COLLATE "C"` makes PostgreSQL
    compare bytes; elsewhere the column is left as it is.
    """

    inherit_cache = True

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(bytewise)
def _bytewise(element: bytewise, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(bytewise, "postgresql")
def _bytewise_postgresql(element: bytewise, compiler: Any, **kw: Any) -> str:
    return f'{compiler.process(element.clauses, **kw)} COLLATE "C"'


def upsert(conn: Connection, table: Table) -> Any:
    """INSERT … ON CONFLICT for this connection's database; None where there is none."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    return None


metadata = MetaData()

articles_t = Table(
    "articles",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("date", Date, nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("kicker", Text),
    Column("subtitle", Text),
    Column("dateline", Text),
    Column("section", Text),
    Column("byline", Text, nullable=False),
    Column("captions", Text, nullable=False),
    Column("paragraphs", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("source", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("issue", Integer, ForeignKey("issues.number"), index=True),
)

issues_t = Table(
    "issues",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("date", Date, nullable=False),
    Column("title", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False),
)

issue_articles_t = Table(
    "issue_articles",
    metadata,
    Column("issue", Integer, ForeignKey("issues.number"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("article_id", String(64), ForeignKey("articles.id"), nullable=False, unique=True),
)

# Articles a re-read page no longer has, noted once so `gone` is reported once:
# the service re-reads every page in the inbox on each run.
gone_t = Table(
    "gone_articles",
    metadata,
    Column("article_id", String(64), ForeignKey("articles.id"), primary_key=True),
    Column("noticed", UTCDateTime, nullable=False),
)

# Feed ids, minted once when a thing is first published and never derived again
# (RFC 4287 §4.2.6: an id must not change when the document moves). kind is
# "article" (key: the article id), "issue" (key: the number) or "feed" (key:
# the feed's kind in urls.FEED_FILES).
feed_ids_t = Table(
    "feed_ids",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("id", Text, nullable=False),
    Column("minted", UTCDateTime, nullable=False),
)

members_t = Table(
    "members",
    metadata,
    Column("email", String(320), primary_key=True),  # spelt as first imported
    # The identity: models.mailbox_key(email), one row per mailbox (revision 0005).
    Column("mailbox", String(320), nullable=False, unique=True, index=True),
    Column("name", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("joined", UTCDateTime, nullable=False),
    Column("unsubscribed_at", UTCDateTime),
    Column("unsubscribed_via", Text),
    # Bounce handling (bounces.py, revision 0008).
    Column("bounced_at", UTCDateTime),
    Column("bounce_reason", Text),
    Column("soft_bounces", Integer, nullable=False, default=0, server_default="0"),
)

# Every bounce, complaint and mailed unsubscribe read from the bounce mailbox, once:
# `fingerprint` (SHA-256 of the message's bytes) makes a second read of the same
# message (a crash before it was moved aside) change nothing. kind is "hard",
# "soft", "complaint" or "unsubscribe"; issue is the one its VERP address names.
bounces_t = Table(
    "bounces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("received", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("email", String(320), index=True),
    Column("issue", Integer),
    Column("status", String(16)),
    Column("detail", Text, nullable=False, default=""),
    Column("source", Text, nullable=False, default=""),
)

deliveries_t = Table(
    "deliveries",
    metadata,
    Column("issue", Integer, ForeignKey("issues.number"), primary_key=True),
    Column("email", String(320), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("transport", String(16), nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("permanent", Boolean, nullable=False, default=False),
    Column("code", Integer),
    Column("detail", Text, nullable=False, default=""),
    Column("message_id", Text, nullable=False, default=""),
    Column("updated", UTCDateTime, nullable=False),
    # A pending row is a claim: which sender holds it, and until when (see ledger.py).
    Column("claimed_by", Text, nullable=False, default="", server_default=""),
    Column("lease_until", UTCDateTime),
)

# Editorial decisions (editorial.py), kept beside the articles so a re-read page
# can never undo them. A withdrawal row is active until restored_at is set; the
# rows stay as the record of who withdrew and restored what, when and why.
withdrawals_t = Table(
    "withdrawals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("article_id", String(64), ForeignKey("articles.id"), nullable=False, index=True),
    Column("withdrawn_at", UTCDateTime, nullable=False),
    Column("withdrawn_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("restored_at", UTCDateTime),
    Column("restored_by", Text),
)

# A change to an article after its issue went out, with the editor's note.
corrections_t = Table(
    "corrections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("article_id", String(64), ForeignKey("articles.id"), nullable=False, index=True),
    Column("revision", Integer, nullable=False),
    Column("corrected_at", UTCDateTime, nullable=False),
    Column("note", Text),
    Column("noted_by", Text),
    Column("noted_at", UTCDateTime),
)

# Every earlier text of an article (articles.content_hash's fields as JSON),
# saved when a later revision replaced it.
article_revisions_t = Table(
    "article_revisions",
    metadata,
    Column("article_id", String(64), ForeignKey("articles.id"), primary_key=True),
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("saved", UTCDateTime, nullable=False),
    Column("content", Text, nullable=False),
)

# An issue that waits for an editor before members are mailed (review.py): made
# when the proof goes out, approved by `approve N` or the proof's link; sent_at
# once a send to the members ran to its end, so the scheduler sends it once.
approvals_t = Table(
    "approvals",
    metadata,
    Column("issue", Integer, ForeignKey("issues.number"), primary_key=True,
           autoincrement=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("editors", Text, nullable=False),  # JSON list of the addresses proofed
    Column("approved_at", UTCDateTime),
    Column("approved_by", Text),
    Column("approved_via", String(16)),  # "command" or "link"
    Column("sent_at", UTCDateTime),
)

# The quality gate's latest verdict per issue (review.py): what failed, and whether
# a human forced the send past it (`send --force`), by whom.
send_checks_t = Table(
    "send_checks",
    metadata,
    Column("issue", Integer, ForeignKey("issues.number"), primary_key=True,
           autoincrement=False),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("problems", Text, nullable=False),  # JSON list of {"check", "articles", "detail"}
    Column("forced_at", UTCDateTime),
    Column("forced_by", Text),
)

# Web signups waiting for their confirmation (signup.py), one row per mailbox:
# when the last confirmation was sent (one an hour at most), and the name given,
# applied when the link is followed. An unsubscribed member who signs up again
# has a row here and stays unsubscribed until then.
signups_t = Table(
    "signups",
    metadata,
    Column("mailbox", String(320), primary_key=True),  # models.mailbox_key
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("requested", UTCDateTime, nullable=False),
    Column("confirmation_sent", UTCDateTime, nullable=False),
)
