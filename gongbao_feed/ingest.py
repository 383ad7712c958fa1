"""Ingest: files in the inbox → articles in the store.

The edge around the pure readers: it reads bytes, picks the reader by file
type, dates the page and saves each file in its own transaction. A bad file
is reported and skipped; the good files of the same run still go in.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from .errors import PageError, StoreError
from .handwritten import FrontMatterError, parse_markdown
from .i18n import _, os_reason
from .models import take_correction
from .pages import DecodeError, ParsedPage, decode_page, parse_page
from .sections import with_file_section
from .store import Store

MARKDOWN_SUFFIXES = {".md", ".markdown"}
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


@dataclass
class Failure:
    """A file that was not ingested: what is wrong, and what to do about it (or None)."""

    path: str
    error: str
    hint: str | None = None


@dataclass
class Gone:
    """An article the re-read page no longer has; kept in the store and still published.

    `path` is the file as given to ingest (like `Failure.path`), so the
    editor can open the page that dropped it.
    """

    id: str
    title: str
    path: str

    def describe(self) -> str:
        """One line for the terminal and the service log, the same in both."""
        return _("gone from {path}: {title} ({id}), kept published").format(
            path=self.path, title=self.title, id=self.id)


@dataclass
class IngestReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gone: list[Gone] = field(default_factory=list)
    #: The inbox, when the whole inbox was asked for and it held no file (or is missing).
    empty_inbox: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def empty_inbox_note(self) -> tuple[str, str] | None:
        """(message, hint) when the inbox held nothing to read; None otherwise."""
        inbox = self.empty_inbox
        if inbox is None:
            return None
        if not inbox.is_dir():
            return (
                _("the inbox {path} does not exist: nothing to ingest").format(path=inbox),
                _("make that folder and put the pages in it, or set paths.inbox in "
                  "config.toml to the folder where the pages arrive"),
            )
        return (_("the inbox {path} is empty: nothing to ingest").format(path=inbox), inbox_hint())

    def to_json(self) -> dict[str, object]:
        return {
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": [{"path": f.path, "error": f.error} for f in self.failed],
            "gone": [{"id": g.id, "title": g.title, "path": g.path} for g in self.gone],
        }


def date_from_name(name: str) -> date | None:
    """The YYYY-MM-DD in a file name, if it is a real date."""
    for m in _DATE_IN_NAME.finditer(name):
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            continue
    return None


def publication_date(path: Path, explicit: date | None, today: date) -> date:
    """File name first, then --date, then today in the paper's time zone."""
    return date_from_name(path.name) or explicit or today


