"""withdrawals, corrections, article_revisions: an editor's decisions and earlier texts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Three new tables, empty at first: no article is withdrawn or corrected, and
earlier texts are kept from the next revision on. Existing rows are not
touched. (0005 belongs to another branch; the lead renumbers on merge.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(), nullable=False),
        sa.Column("withdrawn_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("restored_at", sa.DateTime(), nullable=True),
        sa.Column("restored_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_withdrawals_article_id", "withdrawals", ["article_id"])
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("corrected_at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("noted_by", sa.Text(), nullable=True),
        sa.Column("noted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_corrections_article_id", "corrections", ["article_id"])
    op.create_table(
        "article_revisions",
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("saved", sa.DateTime(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.PrimaryKeyConstraint("article_id", "revision"),
    )


def downgrade() -> None:
    op.drop_table("article_revisions")
    op.drop_index("ix_corrections_article_id", table_name="corrections")
    op.drop_table("corrections")
    op.drop_index("ix_withdrawals_article_id", table_name="withdrawals")
    op.drop_table("withdrawals")
