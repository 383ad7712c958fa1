"""Every command explains itself: a user's first look is `--help`."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from gongbao_feed.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_has_help_and_takes_config(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    command: click.Command = main
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
    # init makes the working folder and needs none.
    if not isinstance(command, click.Group) and path[0] != "init":
        assert "--config" in result.output, f"{' '.join(path)} takes no --config"
