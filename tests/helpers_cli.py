"""Run a `gongbao-feed` command in-process against a working folder."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from click.testing import CliRunner

from gongbao_feed.cli import main


def run(workdir: Path, *args: str) -> tuple[int, object, str]:
    """(exit code, stdout parsed as JSON when it is JSON, stderr)."""
    result = CliRunner().invoke(main, [*args, "--config", str(workdir / "config.toml")])
    out: object = result.stdout
    with contextlib.suppress(ValueError):
        out = json.loads(result.stdout)
    return result.exit_code, out, result.stderr
