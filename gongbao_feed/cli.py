"""The `gongbao-feed` command: each command a few lines over the library.

Expected failures (GongbaoError) print as one clear message without a
traceback and exit 1; `--json` output goes to stdout alone, so other tools
can read it, and human notes go to stderr.

Every word an operator reads is in the locale's language (`i18n`): the
help texts are marked with `N_` where they are defined (click reads them at
import) and translated when `--help` is formatted, by `_Command`, `_Group`
and `_Option`; click's own words come from our catalog too
(`i18n.use_for_click`). A `--json` command runs in English throughout, so
what a tool reads never depends on the locale.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import re
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
from .editorial import correction_text, detail_lines
from .errors import GongbaoError
from .i18n import N_, _, english, ngettext, use_for_click
from .ingest import page_shape_hint, publication_date, read_file
from .members import ImportReport
from .migrations import upgrade_hint
from .models import Member, MemberStatus
from .publish import Newsroom
from .skeleton import init_folder
from .store import Store, schema_state

F = TypeVar("F", bound=Callable[..., Any])


class _Option(click.Option):
    """An option whose help (marked with N_) is translated when `--help` shows it."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown = copy.copy(self)
        shown.help = _(self.help) if self.help else self.help
        return click.Option.get_help_record(shown, ctx)


class _Path(click.Path):
    """click.Path whose word for itself ("File 'x' does not exist.") is translated when
    shown: click looks it up once, when the command is declared, before the CLI has
    bound click to our catalog."""

    @property  # type: ignore[override]
    def name(self) -> str:
        return _(self._word)

    @name.setter
    def name(self, value: str) -> None:
        self._word = value


class _MissingParameter(click.MissingParameter):
    """click's "Missing option '--reason'." with the sentence's end in the operator's
    language: click puts an ASCII full stop after its (translated) words itself."""

    def format_message(self) -> str:
        text = super().format_message()
        if text.endswith("."):
            return _("{sentence}.").format(sentence=text[:-1])
        return text


class _Command(click.Command):
    """A command whose help (marked with N_) is translated when it is shown."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.MissingParameter as exc:
            raise _MissingParameter(exc.message, exc.ctx, exc.param, exc.param_hint,
                                    exc.param_type) from None

    def _shown(self) -> click.Command:
        shown = copy.copy(self)
        shown.help = _(self.help) if self.help else self.help
        return shown

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        click.Command.format_help_text(self._shown(), ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return click.Command.get_short_help_str(self._shown(), limit)


class _Group(_Command, click.Group):
    """A group of translated commands; the CLI's entry point binds click to our catalog."""

    command_class = _Command
    group_class = type  # subgroups are _Group too

    def main(self, *args: Any, **kwargs: Any) -> Any:
        use_for_click()
        return super().main(*args, **kwargs)


option = functools.partial(click.option, cls=_Option)


