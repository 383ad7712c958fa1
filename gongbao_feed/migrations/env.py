"""Alembic's environment: run by `gongbao_feed.migrations`, never on its own.

The caller puts an open connection, already in a transaction, in
`config.attributes["connection"]`; every revision runs in that transaction.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from gongbao_feed.migrations import COMPARE
from gongbao_feed.schema import UTCDateTime, metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Revisions stand alone: store.UTCDateTime is written as the plain DateTime it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "gongbao-feed's migrations run through `gongbao-feed db upgrade` "
        "(or gongbao_feed.migrations), not the alembic command"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters most tables by copying them
    render_item=render_item,
    **COMPARE,
)
with context.begin_transaction():
    context.run_migrations()
