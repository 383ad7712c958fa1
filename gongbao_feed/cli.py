"""The `gongbao-feed` command: each command a few lines over the library.

Expected failures (GongbaoError) print as one clear message without a
traceback and exit 1; `--json` output goes to stdout alone, so other tools
can read it, and human notes go to stderr.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import DEFAULT_CONFIG_NAME, Config, config_from_dict, load_config
from .errors import GongbaoError
from .ingest import publication_date, read_file
from .publish import Newsroom
from .skeleton import init_folder

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn the library's errors into a message and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GongbaoError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG_NAME,
    show_default=True,
    help="The working folder's config file; its folder is where relative paths start.",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object to stdout."
)


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; expected YYYY-MM-DD") from None


date_option = click.option(
    "--date",
    "on_date",
    callback=_date,
    metavar="YYYY-MM-DD",
    help="Publication date when the file name has none (default: today in the paper's zone).",
)


def emit(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def open_newsroom(config_path: Path) -> Newsroom:
    return Newsroom(load_config(config_path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gongbao-feed")
def main() -> None:
    """Publish the union newspaper as feeds, a web archive and email digests."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@friendly
def init(directory: Path) -> None:
    """Make a self-contained working folder: config, inbox, templates, state."""
    made = init_folder(directory)
    for path in made:
        click.echo(f"created {path}", err=True)
    inbox = directory / "inbox"
    click.echo(f"next: put pages in {inbox} and run `gongbao-feed ingest` there", err=True)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@date_option
@json_option
@config_option
@friendly
def parse(file: Path, on_date: date | None, as_json: bool, config_path: Path) -> None:
    """Read one page (or Markdown article) and show the articles found; stores nothing."""
    config: Config = (
        load_config(config_path) if config_path.is_file() else config_from_dict({}, Path.cwd())
    )
    today = Newsroom(config).today()
    page = read_file(file, publication_date(file, on_date, today))
    for warning in page.warnings:
        click.echo(f"warning: {file}: {warning}", err=True)
    if as_json:
        emit({"articles": [a.to_json() for a in page.articles]})
        return
    for a in page.articles:
        heads = " / ".join(x for x in (a.kicker, a.title, a.subtitle) if x)
        names = " ".join(f"{k}={','.join(v)}" for k, v in a.byline.to_dict().items() if v)
        click.echo(f"[{a.id}] {heads}")
        click.echo(f"    {a.dateline or '-'} | {names or 'no byline'} | "
                   f"{len(a.paragraphs)} paragraphs, {len(a.captions)} captions")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@date_option
@json_option
@config_option
@friendly
def ingest(paths: tuple[Path, ...], on_date: date | None, as_json: bool, config_path: Path) -> None:
    """Add new and changed articles from PATHS (default: every file in the inbox)."""
    with open_newsroom(config_path) as room:
        report = room.ingest(list(paths) if paths else None, on_date)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for failure in report.failed:
        click.echo(f"error: {failure.path}: {failure.error}", err=True)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(
            f"ingested: {report.new} new, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.failed)} failed"
        )
    if not report.ok:
        sys.exit(1)

