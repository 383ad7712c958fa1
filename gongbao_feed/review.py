"""An editor's approval before members are mailed, and the quality gate before any send.

Approval (`issue.approval = "required"`): `assemble` (and the scheduler's
publish) makes the issue, renders it, and mails each of `issue.editors` a
proof copy, a test copy (its own Message-ID, never in the ledger) tagged
`[审核]` with an approve link. Members are mailed only once an editor has
approved, with `gongbao-feed approve N` or the link (`serve`). The record is
an `Approval` (table `approvals`, revision 0007); `send` refuses an issue
waiting for one, and `send --force` does not change that: forcing is for
the quality gate, which a human overrides after looking, while approval *is*
that human look.

The quality gate runs once per send, before the first member is claimed
(`check_issue`): every article of the issue is in the digest (in full, as
its first paragraph, or as a linked title) and, for the newest issue, in the
feeds; the feeds are well-formed and read as feeds (RSS 2.0, Atom, JSON
Feed: root element, every entry with an id, no id twice); a member's copy is
under `email.size_budget_kb`; no withdrawn article is in the digest or the
RSS and JSON feeds. A failure sends nothing; the verdict is kept
(`SendCheck`, table `send_checks`) for `status`; `send --force` sends anyway
and records who forced it.

The feeds are read with the standard library's XML parser (expat), not
feedparser: the checks need only the structure, and feedparser stays a test
dependency (the tests read the same feeds with it).

Pure: records and bytes in, problems out.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from .i18n import _

#: What a proof's subject starts with.
PROOF_SUBJECT_PREFIX = "[审核] "

_ATOM = "{http://www.w3.org/2005/Atom}"


@dataclass(frozen=True)
class Approval:
    """One issue's approval: asked for when the proof went out, given by an editor.

    Times are aware UTC. `editors` were mailed the proof; `approved_by` is an
    OS user (or `--by`) for `approve N`, the editor's address for the link;
    `approved_via` is "command" or "link"; `sent_at` is when a send to the
    members ran to its end, so the scheduler sends an approved issue once.
    """

    issue: int
    requested_at: datetime
    editors: tuple[str, ...] = ()
    approved_at: datetime | None = None
    approved_by: str | None = None
    approved_via: str | None = None
    sent_at: datetime | None = None

    @property
    def approved(self) -> bool:
        return self.approved_at is not None


@dataclass(frozen=True)
class Problem:
    """One failed check: `check` is a stable English name (digest, feeds, feed-format,
    size, withdrawn), `articles` the ids concerned, `detail` what is wrong, for people."""

    check: str
    detail: str
    articles: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "articles": list(self.articles), "detail": self.detail}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Problem:
        return cls(str(data.get("check", "")), str(data.get("detail", "")),
                   tuple(str(a) for a in data.get("articles", ())))


@dataclass(frozen=True)
class SendCheck:
    """The quality gate's latest verdict for one issue; `forced_by` set when
    `send --force` sent it despite the problems."""

    issue: int
    checked_at: datetime
    passed: bool
    problems: tuple[Problem, ...] = ()
    forced_at: datetime | None = None
    forced_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "checked": self.checked_at.isoformat(timespec="seconds"),
            "passed": self.passed,
            "problems": [p.to_json() for p in self.problems],
            "forced_by": self.forced_by,
        }


@dataclass(frozen=True)
class ArticleRef:
    """What the gate looks for of one article: its id, its title as the digest prints
    it, and its archive URL (which every form of it in the digest links to)."""

    id: str
    title: str
    url: str


def describe(problems: Sequence[Problem]) -> str:
    """The problems as one message, one per line after the first."""
    return "\n  ".join(f"{p.check}: {p.detail}" for p in problems)


def _named(refs: Sequence[ArticleRef]) -> str:
    return ", ".join(f"{r.id} «{r.title}»" for r in refs)


# -- the digest ----------------------------------------------------------------------


class _Links(HTMLParser):
    """Every <a href> and the whole text of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.add(href.strip())

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_digest(html_doc: str, text_doc: str, live: Sequence[ArticleRef],
                 withdrawn: Sequence[ArticleRef]) -> list[Problem]:
    """Every live article in both parts (the HTML links its URL and shows its title, the
    text part has its URL), and no withdrawn one in either."""
    parser = _Links()
    parser.feed(html_doc)
    parser.close()
    shown = "".join(parser.text)
    missing = [r for r in live
               if r.url not in parser.hrefs or r.title not in shown or r.url not in text_doc]
    problems = []
    if missing:
        problems.append(Problem(
            "digest",
            _("the digest lacks {articles} (neither in full, nor as a first paragraph, nor as "
              "a linked title)").format(articles=_named(missing)),
            tuple(r.id for r in missing)))
    there = [r for r in withdrawn if r.url in parser.hrefs or r.url in text_doc]
    if there:
        problems.append(Problem(
            "withdrawn",
            _("the digest still carries withdrawn {articles}").format(articles=_named(there)),
            tuple(r.id for r in there)))
    return problems


