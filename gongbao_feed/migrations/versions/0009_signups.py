"""signups: web signups waiting for their confirmation (double opt-in).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

One new table, empty at first. Existing rows are not touched: the members'
status column is already text, and `pending` is a new value in it, not a new
column. (0007-0009 belong to other branches; the lead renumbers on merge.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signups",
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("requested", sa.DateTime(), nullable=False),
        sa.Column("confirmation_sent", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox"),
    )


def downgrade() -> None:
    op.drop_table("signups")
