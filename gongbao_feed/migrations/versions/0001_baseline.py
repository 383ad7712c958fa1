"""Baseline: the schema of release 0.1 (articles, issues, issue_articles, members, deliveries).

Revision ID: 0001
Revises:
Create Date: 2026-11-30

Exactly what release 0.1's `metadata.create_all` made (git 4a5cd3f), which
is why a database made by that release, having no version table, is stamped
at this revision and upgraded from here. Never edit it: add a revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issues",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "members",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("joined", sa.DateTime(), nullable=False),
        sa.Column("unsubscribed_at", sa.DateTime(), nullable=True),
        sa.Column("unsubscribed_via", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("email"),
    )
    op.create_table(
        "articles",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("kicker", sa.Text(), nullable=True),
        sa.Column("subtitle", sa.Text(), nullable=True),
        sa.Column("dateline", sa.Text(), nullable=True),
        sa.Column("section", sa.Text(), nullable=True),
        sa.Column("byline", sa.Text(), nullable=False),
        sa.Column("captions", sa.Text(), nullable=False),
        sa.Column("paragraphs", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("issue", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["issue"], ["issues.number"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_articles_date", "articles", ["date"])
    op.create_index("ix_articles_issue", "articles", ["issue"])
    op.create_table(
        "deliveries",
        sa.Column("issue", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["issue"], ["issues.number"]),
        sa.PrimaryKeyConstraint("issue", "email"),
    )
    op.create_table(
        "issue_articles",
        sa.Column("issue", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("issue", "position"),
        sa.ForeignKeyConstraint(["issue"], ["issues.number"]),
        sa.UniqueConstraint("article_id"),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
    )


def downgrade() -> None:
    op.drop_table("issue_articles")
    op.drop_table("deliveries")
    op.drop_index("ix_articles_issue", table_name="articles")
    op.drop_index("ix_articles_date", table_name="articles")
    op.drop_table("articles")
    op.drop_table("members")
    op.drop_table("issues")
