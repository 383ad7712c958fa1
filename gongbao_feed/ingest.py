"""Ingest: files in the inbox → articles in the store.

The edge around the pure readers: it reads bytes, picks the reader by file
type, dates the page and saves each file in its own transaction. A bad file
is reported and skipped; the good files of the same run still go in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from .errors import PageError, StoreError
from .handwritten import FrontMatterError, parse_markdown
from .models import take_correction
from .pages import DecodeError, ParsedPage, decode_page, parse_page
from .store import Store

MARKDOWN_SUFFIXES = {".md", ".markdown"}
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


@dataclass
class Failure:
    path: str
    error: str


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
        return f"gone from {self.path}: {self.title} ({self.id}), kept published"


@dataclass
class IngestReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gone: list[Gone] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

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


def read_file(path: Path, day: date) -> ParsedPage:
    """Read one input file with the reader for its type; errors name the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PageError(str(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        text = decode_page(data)
        if path.suffix.lower() in MARKDOWN_SUFFIXES:
            page = parse_markdown(text, day, source=path.name)
        else:
            page = parse_page(text, day, source=path.name)
    except DecodeError as exc:
        raise PageError(
            str(path), str(exc), hint="pages must be text in UTF-8 or GB18030 (GBK)"
        ) from None
    except FrontMatterError as exc:
        raise PageError(str(path), str(exc)) from None
    # A closing 更正：… line is a correction's note, not the article's text.
    page.articles[:] = [take_correction(a) for a in page.articles]
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
) -> IngestReport:
    report = IngestReport()
    for path in paths:
        try:
            page = read_file(path, publication_date(path, explicit_date, today))
            if not page.articles:
                raise PageError(str(path), "no articles found", hint=_FORMAT_HINT)
            result = store.save_articles(page.articles, now)
        except PageError as exc:
            report.failed.append(Failure(str(path), exc.message.removeprefix(f"{path}: ")))
            continue
        except StoreError as exc:
            report.failed.append(Failure(str(path), f"not saved: {exc.message}"))
            continue
        report.warnings.extend(f"{path}: {w}" for w in page.warnings)
        report.new += result.new
        report.updated += result.updated
        report.unchanged += result.unchanged
        report.gone.extend(Gone(g.id, g.title, str(path)) for g in result.gone)
    return report


_FORMAT_HINT = "a page needs a headline and a lead such as 本报讯（记者 张三）…; see README"
