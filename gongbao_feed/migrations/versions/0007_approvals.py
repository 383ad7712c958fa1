"""approvals, send_checks: an editor's approval before members are mailed, the quality gate.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Two new tables, empty at first: issues made before this revision need no
approval (none was asked for) and have no gate verdict. Existing rows are
not touched. (0007 belongs to another branch; the lead renumbers on merge.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("issue", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("editors", sa.Text(), nullable=False),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("approved_by", sa.Text(), nullable=True),
        sa.Column("approved_via", sa.String(length=16), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["issue"], ["issues.number"]),
        sa.PrimaryKeyConstraint("issue"),
    )
    op.create_table(
        "send_checks",
        sa.Column("issue", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("forced_at", sa.DateTime(), nullable=True),
        sa.Column("forced_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["issue"], ["issues.number"]),
        sa.PrimaryKeyConstraint("issue"),
    )


def downgrade() -> None:
    op.drop_table("send_checks")
    op.drop_table("approvals")