# -- the feeds -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Feed:
    ids: list[str]
    links: set[str]


def _read_rss(data: bytes) -> _Feed:
    root = ET.fromstring(data)
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ValueError(_("the root is not <rss> with a <channel>"))
    items = channel.findall("item")
    return _Feed([(i.findtext("guid") or "").strip() for i in items],
                 {(i.findtext("link") or "").strip() for i in items})


def _read_atom(data: bytes) -> _Feed:
    root = ET.fromstring(data)
    if root.tag != f"{_ATOM}feed":
        raise ValueError(_("the root is not an Atom <feed>"))
    entries = root.findall(f"{_ATOM}entry")
    links = {(link.get("href") or "").strip() for e in entries for link in e.findall(f"{_ATOM}link")
             if link.get("rel", "alternate") == "alternate"}
    return _Feed([(e.findtext(f"{_ATOM}id") or "").strip() for e in entries], links)


def _read_json(data: bytes) -> _Feed:
    feed = json.loads(data)
    if not isinstance(feed, dict) or not str(feed.get("version", "")).startswith(
            "https://jsonfeed.org/version/") or not isinstance(feed.get("items"), list):
        raise ValueError(_("not a JSON Feed (no version or no items)"))
    items = [i for i in feed["items"] if isinstance(i, dict)]
    return _Feed([str(i.get("id") or "").strip() for i in items],
                 {str(i.get("url") or "").strip() for i in items})


_READERS = {"rss": _read_rss, "atom": _read_atom, "json": _read_json}


def check_feeds(feeds: Mapping[str, tuple[str, bytes]], live: Sequence[ArticleRef],
                withdrawn: Sequence[ArticleRef], newest: bool) -> list[Problem]:
    """Each feed (kind → (file name, bytes)) parses and every entry has an id, no id twice;
    for the newest issue, every live article is linked from every feed; no withdrawn
    article is linked from any (Atom marks one with a tombstone, not an entry)."""
    problems: list[Problem] = []
    for kind, (name, data) in feeds.items():
        try:
            feed = _READERS[kind](data)
        except (ET.ParseError, ValueError) as exc:
            problems.append(Problem("feed-format", _("{feed} does not read as a feed: {reason}")
                                    .format(feed=name, reason=exc)))
            continue
        if any(not i for i in feed.ids) or len(set(feed.ids)) != len(feed.ids):
            problems.append(Problem("feed-format", _("{feed} has an entry without an id, or "
                                                     "one id twice").format(feed=name)))
        missing = [r for r in live if r.url not in feed.links] if newest else []
        if missing:
            problems.append(Problem(
                "feeds", _("{feed} lacks {articles}").format(feed=name, articles=_named(missing)),
                tuple(r.id for r in missing)))
        there = [r for r in withdrawn if r.url in feed.links]
        if there:
            problems.append(Problem(
                "withdrawn", _("{feed} still lists withdrawn {articles}").format(
                    feed=name, articles=_named(there)),
                tuple(r.id for r in there)))
    return problems


def check_size(size: int, budget_kb: int) -> list[Problem]:
    """A member's copy (`size` bytes, as sent) within email.size_budget_kb (1000 bytes each)."""
    if size <= budget_kb * 1000:
        return []
    return [Problem("size", _("a member's copy is {size} bytes, over email.size_budget_kb = "
                              "{budget} ({limit} bytes)").format(
                                  size=size, budget=budget_kb, limit=budget_kb * 1000))]