def read_file(path: Path, day: date, sections: Mapping[str, str] | None = None) -> ParsedPage:
    """Read one input file with the reader for its type; errors name the file.

    `sections`: `[sections] files` (file-name pattern → section), the section
    of the articles that neither front matter nor a page header placed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PageError(str(path), _("cannot read: {reason}").format(
            reason=os_reason(exc))) from None
    document = sniff_document(data, path.suffix)
    if document is not None:
        what, hint = document
        raise PageError(str(path), _("{what}, not a text page").format(what=what), hint=hint)
    try:
        text = decode_page(data)
        if path.suffix.lower() in MARKDOWN_SUFFIXES:
            page = parse_markdown(text, day, source=path.name)
        else:
            page = parse_page(text, day, source=path.name)
    except DecodeError as exc:
        raise PageError(
            str(path), str(exc), hint=_("pages must be text in UTF-8 or GB18030 (GBK)")
        ) from None
    except FrontMatterError as exc:
        raise PageError(str(path), str(exc)) from None
    # A closing 更正：… line is a correction's note, not the article's text.
    page.articles[:] = with_file_section(
        (take_correction(a) for a in page.articles), path.name, sections or {})
    return page


def inbox_files(inbox: Path) -> list[Path]:
    """Every file in the inbox, in name order; hidden and temporary files skipped."""
    if not inbox.is_dir():
        return []
    return sorted(
        p
        for p in inbox.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".tmp", "~"))
    )


def ingest(
    store: Store,
    paths: Iterable[Path],
    *,
    explicit_date: date | None,
    today: date,
    now: datetime,
    sections: Mapping[str, str] | None = None,
) -> IngestReport:
    """Each file in its own transaction; `sections` as for `read_file`."""
    report = IngestReport()
    for path in paths:
        try:
            page = read_file(path, publication_date(path, explicit_date, today), sections)
            if not page.articles:
                raise PageError(str(path), _("no articles found"), hint=page_shape_hint())
            result = store.save_articles(page.articles, now)
        except PageError as exc:
            report.failed.append(
                Failure(str(path), exc.message.removeprefix(f"{path}: "), exc.hint)
            )
            continue
        except StoreError as exc:
            report.failed.append(Failure(str(path), _("not saved: {reason}").format(
                reason=exc.message)))
            continue
        report.warnings.extend(f"{path}: {w}" for w in page.warnings)
        if page.no_headline:
            report.warnings.append(f"{path}: {page_shape_hint()}")
        report.new += result.new
        report.updated += result.updated
        report.unchanged += result.unchanged
        report.gone.extend(Gone(g.id, g.title, str(path)) for g in result.gone)
    return report


def page_shape_hint() -> str:
    """What a page should look like, for a page where no article or headline was found."""
    return _(
        "a page is plain text with each article's headline on a line of its own "
        "(one to three short lines), then its text in paragraphs, e.g. a lead such as "
        "本报讯（记者 张三）…; see “The page format” in README"
    )


def inbox_hint() -> str:
    """What belongs in the inbox."""
    return _(
        "put the day's pages there as plain-text files (.txt, UTF-8 or GB18030), "
        "or hand-written articles as Markdown (.md), then run `gongbao-feed ingest` again"
    )


# -- office documents and other files that are not text pages -------------------------

_OLE2 = bytes.fromhex("D0CF11E0A1B11AE1")


def _utf16(name: str) -> bytes:
    return name.encode("utf-16-le")


def sniff_document(data: bytes, suffix: str = "") -> tuple[str, str] | None:
    """(what the file is, what to export instead) for an office document, PDF or
    other known binary format, by its content (magic bytes), not its name;
    None for anything else, which the page reader then decodes.

    Recognised: PDF (`%PDF`), OLE2 compound files (D0 CF 11 E0 A1 B1 1A E1:
    .doc, .xls, .ppt and WPS's .wps/.et/.dps), ZIP containers by their
    entries (word/ .docx, xl/ .xlsx, ppt/ .pptx, OpenDocument's mimetype,
    OFD's OFD.xml), RTF (`{\\rtf`), and PNG/JPEG/GIF/TIFF images.
    `suffix` (".wps") only names WPS files, whose content looks like Word's.
    """
    suffix = suffix.lower()
    head = data[:8]
    if head.startswith(b"%PDF"):
        return _("a PDF file"), _pdf_hint()
    if head.startswith(b"{\\rtf"):
        return _("an RTF document"), _word_hint()
    if head == _OLE2:
        return _ole2(data, suffix)
    if head.startswith(b"PK\x03\x04"):
        return _zipped(data, suffix)
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*")):
        return _("an image (a scan or photo of a page)"), _(
            "the text cannot be read from a picture: ask for the page as plain text "
            "(.txt, UTF-8 or GB18030)"
        )
    return None


def _ole2(data: bytes, suffix: str) -> tuple[str, str]:
    """Office 97-2003 and WPS files: the stream names in the compound file's directory."""
    if suffix in (".wps", ".et", ".dps"):
        what = {".wps": _("a WPS document (.wps)"), ".et": _("a WPS spreadsheet (.et)"),
                ".dps": _("a WPS presentation (.dps)")}[suffix]
        return what, _sheet_hint() if suffix == ".et" else _word_hint()
    if _utf16("WordDocument") in data:
        return _("a Word document (.doc)"), _word_hint()
    if _utf16("PowerPoint Document") in data:
        return _("a PowerPoint presentation (.ppt)"), _copy_hint()
    if _utf16("Workbook") in data or _utf16("Book") in data:
        return _("an Excel workbook (.xls)"), _sheet_hint()
    return _("an Office document (Word, Excel or WPS)"), _word_hint()


def _zipped(data: bytes, suffix: str) -> tuple[str, str]:
    """.docx/.xlsx/.pptx (Office Open XML), OpenDocument and OFD are ZIP files."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            mimetype = (
                archive.read("mimetype").decode("ascii", "replace")
                if "mimetype" in names else ""
            )
    except (zipfile.BadZipFile, OSError, KeyError, EOFError):
        names, mimetype = [], ""
    if suffix == ".wps" or any(n.startswith("word/") for n in names):
        what = _("a WPS document (.wps)") if suffix == ".wps" else _("a Word document (.docx)")
        return what, _word_hint()
    if any(n.startswith("xl/") for n in names):
        return _("an Excel workbook (.xlsx)"), _sheet_hint()
    if any(n.startswith("ppt/") for n in names):
        return _("a PowerPoint presentation (.pptx)"), _copy_hint()
    if mimetype.endswith("opendocument.text"):
        return _("an OpenDocument text (.odt)"), _word_hint()
    if mimetype.endswith("opendocument.spreadsheet"):
        return _("an OpenDocument spreadsheet (.ods)"), _sheet_hint()
    if "OFD.xml" in names:
        return _("an OFD document (.ofd)"), _pdf_hint()
    return _("a ZIP archive"), _(
        "unpack it and put the pages themselves (plain-text .txt files) in the inbox"
    )


def _word_hint() -> str:
    return _(
        "open it in Word or WPS and save it as plain text (File → Save As → Plain Text, .txt; "
        "encoding UTF-8 or GB18030), then put the .txt file in the inbox instead"
    )


def _pdf_hint() -> str:
    return _(
        "copy the text out of it (or export it as text) into a plain-text .txt file "
        "(UTF-8 or GB18030), and put that in the inbox instead"
    )


def _sheet_hint() -> str:
    return _(
        "pages come as plain text, not spreadsheets: copy the articles into a plain-text "
        ".txt file (UTF-8 or GB18030); a member list goes to `gongbao-feed members import` "
        "as CSV"
    )


def _copy_hint() -> str:
    return _(
        "copy its text into a plain-text .txt file (UTF-8 or GB18030) and put that in the "
        "inbox instead"
    )