def friendly(fn: F) -> F:
    """Turn the library's errors into a message and exit status 1.

    With `--json` the whole command runs in English (`i18n.english`): the
    texts inside the JSON (a failure's `error`, a plan's `reason`) are the
    ones the library wrote, and a tool must read the same in every locale.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with english() if kwargs.get("as_json") else contextlib.nullcontext():
            try:
                return fn(*args, **kwargs)
            except GongbaoError as exc:
                click.echo(_("error: {message}").format(message=exc), err=True)
                sys.exit(1)

    return wrapper  # type: ignore[return-value]


def warn(text: str) -> None:
    click.echo(_("warning: {message}").format(message=text), err=True)


def fail(text: str) -> None:
    click.echo(_("error: {message}").format(message=text), err=True)


def hint(text: str) -> None:
    click.echo(hint_line(text), err=True)


_STATUS = {
    MemberStatus.ACTIVE: N_("active"),
    MemberStatus.UNSUBSCRIBED: N_("unsubscribed"),
    MemberStatus.BOUNCED: N_("bounced"),
    MemberStatus.PENDING: N_("pending"),
}


#: The byline's roles as `parse` shows them (`--json` keeps the keys).
_ROLES = {
    "reporters": N_("reporters"),
    "correspondents": N_("correspondents"),
    "interns": N_("interns"),
    "photographers": N_("photographers"),
}


def name_list(names: list[str]) -> str:
    """`a,b,c` (`a、b、c` in Chinese): the names of one role."""
    shown = names[0] if names else ""
    for name in names[1:]:
        shown = _("{names},{name}").format(names=shown, name=name)
    return shown


#: How a member unsubscribed (Member.reason): the stored word is the English one.
_VIA = {
    "one-click": N_("one-click"),
    "mailto": N_("mailto"),
    "complaint": N_("complaint"),
    "removed": N_("removed"),
}


def reason_label(member: Member) -> str:
    """Why `member` left the active list, as the operator reads it: how they
    unsubscribed, or the bounce's text (the remote server's own words) with our frame
    around a run of soft bounces. `--json` keeps the stored value."""
    reason = member.reason or ""
    if member.status is MemberStatus.UNSUBSCRIBED and reason in _VIA:
        return _(_VIA[reason])
    soft = re.fullmatch(r"(?s)(\d+) soft bounces in a row; the last: (.*)", reason)
    if soft:
        return _("{n} soft bounces in a row; the last: {detail}").format(
            n=soft[1], detail=soft[2])
    return reason


def status_label(status: MemberStatus) -> str:
    """A member's status as the operator reads it (`--json` keeps the English value)."""
    return _(_STATUS.get(status, str(status)))


config_option = option(
    "--config",
    "config_path",
    type=_Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG_NAME,
    show_default=True,
    help=N_("The working folder's config file; its folder is where relative paths start."),
)
json_option = option(
    "--json", "as_json", is_flag=True, help=N_("Print one JSON object to stdout.")
)


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            _("{value!r} is not a date; expected YYYY-MM-DD").format(value=value)
        ) from None


date_option = option(
    "--date",
    "on_date",
    callback=_date,
    metavar="YYYY-MM-DD",
    help=N_("Publication date when the file name has none "
            "(default: today in the paper's zone)."),
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
    """The store's and the config's warnings (a database file others could read, DKIM
    not aligned with From) on stderr, unless the service's log is taking the package's
    lines (`run`): said once, where it is read."""

    def emit(self, record: logging.LogRecord) -> None:
        if any(h is not self for h in logging.getLogger("gongbao_feed").handlers):
            return
        click.echo(record.getMessage(), err=True)


def _echo_store_warnings() -> None:
    for name in ("gongbao_feed.store", "gongbao_feed.config"):
        log = logging.getLogger(name)
        if not any(isinstance(h, _EchoWarnings) for h in log.handlers):
            log.addHandler(_EchoWarnings(logging.WARNING))


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=N_("Publish the union newspaper as feeds, a web archive and email digests."),
)
@click.version_option(package_name="gongbao-feed", cls=_Option,
                      help=N_("Show the version and exit."))  # click's, at import
def main() -> None:
    _echo_store_warnings()


@main.command(help=N_("Make a self-contained working folder: config, inbox, templates, state."))
@click.argument("directory", type=_Path(file_okay=False, path_type=Path))
@friendly
def init(directory: Path) -> None:
    made = init_folder(directory)
    for path in made:
        click.echo(_("created {path}").format(path=path), err=True)
    inbox = directory / "inbox"
    click.echo(_("next: put pages in {inbox} and run `gongbao-feed ingest` there")
               .format(inbox=inbox), err=True)


