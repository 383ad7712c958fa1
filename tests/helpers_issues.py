"""Helpers for the assemble, feed and archive tests: a newsroom in tmp_path, our own pages."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gongbao_feed.config import Config, config_from_dict
from gongbao_feed.models import Article, Byline, Issue
from gongbao_feed.publish import Newsroom

from .conftest import FixedClock

FEED_PAGES = Path(__file__).resolve().parent / "fixtures" / "feeds"
SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "schemas"
BASE = "https://paper.example.net/"
START = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai


def make_config(root: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {"paper": {"name": "职工时报", "base_url": BASE,
                                      "description": "职工时报每日要闻"}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return config_from_dict(data, root=root)


def make_room(root: Path, clock: FixedClock | None = None, **sections: dict[str, Any]) -> Newsroom:
    return Newsroom(make_config(root, **sections), clock=clock or FixedClock(START))


def copy_page(room: Newsroom, name: str) -> Path:
    room.config.inbox.mkdir(parents=True, exist_ok=True)
    target = room.config.inbox / name
    shutil.copy(FEED_PAGES / name, target)
    return target


def public_files(room: Newsroom) -> dict[str, tuple[int, int, bytes]]:
    """Every public file with (mtime_ns, inode, bytes): what a second render must not change."""
    out = {}
    for path in sorted(room.config.public_dir.rglob("*")):
        if path.is_file():
            st = os.stat(path)
            out[str(path.relative_to(room.config.public_dir))] = (
                st.st_mtime_ns, st.st_ino, path.read_bytes()
            )
    return out


def record(
    title: str,
    paragraphs: tuple[str, ...],
    *,
    day: date = date(2026, 3, 2),
    position: int = 0,
    seen: datetime = START,
    updated: datetime | None = None,
    issue: int = 1,
    **fields: Any,
) -> Article:
    """An Article as the store would return it, without going through a page."""
    return Article(
        id=f"{day.isoformat()}-{position:08x}",
        date=day,
        title=title,
        paragraphs=paragraphs,
        source=f"{day.isoformat()}-01.txt",
        position=position,
        first_seen=seen,
        updated=updated or seen,
        issue=issue,
        byline=fields.pop("byline", Byline(reporters=("周文涛",))),
        **fields,
    )


def issue_of(articles: list[Article], number: int = 1, created: datetime = START) -> Issue:
    return Issue(number, created.date(), f"职工时报 第{number}期", tuple(a.id for a in articles),
                 created)




class _Blocks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self.links: list[tuple[str, dict[str, str | None]]] = []
        self.tags: list[str] = []
        self._open: list[str] | None = None
        self._cls = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("a", "link"):
            self.links.append((tag, dict(attrs)))
        if tag in ("p", "h1", "h2"):
            self._open, self._cls = [], f"{tag}.{dict(attrs).get('class') or ''}"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "h1", "h2") and self._open is not None:
            self.blocks.append((self._cls, "".join(self._open)))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)


def html_blocks(html: str) -> _Blocks:
    """Paragraph-level blocks ("p.caption", text), links and tag names of an HTML document."""
    parser = _Blocks()
    parser.feed(html)
    parser.close()
    return parser


def body_texts(html: str) -> list[str]:
    """The text of the plain <p> paragraphs: the article body as a reader sees it."""
    return [text for cls, text in html_blocks(html).blocks if cls == "p."]


def html_text(fragment: str) -> str:
    """The text a browser shows for an HTML fragment (entities decoded, tags dropped)."""
    return "".join(text for _, text in html_blocks(f"<p>{fragment}</p>").blocks)
