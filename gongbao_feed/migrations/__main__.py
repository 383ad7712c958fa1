"""`python -m gongbao_feed.migrations new "MESSAGE"`: draft the next revision.

Runs every revision on a scratch SQLite database in memory, compares the
result with store.metadata as `alembic revision --autogenerate` would, and
writes versions/NNNN_message.py (NNNN = head + 1) with the operations found,
in batch mode so SQLite can run them. Read it and edit it before committing:
autogenerate sees added and dropped tables, columns, indexes and type
changes, not renames, and it fills in no data. `--empty` writes the file
with empty upgrade() and downgrade() to fill in by hand.
"""

from __future__ import annotations

import argparse
import sys

from alembic import command
from sqlalchemy import create_engine

from . import alembic_config, head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gongbao_feed.migrations",
        description="Schema revisions of gongbao-feed (a source checkout's versions/ folder).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="draft the next revision from the changes to store.metadata")
    new.add_argument("message", help='what it changes, e.g. "deliveries: claim and lease"')
    new.add_argument("--empty", action="store_true", help="compare nothing; fill it in by hand")
    args = parser.parse_args(argv)

    rev_id = f"{int(head()) + 1:04d}"
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
            script = command.revision(
                alembic_config(conn), message=args.message, rev_id=rev_id,
                autogenerate=not args.empty,
            )
    finally:
        engine.dispose()
    if script is None or isinstance(script, list):
        print("no revision written", file=sys.stderr)
        return 1
    print(f"wrote {script.path}")
    print("next: read it, then `python -m pytest tests/test_migrations.py`", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