@main.command(
    help=N_("Read one page (or Markdown article) and show the articles found; stores nothing.")
)
@click.argument("file", type=_Path(exists=True, dir_okay=False, path_type=Path))
@date_option
@json_option
@config_option
@friendly
def parse(file: Path, on_date: date | None, as_json: bool, config_path: Path) -> None:
    config: Config = (
        load_config(config_path) if config_path.is_file() else config_from_dict({}, Path.cwd())
    )
    today = Newsroom(config).today()
    page = read_file(file, publication_date(file, on_date, today), config.sections.files)
    for warning in page.warnings:
        warn(f"{file}: {warning}")
    if not page.articles:
        warn(_("{path}: no articles found").format(path=file))
    if not page.articles or page.no_headline:
        click.echo(hint_line(page_shape_hint()), err=True)
    if as_json:
        emit({"articles": [a.to_json() for a in page.articles]})
        return
    for a in page.articles:
        heads = " / ".join(x for x in (a.kicker, a.title, a.subtitle) if x)
        names = " ".join(_("{role}={names}").format(role=_(_ROLES[k]), names=name_list(v))
                         for k, v in a.byline.to_dict().items() if v)
        click.echo(f"[{a.id}] {heads}")
        no_byline = _("no byline")
        counts = _("{paragraphs}, {captions}").format(
            paragraphs=ngettext("{n} paragraph", "{n} paragraphs", len(a.paragraphs))
            .format(n=len(a.paragraphs)),
            captions=ngettext("{n} caption", "{n} captions", len(a.captions))
            .format(n=len(a.captions)),
        )
        click.echo(f"    {a.dateline or '-'} | {names or no_byline} | {counts}")


