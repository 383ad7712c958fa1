"""The `gongbao-feed` command: each command a few lines over the library.

Expected failures (GongbaoError) print as one clear message without a
traceback and exit 1; `--json` output goes to stdout alone, so other tools
can read it, and human notes go to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import DEFAULT_CONFIG_NAME, Config, config_from_dict, load_config
from .deliver import SendReport
from .editorial import correction_text, detail_lines
from .errors import GongbaoError
from .i18n import _
from .ingest import publication_date, read_file
from .migrations import UPGRADE_HINT
from .publish import Newsroom
from .skeleton import init_folder
from .store import Store, schema_state

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
        for gone in report.gone:
            click.echo(gone.describe())
        click.echo(
            f"ingested: {report.new} new, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.failed)} failed"
            + (f", {len(report.gone)} gone" if report.gone else "")
        )
    if not report.ok:
        sys.exit(1)


@main.command()
@click.option("--dry-run", is_flag=True, help="Show what the issue would hold; write nothing.")
@click.option("--force", is_flag=True, help="Make the issue even below issue.min_articles.")
@json_option
@config_option
@friendly
def assemble(dry_run: bool, force: bool, as_json: bool, config_path: Path) -> None:
    """Gather new articles into the next numbered issue, then render feeds and archive."""
    with open_newsroom(config_path) as room:
        result = room.assemble(dry_run=dry_run, force=force)
    if as_json:
        emit(result.to_json())
        return
    click.echo(result.reason)
    if result.issue is not None:
        for aid in result.issue.article_ids:
            click.echo(f"  {aid}")
    if result.render is not None:
        click.echo(f"rendered: {len(result.render.written)} files written, "
                   f"{result.render.unchanged} unchanged")


@main.command()
@json_option
@config_option
@friendly
def render(as_json: bool, config_path: Path) -> None:
    """Write the feeds (RSS, Atom, JSON Feed, issues) and the web archive to the public folder."""
    with open_newsroom(config_path) as room:
        report = room.render()
    if as_json:
        emit(report.to_json())
    else:
        click.echo(f"rendered: {len(report.written)} files written, {report.unchanged} unchanged")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: [web] host).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on (default: [web] port).")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request (a proxy in front usually does this already).")
@config_option
@friendly
def serve(host: str | None, port: int | None, access_log: bool, config_path: Path) -> None:
    """Serve the public folder (feeds, archive) and one-click unsubscribe over HTTP."""
    from .web import serve as run_server

    config = load_config(config_path)
    host, port = host or config.web.host, port or config.web.port
    if not config.public_dir.is_dir():
        click.echo(f"warning: {config.public_dir} does not exist yet; "
                   "run `gongbao-feed render` to fill it", err=True)
    click.echo(f"serving {config.public_dir} on http://{host}:{port}/ (Ctrl-C stops)", err=True)
    run_server(config, host, port, access_log=access_log)


issue_option = click.option(
    "--issue", "number", type=click.IntRange(min=1), help="Issue number (default: the newest)."
)


@main.group()
def articles() -> None:
    """Articles as an editor sees them: list, show, withdraw, restore, note."""


by_option = click.option(
    "--by", default=None, metavar="NAME",
    help="Who is doing this, for the record (default: the logged-in user).",
)


@articles.command("list")
@click.option("--issue", "number", type=click.IntRange(min=1), help="Only this issue's articles.")
@click.option("--section", default=None, help="Only the articles of this section.")
@json_option
@config_option
@friendly
def articles_list(number: int | None, section: str | None, as_json: bool,
                  config_path: Path) -> None:
    """Every article with its date, title, section, issue, status and revision."""
    with open_newsroom(config_path) as room:
        found = room.list_articles(issue=number, section=section)
    if as_json:
        emit([a.to_json() for a in found])
        return
    for a in found:
        where = str(a.issue) if a.issue is not None else "-"
        click.echo(f"{a.id}\t{a.status}\t{where}\tr{a.revision}\t{a.section or '-'}\t{a.title}")


@articles.command("show")
@click.argument("article_id", metavar="ID")
@config_option
@friendly
def articles_show(article_id: str, config_path: Path) -> None:
    """One article: headline, dateline, byline, issue, status, withdrawals, corrections."""
    with open_newsroom(config_path) as room:
        detail = room.article_detail(article_id)
        lines = detail_lines(detail, room.config.tz)
    click.echo("\n".join(lines))


@articles.command("withdraw")
@click.argument("article_id", metavar="ID")
@click.option("--reason", required=True, help="Why; readers see it on the retraction notice.")
@by_option
@config_option
@friendly
def articles_withdraw(article_id: str, reason: str, by: str | None, config_path: Path) -> None:
    """Withdraw an article (撤稿): out of every issue to come, or retracted if published."""
    with open_newsroom(config_path) as room:
        room.withdraw(article_id, reason, by=by)
        article = room.store.article(article_id)
    if article is not None and article.issue is not None:
        click.echo(_("{id}: retracted from issue {n}; its page is a retraction notice, the feeds "
                     "drop it (Atom keeps a tombstone), unsent digests leave it out").format(
                         id=article_id, n=article.issue))
    else:
        click.echo(_("{id}: withdrawn; it will not go into any issue").format(id=article_id))


@articles.command("restore")
@click.argument("article_id", metavar="ID")
@by_option
@config_option
@friendly
def articles_restore(article_id: str, by: str | None, config_path: Path) -> None:
    """Undo a withdrawal: the article is back where it was."""
    with open_newsroom(config_path) as room:
        room.restore(article_id, by=by)
    click.echo(_("{id}: restored").format(id=article_id))


@articles.command("note")
@click.argument("article_id", metavar="ID")
@click.argument("text")
@by_option
@config_option
@friendly
def articles_note(article_id: str, text: str, by: str | None, config_path: Path) -> None:
    """The editor's words for a published article's correction note (更正)."""
    with open_newsroom(config_path) as room:
        correction = room.note(article_id, text, by=by)
        line = correction_text(correction, room.config.tz)
    click.echo(f"{article_id}: {line}")


@main.group()
def members() -> None:
    """The member list the digests go to: import, add, remove, list."""


@members.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--resubscribe", is_flag=True,
              help="Mail members in the file again even if they had unsubscribed.")
@json_option
@config_option
@friendly
def members_import(file: Path, resubscribe: bool, as_json: bool, config_path: Path) -> None:
    """Add or update members from a CSV file with columns email and name."""
    with open_newsroom(config_path) as room:
        report = room.import_members(file, resubscribe=resubscribe)
    for warning in report.warnings:
        click.echo(f"warning: {file}: {warning}", err=True)
    for failure in report.failed:
        click.echo(f"error: {file}:{failure.line}: {failure.error}", err=True)
    if report.still_unsubscribed and not resubscribe:
        click.echo(f"note: {report.still_unsubscribed} of them had unsubscribed and stay so "
                   "(--resubscribe mails them again)", err=True)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(f"members: {report.imported} imported, {report.merged} merged, "
                   f"{len(report.failed)} failed")
    if not report.ok:
        sys.exit(1)


@members.command("add")
@click.argument("email")
@click.option("--name", default="", help="The name the digest greets them by.")
@click.option("--resubscribe", is_flag=True, help="Mail them again if they had unsubscribed.")
@config_option
@friendly
def members_add(email: str, name: str, resubscribe: bool, config_path: Path) -> None:
    """Add one member (or change the name of one already on the list)."""
    with open_newsroom(config_path) as room:
        member = room.add_member(email, name, resubscribe=resubscribe)
    click.echo(f"{member.email}: {member.status}")
    if member.status != "active":
        click.echo("note: they unsubscribed earlier; --resubscribe mails them again", err=True)


@members.command("remove")
@click.argument("email")
@click.option("--forget", is_flag=True,
              help="Delete the record too (a later import would add them again).")
@config_option
@friendly
def members_remove(email: str, forget: bool, config_path: Path) -> None:
    """Stop mailing a member; they stay on file as unsubscribed unless --forget."""
    with open_newsroom(config_path) as room:
        member = room.remove_member(email, forget=forget)
    click.echo(f"{member.email}: {'forgotten' if forget else member.status}")


@members.command("list")
@json_option
@config_option
@friendly
def members_list(as_json: bool, config_path: Path) -> None:
    """Every member with their status."""
    with open_newsroom(config_path) as room:
        everyone = room.members()
    if as_json:
        emit([m.to_json() for m in everyone])
        return
    for m in everyone:
        click.echo(f"{m.email}\t{m.name}\t{m.status}")


@main.command()
@issue_option
@click.option("--via", type=click.Choice(["outbox", "smtp"]),
              help="Transport (default: [email] transport).")
@click.option("--dry-run", is_flag=True, help="List who would get the issue; send nothing.")
@click.option("--to", "address", metavar="ADDRESS",
              help="Send one test copy to ADDRESS; the ledger is not touched.")
@click.option("--retry-failed", is_flag=True,
              help="Also try again the addresses the relay refused for good (5xx).")
@json_option
@config_option
@friendly
def send(number: int | None, via: str | None, dry_run: bool, address: str | None,
         retry_failed: bool, as_json: bool, config_path: Path) -> None:
    """Mail an issue's digest to every member who has not had it yet.

    Run it again after a failure or a stop: it sends what is missing.
    SIGINT/SIGTERM let each connection finish and record its message first.
    """
    with (
        open_newsroom(config_path) as room,
        _progress(enabled=not as_json) as progress,
        _stop_on_signals() as stopping,
    ):
        try:
            report = room.send(number, via=via, dry_run=dry_run, to=address, progress=progress,
                               stop=stopping.event, retry_failed=retry_failed)
        except GongbaoError as exc:
            if as_json and isinstance(exc.report, SendReport):
                emit(exc.report.to_json())  # the counts so far, with "error"
            raise
    for email, why in report.failed:
        click.echo(f"error: {email}: {why}", err=True)
    if as_json:
        emit(report.to_json())
    elif dry_run:
        for email, name in report.would_send:
            click.echo(f"{email}\t{name}")
        click.echo(f"issue {report.issue} «{report.subject}»: would send {len(report.would_send)}, "
                   f"{report.skipped} already sent", err=True)
    else:
        click.echo(f"issue {report.issue}: {report.sent} sent, {report.skipped} skipped, "
                   f"{len(report.failed)} failed")
    if stopping.signal:
        click.echo("stopped: run `gongbao-feed send` again to send the rest", err=True)
        sys.exit(128 + stopping.signal)
    if not report.ok:
        sys.exit(1)


class _Stopping:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal = 0


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_Stopping]:
    """SIGINT/SIGTERM set the stop event instead of killing the send mid-message."""
    stopping = _Stopping()

    def handler(signum: int, _frame: object) -> None:
        if not stopping.event.is_set():
            stopping.signal = signum
            stopping.event.set()
            click.echo(f"\n{signal.Signals(signum).name}: finishing the messages in flight",
                       err=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@main.command()
@click.option("--issue", "number", type=click.IntRange(min=1),
              help="Only this issue (default: every issue).")
@json_option
@config_option
@friendly
def deliveries(number: int | None, as_json: bool, config_path: Path) -> None:
    """The delivery ledger: counts by state, and every failure with its reason."""
    with open_newsroom(config_path) as room:
        summary = room.deliveries(number)
    if as_json:
        emit(summary.to_json())
        return
    for line in summary.lines():
        click.echo(line)


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar on a terminal; nothing otherwise (the summary line says it all)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from tqdm import tqdm

    with tqdm(unit="msg", desc="sending", file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update


@main.command()
@issue_option
@click.option("--open", "open_it", is_flag=True, help="Open the file in a browser.")
@config_option
@friendly
def preview(number: int | None, open_it: bool, config_path: Path) -> None:
    """Write an issue's digest as HTML (and text) and print the file's path."""
    with open_newsroom(config_path) as room:
        path = room.preview(number)
    click.echo(str(path))
    if open_it:
        click.launch(str(path))


@main.command()
@click.option("--once", is_flag=True,
              help="Publish once now (ingest, assemble, render, send), then exit: "
                   "for cron or a systemd timer.")
@config_option
@friendly
def run(once: bool, config_path: Path) -> None:
    """Run the service: ingest on [schedule] ingest_every_minutes, publish on publish_cron.

    One service per working folder. SIGTERM or Ctrl-C stops it cleanly: the
    message being sent is finished and recorded, then it exits 0.
    """
    from .schedule import Service

    service = Service(config_path)
    if not once:
        service.run()
    elif service.run_once() is None:
        sys.exit(1)


@main.command()
@config_option
@friendly
def timer(config_path: Path) -> None:
    """Print a systemd timer that runs `run --once` on [schedule] publish_cron.

    For running without the `run` service: save the output as
    /etc/systemd/system/gongbao-feed-once.timer (next to
    deploy/gongbao-feed-once.service). Write it again after changing publish_cron.
    """
    from .systemd import timer_unit

    click.echo(timer_unit(load_config(config_path), config_path), nl=False)


@main.command()
@json_option
@config_option
@friendly
def status(as_json: bool, config_path: Path) -> None:
    """Who runs the service, when its jobs run next, the last issue and its deliveries."""
    from .schedule import service_status

    report = service_status(load_config(config_path))
    if as_json:
        emit(report.to_json())
    else:
        for text in report.lines():
            click.echo(text)


@main.group()
def db() -> None:
    """The database schema: `db upgrade` after installing a new release."""


@db.command("upgrade")
@json_option
@config_option
@friendly
def db_upgrade(as_json: bool, config_path: Path) -> None:
    """Apply the pending schema migrations, then print the schema's revision.

    Back up the database first. Safe to run again: at the newest revision it
    changes nothing. A database made by release 0.1 is recognised and upgraded.
    """
    with Store(load_config(config_path).database_url, upgrade=True) as store:
        report = store.schema
    for line in report.lines():
        click.echo(line, err=True)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(report.after.describe())


@db.command("version")
@json_option
@config_option
@friendly
def db_version(as_json: bool, config_path: Path) -> None:
    """Print the database's schema revision and the newest this release has; changes nothing."""
    state = schema_state(load_config(config_path).database_url)
    if as_json:
        emit(state.to_json())
    else:
        click.echo(state.describe())
    if not (state.current or state.empty):
        click.echo(f"hint: {UPGRADE_HINT}" if state.known else
                   "hint: a newer gongbao-feed has upgraded it", err=True)
