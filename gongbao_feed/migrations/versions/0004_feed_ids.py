"""feed_ids: feed ids minted once, when first published, and kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The table starts empty: the next render mints every missing id exactly as
earlier releases derived it (a tag: URI under the configured base URL, the
feed's own URL), so entries readers already hold keep their ids; from then
on a changed `paper.base_url` changes links, never ids.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_ids",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("minted", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )


def downgrade() -> None:
    op.drop_table("feed_ids")