@main.command(
    help=N_("Add new and changed articles from PATHS (default: every file in the inbox).")
)
@click.argument("paths", nargs=-1, type=_Path(path_type=Path))
@date_option
@json_option
@config_option
@friendly
def ingest(paths: tuple[Path, ...], on_date: date | None, as_json: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        report = room.ingest(list(paths) if paths else None, on_date)
    for warning in report.warnings:
        warn(warning)
    for failure in report.failed:
        fail(f"{failure.path}: {failure.error}")
        if failure.hint:
            click.echo(hint_line(failure.hint), err=True)
    if (empty := report.empty_inbox_note()) is not None:
        note(*empty)
    if as_json:
        emit(report.to_json())
    else:
        for gone in report.gone:
            click.echo(gone.describe())
        summary = _("ingested: {new} new, {updated} updated, {unchanged} unchanged, "
                    "{failed} failed").format(new=report.new, updated=report.updated,
                                              unchanged=report.unchanged,
                                              failed=len(report.failed))
        if report.gone:
            summary = _("{summary}, {gone} gone").format(summary=summary, gone=len(report.gone))
        click.echo(summary)
    if not report.ok:
        sys.exit(1)


@main.command(
    help=N_("Gather new articles into the next numbered issue, then render feeds and archive.")
)
@option("--dry-run", is_flag=True, help=N_("Show what the issue would hold; write nothing."))
@option("--force", is_flag=True, help=N_("Make the issue even below issue.min_articles."))
@json_option
@config_option
@friendly
def assemble(dry_run: bool, force: bool, as_json: bool, config_path: Path) -> None:
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
    for editor, why in result.proof_failed:
        fail(_("proof to {editor}: {why}").format(editor=editor, why=why))
    if result.proof_failed:
        sys.exit(1)


@main.command(help=N_("Write the feeds (RSS, Atom, JSON Feed, issues) and the web archive "
                      "to the public folder."))
@json_option
@config_option
@friendly
def render(as_json: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        report = room.render()
    if as_json:
        emit(report.to_json())
    else:
        click.echo(rendered(report))


@main.command(
    help=N_("Serve the public folder (feeds, archive) and one-click unsubscribe over HTTP.")
)
@option("--host", default=None, help=N_("Address to listen on (default: [web] host)."))
@option("--port", type=click.IntRange(1, 65535), default=None,
        help=N_("Port to listen on (default: [web] port)."))
@option("--access-log/--no-access-log", default=False, show_default=True,
        help=N_("Log every request (a proxy in front usually does this already)."))
@config_option
@friendly
def serve(host: str | None, port: int | None, access_log: bool, config_path: Path) -> None:
    from .web import bind
    from .web import serve as run_server

    config = load_config(config_path)
    host, port = host or config.web.host, port or config.web.port
    sock = bind(host, port)  # a busy port stops here, before "serving"
    if not config.public_dir.is_dir():
        warn(_("{public} does not exist yet; run `gongbao-feed render` to fill it")
             .format(public=config.public_dir))
    click.echo(_("serving {public} on {url} (Ctrl-C stops)")
               .format(public=config.public_dir, url=f"http://{host}:{port}/"), err=True)
    run_server(config, host, port, access_log=access_log, sock=sock)


issue_option = option(
    "--issue", "number", type=click.IntRange(min=1), help=N_("Issue number (default: the newest).")
)


@main.group(help=N_("Articles as an editor sees them: list, show, withdraw, restore, note."))
def articles() -> None:
    pass


by_option = option(
    "--by", default=None, metavar="NAME",
    help=N_("Who is doing this, for the record (default: the logged-in user)."),
)


@articles.command("list", help=N_(
    "Every article with its date, title, section, issue, status and revision."
))
@option("--issue", "number", type=click.IntRange(min=1), help=N_("Only this issue's articles."))
@option("--section", default=None, help=N_("Only the articles of this section."))
@json_option
@config_option
@friendly
def articles_list(number: int | None, section: str | None, as_json: bool,
                  config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        found = room.list_articles(issue=number, section=section)
    if as_json:
        emit([a.to_json() for a in found])
        return
    for a in found:
        where = str(a.issue) if a.issue is not None else "-"
        click.echo(f"{a.id}\t{a.status.label}\t{where}\tr{a.revision}\t{a.section or '-'}\t"
                   f"{a.title}")


@articles.command("show", help=N_(
    "One article: headline, dateline, byline, issue, status, withdrawals, corrections."
))
@click.argument("article_id", metavar="ID")
@config_option
@friendly
def articles_show(article_id: str, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        detail = room.article_detail(article_id)
        lines = detail_lines(detail, room.config.tz)
    click.echo("\n".join(lines))


@articles.command("withdraw", help=N_(
    "Withdraw an article (撤稿): out of every issue to come, or retracted if published."
))
@click.argument("article_id", metavar="ID")
@option("--reason", required=True,
        help=N_("Why; readers see it on the retraction notice."))
@by_option
@config_option
@friendly
def articles_withdraw(article_id: str, reason: str, by: str | None, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        room.withdraw(article_id, reason, by=by)
        article = room.store.article(article_id)
    if article is not None and article.issue is not None:
        click.echo(_("{id}: retracted from issue {n}; its page is a retraction notice, the feeds "
                     "drop it (Atom keeps a tombstone), unsent digests leave it out").format(
                         id=article_id, n=article.issue))
    else:
        click.echo(_("{id}: withdrawn; it will not go into any issue").format(id=article_id))


@articles.command("restore", help=N_(
    "Undo a withdrawal: the article is back where it was."
))
@click.argument("article_id", metavar="ID")
@by_option
@config_option
@friendly
def articles_restore(article_id: str, by: str | None, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        room.restore(article_id, by=by)
    click.echo(_("{id}: restored").format(id=article_id))


@articles.command("note", help=N_(
    "The editor's words for a published article's correction note (更正)."
))
@click.argument("article_id", metavar="ID")
@click.argument("text")
@by_option
@config_option
@friendly
def articles_note(article_id: str, text: str, by: str | None, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        correction = room.note(article_id, text, by=by)
        line = correction_text(correction, room.config.tz)
    click.echo(f"{article_id}: {line}")


@main.group(help=N_("The member list the digests go to: import, add, remove, list."))
def members() -> None:
    pass


@members.command("import", help=N_(
    "Add or update members from a sheet: CSV (UTF-8 or GB18030) or an Excel workbook "
    "(.xlsx), with an address column (email, 邮箱, 电子邮箱 …) and usually a name "
    "column (name, 姓名 …)."))
@click.argument("file", type=_Path(exists=True, dir_okay=False, path_type=Path))
@option("--resubscribe", is_flag=True,
        help=N_("Mail members in the file again even if they had unsubscribed."))
@json_option
@config_option
@friendly
def members_import(file: Path, resubscribe: bool, as_json: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        report = room.import_members(file, resubscribe=resubscribe)
    if report.encoding not in ("UTF-8", "xlsx"):
        click.echo(_("note: {file}: read as {encoding} (not UTF-8)").format(
            file=file, encoding=report.encoding), err=True)
    for warning in report.warnings:
        warn(f"{file}: {warning}")
    for failure in report.failed:
        where = (f"{file}:{failure.line}" if report.unit == "line"
                 else _("{file}: row {row}").format(file=file, row=failure.line))
        fail(f"{where}: {failure.error}")
    if report.still_unsubscribed and not resubscribe:
        note(ngettext("{n} of them had unsubscribed and stays so "
                      "(--resubscribe mails them again)",
                      "{n} of them had unsubscribed and stay so "
                      "(--resubscribe mails them again)",
                      report.still_unsubscribed).format(n=report.still_unsubscribed))
    if as_json:
        emit(report.to_json())
    else:
        click.echo(imported(report))
    if not report.ok:
        sys.exit(1)


@members.command("add", help=N_("Add one member (or change the name of one already on "
                                "the list)."))
@click.argument("email")
@option("--name", default="", help=N_("The name the digest greets them by."))
@option("--resubscribe", is_flag=True, help=N_("Mail them again if they had unsubscribed."))
@config_option
@friendly
def members_add(email: str, name: str, resubscribe: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        member = room.add_member(email, name, resubscribe=resubscribe)
    click.echo(f"{member.email}: {status_label(member.status)}")
    if member.status is MemberStatus.BOUNCED:
        note(_("their address bounced ({reason}); --resubscribe mails them again").format(
            reason=member.bounce_reason or "?"))
    elif member.status != "active":
        note(_("they unsubscribed earlier; --resubscribe mails them again"))


@members.command("remove", help=N_("Stop mailing a member; they stay on file as unsubscribed "
                                   "unless --forget."))
@click.argument("email")
@option("--forget", is_flag=True,
        help=N_("Delete the record too (a later import would add them again)."))
@config_option
@friendly
def members_remove(email: str, forget: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        member = room.remove_member(email, forget=forget)
    shown = _("forgotten") if forget else status_label(member.status)
    click.echo(f"{member.email}: {shown}")


@members.command("list", help=N_("Every member with their status."))
@json_option
@config_option
@friendly
def members_list(as_json: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        everyone = room.members()
    if as_json:
        emit([m.to_json() for m in everyone])
        return
    if not everyone:  # stdout stays empty: a script counting lines counts none
        note(_("no members yet"),
             hint=_("add members with `gongbao-feed members import FILE.csv` (a sheet with the "
                    "columns email and name) or `gongbao-feed members add EMAIL --name NAME`"))
    for m in everyone:
        row = f"{m.email}\t{m.name}\t{status_label(m.status)}"
        if m.since is not None:  # when and why they left the active list
            row += f"\t{m.since.astimezone(room.config.tz):%Y-%m-%d %H:%M}\t{reason_label(m)}"
        click.echo(row)


@main.command(help=N_(
    "Mail an issue's digest to every member who has not had it yet.\n\n"
    "Run it again after a failure or a stop: it sends what is missing. "
    "SIGINT/SIGTERM let each connection finish and record its message first."
))
@issue_option
@option("--via", type=click.Choice(["outbox", "smtp"]),
        help=N_("Transport (default: [email] transport)."))
@option("--dry-run", is_flag=True, help=N_("List who would get the issue; send nothing."))
@option("--to", "address", metavar="ADDRESS",
        help=N_("Send one test copy to ADDRESS; the ledger is not touched."))
@option("--retry-failed", is_flag=True,
        help=N_("Also try again the addresses the relay refused for good (5xx)."))
@option("--force", is_flag=True,
        help=N_("Send even though the quality gate failed, after a person has looked "
                "(recorded). Does not skip an editor's approval."))
@by_option
@json_option
@config_option
@friendly
def send(number: int | None, via: str | None, dry_run: bool, address: str | None,
         retry_failed: bool, force: bool, by: str | None, as_json: bool,
         config_path: Path) -> None:
    with (
        open_newsroom(config_path) as room,
        _progress(enabled=not as_json) as progress,
        _stop_on_signals() as stopping,
    ):
        try:
            report = room.send(number, via=via, dry_run=dry_run, to=address, progress=progress,
                               stop=stopping.event, retry_failed=retry_failed, force=force,
                               by=by)
        except GongbaoError as exc:
            if as_json and isinstance(exc.report, SendReport):
                emit(exc.report.to_json())  # the counts so far, with "error"
            raise
    for email, why in report.failed:
        fail(f"{email}: {why}")
    if as_json:
        emit(report.to_json())
    elif dry_run:
        for email, name in report.would_send:
            click.echo(f"{email}\t{name}")
        click.echo(_("issue {issue} «{subject}»: would send {would}, {skipped} already sent")
                   .format(issue=report.issue, subject=report.subject,
                           would=len(report.would_send), skipped=report.skipped), err=True)
    else:
        click.echo(_("issue {issue}: {sent} sent, {skipped} skipped, {failed} failed").format(
            issue=report.issue, sent=report.sent, skipped=report.skipped,
            failed=len(report.failed)))
    if (nobody := report.no_members_note()) is not None:
        note(*nobody)
    if stopping.signal:
        click.echo(_("stopped: run `gongbao-feed send` again to send the rest"), err=True)
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
            click.echo("\n" + _("{signal}: finishing the messages in flight")
                       .format(signal=signal.Signals(signum).name), err=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@main.command(help=N_(
    "Approve issue N for the members (with issue.approval = \"required\").\n\n"
    "Records who and when; the service then sends it at its next ingest, or run "
    "`gongbao-feed send --issue N`."
))
@click.argument("number", metavar="N", type=click.IntRange(min=1))
@by_option
@json_option
@config_option
@friendly
def approve(number: int, by: str | None, as_json: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        sent = room.sent_to_all(number)
        required = room.config.issue.approval == "required"
        if room.store.approval(number) is None and (sent or not required):
            # Nothing waits for this issue: recording an approval would only mislead.
            _nothing_to_approve(number, sent, required, as_json)
            return
        approval, changed = room.approve(number, by=by)
        every = room.config.schedule.ingest_every_minutes
        tz = room.config.tz
    when = approval.approved_at.astimezone(tz) if approval.approved_at else None
    if as_json:
        emit({"issue": number, "approved": True, "changed": changed,
              "approved_by": approval.approved_by, "approved_via": approval.approved_via,
              "approved_at": when.isoformat(timespec="seconds") if when else None,
              "sent": sent})
        return
    shown = when.isoformat(timespec="minutes") if when else "-"
    if changed:
        click.echo(_("issue {n}: approved by {who} at {when}").format(
            n=number, who=approval.approved_by, when=shown))
    else:
        click.echo(_("issue {n}: already approved by {who} at {when}; nothing changed").format(
            n=number, who=approval.approved_by, when=shown))
    if sent:
        note(_("issue {n} has already gone to every member: nothing more to send").format(
            n=number))
    elif approval.sent_at is None:
        note(_("the service sends it to the members within {n} min (its next ingest)").format(
            n=every), hint=_("or send it now: `gongbao-feed send --issue {n}`").format(n=number))


def _nothing_to_approve(number: int, sent: bool, required: bool, as_json: bool) -> None:
    """`approve N` for an issue nothing waits for: already mailed to every member, or
    made with issue.approval = "none". Exits 0 (the issue is where the operator wants
    it) and records nothing."""
    if as_json:
        emit({"issue": number, "approved": False, "changed": False, "sent": sent,
              "required": required})
        return
    if sent:
        note(_("issue {n} has already gone to every member: nothing to approve or send")
             .format(n=number))
    else:
        note(_("approval is not required in this working folder (issue.approval = \"none\"): "
               "issue {n} goes to the members without it; nothing recorded").format(n=number),
             hint=_("to have an editor approve each issue first, set issue.approval = "
                    "\"required\" and issue.editors in config.toml"))


@main.command(help=N_(
    "Read the bounce mailbox: bounces, complaints and mailed unsubscribes.\n\n"
    "A hard bounce marks the member bounced, soft ones count (bounces.soft_limit in a "
    "row mark them bounced), a complaint or an unsubscribe by mail unsubscribes them. "
    "Processed messages are moved aside; the rest stay and are listed."
))
@option("--maildir", type=_Path(file_okay=False, path_type=Path),
        help=N_("Read this Maildir (default: [bounces] maildir, or IMAP when imap_host is "
                "set)."))
@json_option
@config_option
@friendly
def bounces(maildir: Path | None, as_json: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        report = room.process_bounces(maildir=maildir)
    for left in report.unclassified:
        note(_("left in the mailbox: {name} ({subject}): {reason}").format(
            name=left.name, subject=left.subject or _("no subject"), reason=left.reason))
    if as_json:
        emit(report.to_json())
        return
    for email, status, why in report.changes:
        click.echo(f"{email}: {status_label(status)} ({why})")
    click.echo(_("{hard} hard, {soft} soft, {complaints} complaints, {unsubscribes} "
                 "unsubscribes, {unclassified} left unclassified").format(
        **report.to_json()))


@main.command(help=N_("The delivery ledger: counts by state, and every failure with its reason."))
@option("--issue", "number", type=click.IntRange(min=1),
        help=N_("Only this issue (default: every issue)."))
@json_option
@config_option
@friendly
def deliveries(number: int | None, as_json: bool, config_path: Path) -> None:
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

    with tqdm(unit=_("msg"), desc=_("sending"), file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update


@main.command(help=N_("Write an issue's digest as HTML (and text) and print the file's path."))
@issue_option
@option("--open", "open_it", is_flag=True, help=N_("Open the file in a browser."))
@config_option
@friendly
def preview(number: int | None, open_it: bool, config_path: Path) -> None:
    with open_newsroom(config_path) as room:
        path = room.preview(number)
    click.echo(str(path))
    if open_it:
        click.launch(str(path))


@main.command(help=N_(
    "Run the service: ingest on [schedule] ingest_every_minutes, publish on publish_cron.\n\n"
    "One service per working folder. SIGTERM or Ctrl-C stops it cleanly: the "
    "message being sent is finished and recorded, then it exits 0."
))
@option("--once", is_flag=True,
        help=N_("Publish once now (ingest, assemble, render, send), then exit: "
                "for cron or a systemd timer."))
@config_option
@friendly
def run(once: bool, config_path: Path) -> None:
    from .schedule import Service

    service = Service(config_path)
    if not once:
        service.run()
    elif service.run_once() is None:
        sys.exit(1)


@main.command(help=N_(
    "Print a systemd timer that runs `run --once` on [schedule] publish_cron.\n\n"
    "For running without the `run` service: save the output as "
    "/etc/systemd/system/gongbao-feed-once.timer (next to "
    "deploy/gongbao-feed-once.service). Write it again after changing publish_cron."
))
@config_option
@friendly
def timer(config_path: Path) -> None:
    from .systemd import timer_unit

    click.echo(timer_unit(load_config(config_path), config_path), nl=False)


@main.command(help=N_("Who runs the service, when its jobs run next, the last issue and "
                      "its deliveries."))
@json_option
@config_option
@friendly
def status(as_json: bool, config_path: Path) -> None:
    from .schedule import service_status

    report = service_status(load_config(config_path))
    if as_json:
        emit(report.to_json())
    else:
        for text in report.lines():
            click.echo(text)


@main.group(help=N_("The database schema: `db upgrade` after installing a new release."))
def db() -> None:
    pass


@db.command("upgrade", help=N_(
    "Apply the pending schema migrations, then print the schema's revision.\n\n"
    "Back up the database first. Safe to run again: at the newest revision it "
    "changes nothing. A database made by release 0.1 is recognised and upgraded."
))
@json_option
@config_option
@friendly
def db_upgrade(as_json: bool, config_path: Path) -> None:
    with Store(load_config(config_path).database_url, upgrade=True) as store:
        report = store.schema
    for line in report.lines():
        click.echo(line, err=True)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(report.after.describe())


@db.command("version", help=N_("Print the database's schema revision and the newest this "
                                "release has; changes nothing."))
@json_option
@config_option
@friendly
def db_version(as_json: bool, config_path: Path) -> None:
    state = schema_state(load_config(config_path).database_url)
    if as_json:
        emit(state.to_json())
    else:
        click.echo(state.describe())
    if not (state.current or state.empty):
        hint(upgrade_hint() if state.known else _("a newer gongbao-feed has upgraded it"))


@main.group(help=N_("DKIM signing keys: `dkim keygen` makes one and prints its DNS record."))
def dkim() -> None:
    pass


def _dns_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from .config import domain_problem

    problem = domain_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value.lower()


@dkim.command("keygen", help=N_(
    "Write a 2048-bit RSA signing key (mode 0600) and print the DNS TXT record that "
    "publishes its public half.\n\n"
    "Publish the record at SELECTOR._domainkey.DOMAIN, then set [dkim] domain, selector "
    "and private_key_file in the config. An existing key file is never replaced "
    "without --force."
))
@option("--selector", required=True, callback=_dns_name,
        help=N_("The DKIM selector, e.g. the year and month: 202611."))
@option("--domain", required=True, callback=_dns_name,
        help=N_("The signing domain: the From address's domain or its parent."))
@option("--out", "out", type=_Path(dir_okay=False, path_type=Path),
        help=N_("The key file to write (default: dkim-SELECTOR.key in the config's folder, "
                "or here when there is no config)."))
@option("--force", is_flag=True, help=N_("Replace the key file if it exists."))
@config_option
@friendly
def dkim_keygen(selector: str, domain: str, out: Path | None, force: bool,
                config_path: Path) -> None:
    from .signing import dns_record, generate_key, private_pem, write_key

    # The config reads private_key_file against its own folder: with a config, write
    # the key there and print the line as the config will read it.
    root = config_path.resolve().parent if config_path.is_file() else None
    path = out or (root or Path()) / f"dkim-{selector}.key"
    key = generate_key()
    write_key(path, private_pem(key), force=force)
    shown = str(path)
    if root is not None:
        full = path.resolve()
        shown = str(full.relative_to(root)) if full.is_relative_to(root) else str(full)
    click.echo(dns_record(selector, domain, key))
    click.echo(_("wrote {path} (mode 0600); publish the record above in DNS, then add to the "
                 "config:").format(path=path), err=True)
    click.echo(f'  [dkim]\n  domain = "{domain}"\n  selector = "{selector}"\n'
               f'  private_key_file = "{shown}"', err=True)
