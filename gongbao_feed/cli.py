"""The `gongbao-feed` command: each command a few lines over the library.

Expected failures (GongbaoError) print as one clear message without a
traceback and exit 1; `--json` output goes to stdout alone, so other tools
can read it, and human notes go to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from .archive import RenderReport
from .config import DEFAULT_CONFIG_NAME, Config, config_from_dict, load_config
from .deliver import SendReport
from .errors import GongbaoError
from .i18n import _, ngettext
from .ingest import page_shape_hint, publication_date, read_file
from .members import ImportReport
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


def rendered(report: RenderReport) -> str:
    """`rendered: 1 file written, 12 unchanged`."""
    n = len(report.written)
    return _("rendered: {written}, {unchanged} unchanged").format(
        written=ngettext("{n} file written", "{n} files written", n).format(n=n),
        unchanged=report.unchanged,
    )


def imported(report: ImportReport) -> str:
    """`members: 0 new, 0 changed, 5 already present, 0 failed` (what the import changed)."""
    text = _("members: {new} new, {changed} changed, {present} already present, "
             "{failed} failed").format(new=report.imported, changed=report.changed,
                                       present=report.unchanged, failed=len(report.failed))
    if report.repeated:
        text += ngettext("; {n} row repeated an earlier row of the file",
                         "; {n} rows repeated earlier rows of the file",
                         report.repeated).format(n=report.repeated)
    return text


def hint_line(hint: str) -> str:
    """A hint under the message it belongs to, as GongbaoError prints one."""
    return "  " + _("hint: {hint}").format(hint=hint)


def note(message: str, hint: str | None = None) -> None:
    """Tell the operator something worth knowing that is not an error, with what to do."""
    click.echo(_("note: {message}").format(message=message), err=True)
    if hint:
        click.echo(hint_line(hint), err=True)


def open_newsroom(config_path: Path) -> Newsroom:
    return Newsroom(load_config(config_path))


class _EchoWarnings(logging.Handler):
    """The store's warnings (a database file others could read) on stderr, unless the
    service's log is taking the package's lines (`run`): said once, where it is read."""

    def emit(self, record: logging.LogRecord) -> None:
        if any(h is not self for h in logging.getLogger("gongbao_feed").handlers):
            return
        click.echo(record.getMessage(), err=True)


def _echo_store_warnings() -> None:
    store_log = logging.getLogger("gongbao_feed.store")
    if not any(isinstance(h, _EchoWarnings) for h in store_log.handlers):
        store_log.addHandler(_EchoWarnings(logging.WARNING))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gongbao-feed")
def main() -> None:
    """Publish the union newspaper as feeds, a web archive and email digests."""
    _echo_store_warnings()


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
    if not page.articles:
        click.echo(_("warning: {path}: no articles found").format(path=file), err=True)
    if not page.articles or page.no_headline:
        click.echo(hint_line(page_shape_hint()), err=True)
    if as_json:
        emit({"articles": [a.to_json() for a in page.articles]})
        return
    for a in page.articles:
        heads = " / ".join(x for x in (a.kicker, a.title, a.subtitle) if x)
        names = " ".join(f"{k}={','.join(v)}" for k, v in a.byline.to_dict().items() if v)
        click.echo(f"[{a.id}] {heads}")
        click.echo(f"    {a.dateline or '-'} | {names or 'no byline'} | "
                   + ngettext("{n} paragraph", "{n} paragraphs", len(a.paragraphs)).format(
                       n=len(a.paragraphs)) + ", "
                   + ngettext("{n} caption", "{n} captions", len(a.captions)).format(
                       n=len(a.captions)))


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
        if failure.hint:
            click.echo(hint_line(failure.hint), err=True)
    if (empty := report.empty_inbox_note()) is not None:
        note(*empty)
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
        click.echo(rendered(result.render))


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
        click.echo(rendered(report))


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
    from .web import bind
    from .web import serve as run_server

    config = load_config(config_path)
    host, port = host or config.web.host, port or config.web.port
    sock = bind(host, port)  # a busy port stops here, before "serving"
    if not config.public_dir.is_dir():
        click.echo(f"warning: {config.public_dir} does not exist yet; "
                   "run `gongbao-feed render` to fill it", err=True)
    click.echo(f"serving {config.public_dir} on http://{host}:{port}/ (Ctrl-C stops)", err=True)
    run_server(config, host, port, access_log=access_log, sock=sock)


issue_option = click.option(
    "--issue", "number", type=click.IntRange(min=1), help="Issue number (default: the newest)."
)


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
    """Add or update members from a sheet: CSV (UTF-8 or GB18030) or an Excel workbook
    (.xlsx), with an address column (email, 邮箱, 电子邮箱 …) and usually a name
    column (name, 姓名 …)."""
    with open_newsroom(config_path) as room:
        report = room.import_members(file, resubscribe=resubscribe)
    if report.encoding not in ("UTF-8", "xlsx"):
        click.echo(_("note: {file}: read as {encoding} (not UTF-8)").format(
            file=file, encoding=report.encoding), err=True)
    for warning in report.warnings:
        click.echo(f"warning: {file}: {warning}", err=True)
    for failure in report.failed:
        where = (f"{file}:{failure.line}" if report.unit == "line"
                 else _("{file}: row {row}").format(file=file, row=failure.line))
        click.echo(f"error: {where}: {failure.error}", err=True)
    if report.still_unsubscribed and not resubscribe:
        click.echo(f"note: {report.still_unsubscribed} of them had unsubscribed and stay so "
                   "(--resubscribe mails them again)", err=True)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(imported(report))
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
    if (nobody := report.no_members_note()) is not None:
        note(*nobody)
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
