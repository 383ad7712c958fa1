"""members: bounced status fields; bounces: every bounce, complaint and mailed unsubscribe.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08

Three nullable-or-defaulted columns on members (existing rows: never
bounced, no soft bounce) and one new table, empty at first. No row is
changed. (0007 and 0008 belong to other branches; the lead renumbers on merge.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("bounced_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("bounce_reason", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("soft_bounces", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("received", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("issue", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_index("ix_bounces_email", "bounces", ["email"])


def downgrade() -> None:
    op.drop_index("ix_bounces_email", table_name="bounces")
    op.drop_table("bounces")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("soft_bounces")
        batch.drop_column("bounce_reason")
        batch.drop_column("bounced_at")
