"""The delivery ledger: who has been sent an issue, and the one owner of that rule.

Every sender of an issue, in one process or many, on one machine or several
that share the database, goes through the same three steps:

1. `claim` the next members: a row per member, `pending`, held by this
   sender until its lease runs out. Claiming is atomic (SQLite's write lock;
   PostgreSQL's `FOR UPDATE SKIP LOCKED` on the members and `ON CONFLICT`
   on the ledger row), so a member is held by at most one live sender.
2. hand their messages to the transport;
3. `settle` each claim from the transport's report: `sent` only after the
   relay's 2xx to DATA or the outbox file's rename; `failed` with the
   relay's code and text, permanent (5xx: left alone unless asked with
   retry_failed) or temporary (the next send tries again).

A claim whose sender died is taken over by another sender once its lease
has run out. That takeover is the one place a member can get a message
twice: the relay accepted it and the sender died before settling. An SMTP
connection holds back its next message's final dot until the last one is
settled (smtp.py), so a crash repeats at most one message per connection of
the sender that died; the outbox replaces a member's file
under the same name, so there a takeover repeats nothing. A claim the sender
gives back (stopped before the message was tried) is released at once.

The pure half, `summarise`, turns ledger rows into what `gongbao-feed
deliveries` shows.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ARRAY, and_, bindparam, delete, func, or_, select, true, update
from sqlalchemy.engine import Connection

from . import host
from .i18n import _, ngettext
from .models import Delivery, DeliveryState, Issue, Member
from .schema import bytewise, deliveries_t, members_t, upsert
from .store import Store, _row_to_member
from .transport import Outcome

PENDING, SENT, FAILED = (s.value for s in DeliveryState)


def sender_name() -> str:
    """Who holds a claim: host, process and a random tag (a pid can come back)."""
    return f"{host.name()}:{os.getpid()}:{secrets.token_hex(3)}"


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _locked(method: _Method) -> _Method:
    """Run a Ledger method holding the ledger's lock."""
    @functools.wraps(method)
    def locked(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return locked  # type: ignore[return-value]


class Ledger:
    """Claims and settles one issue's deliveries for one sender.

    `lease` is how long a claim is held without word from its sender; the
    sender renews its claims while it works (`renew`, every lease/3 at most).
    `batched` settles outcomes in groups (every `batch_size` outcomes or
    `batch_seconds`) instead of one commit each; use it only where the
    transport's redelivery replaces the copy, since a crash loses the group.
    `now` is the wall clock the rows are stamped with (UTC-aware).
    """

    def __init__(
        self,
        store: Store,
        issue: int,
        *,
        now: Callable[[], datetime],
        transport: str,
        lease: timedelta = timedelta(minutes=5),
        retry_failed: bool = False,
        batched: bool = False,
        batch_size: int = 200,
        batch_seconds: float = 0.5,
        sender: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.issue = issue
        self.now = now
        self.transport = transport
        self.lease = lease
        self.retry_failed = retry_failed
        self.batched = batched
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.sender = sender or sender_name()
        self.monotonic = monotonic
        self._held: set[str] = set()
        #: The last address a claim looked at: the next claim looks past it first.
        self._after: str | None = None
        self._waiting: list[Outcome] = []
        self._since = monotonic()
        self._renewed = monotonic()
        self._postgres = store.engine.dialect.name == "postgresql"
        #: One connection in autocommit held for the send's single settles, each one
        #: statement on the driver's cursor: taking a connection from the pool and
        #: BEGIN, UPDATE, COMMIT through SQLAlchemy per message cost more than the
        #: UPDATE itself (three round trips to PostgreSQL where one does).
        self._autocommit = contextlib.ExitStack()
        self._driver: Any = None
        self._settle = store.hot(_SETTLE)
        #: The send loop's threads share one ledger: the SMTP connections settle,
        #: the message source releases and fails claims, and a flush must take the
        #: outcomes waiting and write them in one step.
        self._lock = threading.RLock()

    # -- claim --------------------------------------------------------------------
    @_locked
    def claim(self, limit: int) -> list[Member]:
        """Hold the next `limit` active members who need this issue; [] when none are left.

        Needs it: no row yet; a `pending` row whose lease ran out (its sender
        died, or an older version left it); a `failed` row that another send
        settled, temporary or (with retry_failed) permanent.
        """
        self.flush()
        now = self.now()
        if self._after is not None:
            claimed = self._claim_past_cursor(limit, now)
            if claimed:
                return claimed
        # Again from the start: members behind the cursor whose claim became free
        # since (a sender that died, a failure another send settled).
        self._expire_dead_local_senders()
        self._after = None
        return self._claim_past_cursor(limit, now)

    def _claim_past_cursor(self, limit: int, now: datetime) -> list[Member]:
        """Claim the next members past the cursor; [] when no one there needs the issue."""
        m = members_t
        while True:
            with self.store.transaction() as conn:
                emails = self._wanted(conn, now, limit, self._after)
                if not emails:
                    return []
                got = self._upsert_claims(conn, emails, now)
                rows = conn.execute(
                    select(m).where(m.c.email.in_(got)).order_by(bytewise(m.c.email))
                ).all() if got else []
            self._after = emails[-1]
            if not got:  # another sender took them all meanwhile: look further on
                continue
            self._held.update(got)
            self._renewed = self.monotonic()
            return [_row_to_member(r) for r in rows]

    def _wanted(self, conn: Connection, now: datetime, limit: int, after: str | None) -> list[str]:
        """The next `limit` active members who need this issue, in address order,
        after the address `after` (None: from the first)."""
        d, m = deliveries_t, members_t
        # Two uncorrelated sub-selects, not an outer join: PostgreSQL makes each one
        # hashed set per claim, whatever its statistics say. The outer join was
        # planned from them, and on tables not analysed yet (a new database, members
        # just imported, before autovacuum came by) it became a nested loop that
        # compared every member with every row of the issue: 0.3 s a claim at 3,000
        # members half sent, 12.7 s at 20,000.
        has_row = select(d.c.email).where(d.c.issue == self.issue)
        claimable = select(d.c.email).where(d.c.issue == self.issue, self._claimable(now))
        wanted = select(m.c.email).where(m.c.status == "active")
        if after is not None:
            # The cursor bounds the sub-selects too: each claim reads only the
            # members and rows past it, not the issue's every row (SQLite builds the
            # sub-selects' lists afresh each time): 14 ms a claim at 20,000 members.
            has_row = has_row.where(bytewise(d.c.email) > after)
            claimable = claimable.where(bytewise(d.c.email) > after)
            wanted = wanted.where(bytewise(m.c.email) > after)
        wanted = (
            wanted.where(or_(m.c.email.not_in(has_row), m.c.email.in_(claimable)))
            .order_by(bytewise(m.c.email))
            .limit(limit)
        )
        if self._postgres:
            wanted = wanted.with_for_update(of=m, skip_locked=True)
        return list(conn.execute(wanted).scalars())

    def _expire_dead_local_senders(self) -> None:
        """End at once the leases of senders on this host whose process is gone.

        A lease is how a sender on another machine is known to be dead; on
        this machine the process table says so sooner. A pid reused by
        another process only keeps the lease until it runs out, as elsewhere.
        """
        d = deliveries_t
        here = host.name() + ":"
        with self.store.engine.connect() as conn:
            holders = conn.execute(
                select(d.c.claimed_by).distinct().where(
                    d.c.issue == self.issue, d.c.state == PENDING, d.c.claimed_by.startswith(here)
                )
            ).scalars().all()
        dead = [h for h in holders if h != self.sender and not _alive(h)]
        if dead:
            with self.store.transaction() as conn:
                conn.execute(
                    update(d)
                    .where(d.c.issue == self.issue, d.c.state == PENDING, d.c.claimed_by.in_(dead))
                    .values(lease_until=None)
                )

    def _claimable(self, now: datetime) -> Any:
        d = deliveries_t
        expired = and_(d.c.state == PENDING, or_(d.c.lease_until.is_(None), d.c.lease_until < now))
        # Not a failure this sender settled itself: it tries each member once a send.
        retry = and_(d.c.state == FAILED, d.c.claimed_by != self.sender)
        if not self.retry_failed:
            retry = and_(retry, d.c.permanent.is_(False))
        return or_(expired, retry)

    def _upsert_claims(self, conn: Connection, emails: Sequence[str], now: datetime) -> list[str]:
        d = deliveries_t
        held = {"state": PENDING, "claimed_by": self.sender, "lease_until": now + self.lease,
                "transport": self.transport, "updated": now}
        fresh: dict[str, Any] = {"issue": self.issue, "attempts": 0, "permanent": False,
                                 "code": None, "detail": "", "message_id": "", **held}
        # The addresses as one value (an array; JSON text on SQLite), the rest as one
        # value each: a short statement whatever the claim's size. A row of values per
        # member cost 13 ms a claim on SQLite (SQLAlchemy's bind processing, row by
        # row) and 20 ms on PostgreSQL (psycopg rewrites every placeholder in Python
        # and caches only short statements).
        if self._postgres:
            emails_param = bindparam("emails", list(emails), type_=ARRAY(d.c.email.type))
            addresses = select(func.unnest(emails_param).label("email")).subquery()
        else:
            emails_param = bindparam("emails", json.dumps(list(emails), ensure_ascii=False))
            addresses = select(
                func.json_each(emails_param).table_valued("value").c.value.label("email")
            ).subquery()
        values = (bindparam(f"v_{c}", v, type_=d.c[c].type) for c, v in fresh.items())
        # SQLite: a WHERE before ON CONFLICT, or the parser takes ON for a join's.
        source = select(addresses.c.email, *values).where(true())
        stmt = upsert(conn, d).from_select(["email", *fresh], source)
        stmt = stmt.on_conflict_do_update(
            index_elements=[d.c.issue, d.c.email], set_=held, where=self._claimable(now)
        ).returning(d.c.email)
        return list(conn.execute(stmt).scalars())

    @_locked
    def renew(self, force: bool = False) -> None:
        """Push this sender's leases forward; cheap to call often (acts every lease/3)."""
        if not self._held:
            return
        if not force and self.monotonic() - self._renewed < self.lease.total_seconds() / 3:
            return
        d = deliveries_t
        with self.store.transaction() as conn:
            conn.execute(
                update(d)
                .where(d.c.issue == self.issue, d.c.claimed_by == self.sender, d.c.state == PENDING)
                .values(lease_until=self.now() + self.lease)
            )
        self._renewed = self.monotonic()

    # -- settle -------------------------------------------------------------------
    @_locked
    def settle(self, outcome: Outcome) -> None:
        """Record what the transport reported for one claimed member.

        A `sent` row is never turned back: if a takeover already sent and
        settled it, that stays. PENDING (never tried) releases the claim.
        """
        if outcome.state is DeliveryState.PENDING:
            self.release([outcome.message.email])
            return
        self._waiting.append(outcome)
        if (
            not self.batched
            or len(self._waiting) >= self.batch_size
            or self.monotonic() - self._since >= self.batch_seconds
        ):
            self.flush()
        self.renew()

    @_locked
    def fail(self, member: Member, detail: str) -> None:
        """Settle a claim whose message could not even be made: a permanent failure."""
        self.flush()
        with self.store.transaction() as conn:
            conn.execute(_SETTLE, [self._settled_row(
                member.email, FAILED, permanent=True, code=None, detail=detail, attempts=0,
                message_id="",
            )])
        self._held.discard(member.email)

    @_locked
    def flush(self) -> None:
        """Commit the outcomes waiting in a batch."""
        waiting, self._waiting = self._waiting, []
        self._since = self.monotonic()
        if not waiting:
            return
        rows = [
            self._settled_row(
                o.message.email, o.state.value, permanent=o.permanent, code=o.code,
                detail=o.detail, attempts=o.attempts, message_id=o.message.message_id,
            )
            for o in waiting
        ]
        if len(rows) == 1:
            # One statement commits on its own, for every message sent over SMTP.
            if self._driver is None:
                self._driver = self._autocommit.enter_context(self.store.autocommit())
            try:
                self._settle.execute(self._driver, rows[0])
            except BaseException:
                self._drop_autocommit()  # a lost connection is not kept for the next one
                raise
        else:
            with self.store.transaction() as conn:
                conn.execute(_SETTLE, rows)
        self._held.difference_update(o.message.email for o in waiting)

    def _settled_row(self, email: str, state: str, *, permanent: bool, code: int | None,
                     detail: str, attempts: int, message_id: str) -> dict[str, Any]:
        return {
            "k_issue": self.issue, "k_email": email, "k_sender": self.sender, "state": state,
            "transport": self.transport, "attempts": attempts, "permanent": permanent,
            "code": code, "detail": detail, "message_id": message_id, "updated": self.now(),
        }

    @_locked
    def release(self, emails: Iterable[str]) -> None:
        """Give back claims whose messages were never tried: claimable again at once.

        A row made by the claim goes; a row that held an earlier failure
        goes back to `failed` as it was.
        """
        emails = [e for e in emails if e in self._held]
        if not emails:
            return
        self.flush()
        d = deliveries_t
        mine = and_(d.c.issue == self.issue, d.c.email.in_(emails), d.c.claimed_by == self.sender,
                    d.c.state == PENDING)
        with self.store.transaction() as conn:
            conn.execute(delete(d).where(mine, d.c.attempts == 0, d.c.detail == ""))
            conn.execute(update(d).where(mine).values(state=FAILED, lease_until=None))
        self._held.difference_update(emails)

    @_locked
    def close(self) -> None:
        """Commit what waits, and give back every claim still held (a stop or an error)."""
        try:
            self.flush()
            self.release(list(self._held))
        finally:
            self._drop_autocommit()

    def _drop_autocommit(self) -> None:
        self._driver = None
        self._autocommit.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _alive(holder: str) -> bool:
    """Is the sender named `host:pid:tag` still running on this host?"""
    try:
        return host.pid_running(int(holder.split(":")[1]))
    except (IndexError, ValueError):
        return False


def settled_emails(store: Store, issue: int, retry_failed: bool = False) -> set[str]:
    """Sent, or refused for good (unless `retry_failed`): the members a send skips."""
    d = deliveries_t
    query = select(d.c.email).where(d.c.issue == issue, _reached(retry_failed))
    with store.engine.connect() as conn:
        return set(conn.execute(query).scalars())


def _reached(retry_failed: bool = False) -> Any:
    """The rule itself: a row that needs nothing more (sent, or refused for good)."""
    d = deliveries_t
    if retry_failed:
        return d.c.state == SENT
    return or_(d.c.state == SENT, and_(d.c.state == FAILED, d.c.permanent.is_(True)))


def settled_active_count(store: Store, issue: int, retry_failed: bool = False) -> int:
    """How many active members need nothing more of this issue: what a send skips."""
    d, m = deliveries_t, members_t
    query = (
        select(func.count())
        .select_from(d.join(m, m.c.email == d.c.email))
        .where(d.c.issue == issue, m.c.status == "active", _reached(retry_failed))
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def unreached(store: Store, issue: Issue) -> int | None:
    """How many members a send of `issue` that began has not reached; None if none began.

    Counts active members who had joined when the issue was made and have
    no `sent` row (nor a permanent failure): what the service resumes after
    a stop or a crash. An issue with no ledger rows was never sent, and is
    the operator's to send.
    """
    d, m = deliveries_t, members_t
    with store.engine.connect() as conn:
        began = conn.execute(
            select(func.count()).select_from(d).where(d.c.issue == issue.number)
        ).scalar()
        if not began:
            return None
        reached = select(d.c.email).where(d.c.issue == issue.number, _reached())
        missing = select(func.count()).select_from(m).where(
            m.c.status == "active",
            or_(m.c.joined.is_(None), m.c.joined <= issue.created),
            m.c.email.not_in(reached),
        )
        return int(conn.execute(missing).scalar() or 0)


def sent_to_all(store: Store, issue: Issue) -> bool:
    """Whether a send of `issue` ran to its end: its approved send was recorded as done,
    or a send began and every member it was for is reached (see `unreached`). What
    approving it then would change: nothing."""
    found = store.approval(issue.number)
    if found is not None and found.sent_at is not None:
        return True
    return unreached(store, issue) == 0


def counts(store: Store, issue: int | None = None) -> dict[str, int]:
    """Ledger rows by state (pending, sent, failed), for one issue or all."""
    d = deliveries_t
    query = select(d.c.state, func.count()).group_by(d.c.state)
    if issue is not None:
        query = query.where(d.c.issue == issue)
    out = {s.value: 0 for s in DeliveryState}
    with store.engine.connect() as conn:
        for state, n in conn.execute(query).all():
            out[state] = n
    return out


def summary(store: Store, issue: int | None = None) -> LedgerSummary:
    """The ledger summed up: counts by state per issue, every failure with its reason."""
    return summarise(store.deliveries(issue))


_KEY = and_(deliveries_t.c.issue == bindparam("k_issue"),
            deliveries_t.c.email == bindparam("k_email"))
# Settling never turns a `sent` row back (a takeover may have sent and settled it);
# `claimed_by` then names who settled the row.
_SETTLE = (
    update(deliveries_t)
    .where(_KEY, deliveries_t.c.state != SENT)
    .values({
        **{c: bindparam(c) for c in (
            "state", "transport", "attempts", "permanent", "code", "detail", "message_id",
            "updated",
        )},
        "claimed_by": bindparam("k_sender"),
        "lease_until": None,
    })
)


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
            return [_("no deliveries recorded yet")]
        out = []
        for c in self.issues:
            if c.failed:
                line = _("issue {issue}: {sent} sent, {failed} failed ({permanent} permanent, "
                         "{temporary} temporary), {pending} pending")
            else:
                line = _("issue {issue}: {sent} sent, {failed} failed, {pending} pending")
            out.append(line.format(issue=c.issue, sent=c.sent, failed=c.failed,
                                   permanent=c.permanent, temporary=c.failed - c.permanent,
                                   pending=c.pending))
        if self.failures:
            out.append(_("failures:"))
            for d in self.failures:
                kind = _("permanent") if d.permanent else _("temporary")
                code = f"{d.code} " if d.code is not None else ""
                tries = ngettext("{n} attempt", "{n} attempts", d.attempts).format(n=d.attempts)
                out.append("  " + _("issue {issue}  {email}  {code}{kind}, {tries}: {detail}")
                           .format(issue=d.issue, email=d.email, code=code, kind=kind,
                                   tries=tries, detail=d.detail or "-"))
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
