"""members: one row per mailbox

A member's identity becomes the mailbox compared without case
(`Luo.Bin@…`, `luo.bin@…` and `LUO.BIN@…` are one person), kept in a new
`mailbox` column (the address in lower case) with a unique index. Earlier
releases compared the local part with case, so a database may hold several
rows for one mailbox; they are merged here:

- the row imported first (earliest `joined`; then the address in code point
  order) stays, with its spelling: it is the To: line and the ledger's key;
- the strictest status wins: if any spelling unsubscribed, the member is
  unsubscribed (the earliest such request, and how it came);
- the name is the kept row's, or the first other non-empty one;
- the merged rows' deliveries move to the kept address, so a later send does
  not mail an issue any spelling already had. Where the kept address has a
  row for the same issue too, the row that went furthest stays (sent, then
  pending, then failed) and the other goes.

Written with its own table definitions and no import from the package: a
revision must do the same thing whatever the code becomes later.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_members = sa.table(
    "members",
    sa.column("email", sa.String),
    sa.column("mailbox", sa.String),
    sa.column("name", sa.Text),
    sa.column("status", sa.String),
    sa.column("joined", sa.DateTime),
    sa.column("unsubscribed_at", sa.DateTime),
    sa.column("unsubscribed_via", sa.Text),
)
deliveries_t = sa.table(
    "deliveries",
    sa.column("issue", sa.Integer),
    sa.column("email", sa.String),
    sa.column("state", sa.String),
)
#: Which of two rows for one (issue, mailbox) stays: the one that went furthest.
_STATE_RANK = {"sent": 0, "pending": 1, "failed": 2}


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mailbox", sa.String(length=320), nullable=True))
    _merge_spellings(conn)
    keys = [{"k_email": e, "k_mailbox": e.strip().lower()}
            for e in conn.execute(sa.select(_members.c.email)).scalars()]
    if keys:
        conn.execute(
            _members.update()
            .where(_members.c.email == sa.bindparam("k_email"))
            .values(mailbox=sa.bindparam("k_mailbox")),
            keys,
        )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.alter_column("mailbox", existing_type=sa.String(length=320), nullable=False)
        batch_op.create_index("ix_members_mailbox", ["mailbox"], unique=True)


def downgrade() -> None:
    """The column goes; merged rows stay merged (their other spellings are not kept)."""
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("ix_members_mailbox")
        batch_op.drop_column("mailbox")


def _merge_spellings(conn: sa.Connection) -> None:
    rows = conn.execute(sa.select(_members)).all()
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(row.email.strip().lower(), []).append(row)
    for group in groups.values():
        if len(group) > 1:
            _merge(conn, sorted(group, key=lambda r: (r.joined, r.email)))


def _merge(conn: sa.Connection, group: list[Any]) -> None:
    keep, others = group[0], group[1:]
    out = [r for r in group if r.status == "unsubscribed"]
    first_out = min(out, key=lambda r: (r.unsubscribed_at is None, r.unsubscribed_at or 0,
                                        r.email)) if out else None
    name = keep.name or next((r.name for r in others if r.name), "")
    conn.execute(
        _members.update().where(_members.c.email == keep.email).values(
            name=name,
            status="unsubscribed" if first_out is not None else keep.status,
            unsubscribed_at=first_out.unsubscribed_at if first_out is not None else None,
            unsubscribed_via=first_out.unsubscribed_via if first_out is not None else None,
        )
    )
    d = deliveries_t
    for other in others:
        for issue, state in conn.execute(
            sa.select(d.c.issue, d.c.state).where(d.c.email == other.email)
        ).all():
            kept_state = conn.execute(
                sa.select(d.c.state).where(d.c.issue == issue, d.c.email == keep.email)
            ).scalar()
            this_row = sa.and_(d.c.issue == issue, d.c.email == other.email)
            if kept_state is not None and (
                _STATE_RANK.get(kept_state, 3) <= _STATE_RANK.get(state, 3)
            ):
                conn.execute(sa.delete(d).where(this_row))
                continue
            if kept_state is not None:
                conn.execute(sa.delete(d).where(d.c.issue == issue, d.c.email == keep.email))
            conn.execute(sa.update(d).where(this_row).values(email=keep.email))
        conn.execute(_members.delete().where(_members.c.email == other.email))
