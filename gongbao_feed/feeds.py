"""Feeds: published articles and issues → RSS 2.0, Atom 1.0, JSON Feed 1.1 bytes.

Pure: records and config in, bytes out; the Newsroom writes them. RSS and
Atom come from one feedgen FeedGenerator, so they hold the same entries in
the same order, and JSON Feed is built from the same list.

Two feedgen traps are closed here. It stamps the clock into `updated` and
`lastBuildDate` unless told otherwise, so both are set from the newest
change in the feed: the same articles give the same bytes. And
`add_entry()` prepends by default, so every entry is added with
`order="append"`.

Ids are minted once, when a thing is first published, and stored
(`FeedIds`, table feed_ids): a tag: URI (RFC 4151) made of the site's host
and path at that moment and the article's id and date, neither of which a
correction changes, and the feed's own URL at that moment for the feed's
id. They are never derived from the current `paper.base_url` again, so a
site that moves keeps every id (RFC 4287 §4.2.6) while links follow it; a
corrected article updates its entry in a reader instead of arriving twice.

Every time is written in whole seconds: readers built on ROME drop dates with
fractions and older NetNewsWire reads the digits as a zone offset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo
from typing import Any

from feedgen.feed import FeedGenerator
from lxml import etree
from markupsafe import Markup, escape

from . import urls
from .assemble import publication_order
from .config import Config
from .editorial import Decisions, corrections_html, last_changed, retraction_text
from .fragments import article_html, clean_article, summary, toc_html, xml_safe
from .models import Article, Byline, Issue
from .sections import section_title

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
GENERATOR = "gongbao-feed"
#: The `updated` of a feed with nothing in it yet: fixed, so even that renders the same.
EMPTY_FEED_TIME = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedIds:
    """The stored ids: articles by article id, issues by number, feeds by kind ("atom", "issues").

    A thing missing here gets the id it would have been minted with now
    (`mint_ids`); Newsroom.render stores those before it writes any feed.
    """

    articles: Mapping[str, str] = field(default_factory=dict)
    issues: Mapping[int, str] = field(default_factory=dict)
    feeds: Mapping[str, str] = field(default_factory=dict)


#: The feeds that carry an id of their own (RSS has no channel id; JSON Feed's is its URL).
ID_FEEDS = ("atom", "issues")


def section_feed_key(name: str) -> str:
    """The key of a section's Atom feed id among the stored feed ids: `section:要闻`.

    By the section's name, not its slug, so a slug configured later moves the
    feed's address but keeps its id.
    """
    return f"section:{name}"


def mint_ids(
    articles: Sequence[Article], issues: Sequence[Issue], config: Config, known: FeedIds,
    sections: Mapping[str, str] | None = None,
) -> FeedIds:
    """Ids for whatever `known` lacks, minted from the current base URL; `known` ones kept.

    `sections`: section name → slug; each section's Atom feed gets an id too
    (its URL now), under `section_feed_key(name)`.
    """
    feeds = {k: known.feeds.get(k) or urls.feed_url(config, k) for k in ID_FEEDS}
    for name, slug in (sections or {}).items():
        key = section_feed_key(name)
        feeds[key] = known.feeds.get(key) or urls.public_url(
            config, urls.section_feed_path(slug, "atom"))
    return FeedIds(
        articles={
            a.id: known.articles.get(a.id) or urls.article_tag(config, a.id, a.date)
            for a in articles
        },
        issues={
            i.number: known.issues.get(i.number) or urls.issue_tag(config, i.number, i.date)
            for i in issues
        },
        feeds=feeds,
    )


@dataclass(frozen=True)
class Channel:
    """What one set of RSS, Atom and JSON feeds says about itself: the paper's, or a section's.

    `title`/`subtitle` the feed's; `home` the page it stands for; `links`
    each feed's own public URL by kind ("rss", "atom", "json"); `atom_id`
    the Atom feed's stored id.
    """

    title: str
    subtitle: str
    home: str
    links: Mapping[str, str]
    atom_id: str


def paper_channel(config: Config, atom_id: str | None = None) -> Channel:
    """The paper's own feeds: feed.xml, atom.xml, feed.json at the top of the site."""
    return Channel(
        title=config.paper.name,
        subtitle=config.paper.description,
        home=urls.site(config),
        links={k: urls.feed_url(config, k) for k in urls.SECTION_FEEDS},
        atom_id=atom_id or urls.feed_url(config, "atom"),
    )


def section_channel(config: Config, name: str, slug: str, atom_id: str | None = None) -> Channel:
    """One section's feeds under sections/<slug>/, its archive page as their home."""
    links = {k: urls.public_url(config, urls.section_feed_path(slug, k))
             for k in urls.SECTION_FEEDS}
    return Channel(
        title=section_title(config.paper.name, name),
        subtitle=config.paper.description,
        home=urls.public_url(config, urls.section_path(slug)),
        links=links,
        atom_id=atom_id or links["atom"],
    )


def whole_seconds(when: datetime) -> datetime:
    """`when` without its fraction of a second (see the module docstring)."""
    return when.replace(microsecond=0)


@dataclass(frozen=True)
class Entry:
    """One article as every feed shows it, built once for all three formats."""

    article: Article
    id: str
    url: str
    published: datetime
    updated: datetime
    html: str
    summary: str
    authors: tuple[str, ...]
    contributors: tuple[str, ...]


def published_at(article: Article, tz: tzinfo) -> datetime:
    """When the paper first had the article (midnight of its date if never stored)."""
    when = article.first_seen or datetime.combine(article.date, time(), tz)
    return whole_seconds(when.astimezone(tz))


def updated_at(article: Article, tz: tzinfo) -> datetime:
    return whole_seconds((article.updated or published_at(article, tz)).astimezone(tz))


def newest_first(articles: Sequence[Article], tz: tzinfo) -> list[Article]:
    """Latest first seen first; articles that arrived together keep page order."""
    ordered = sorted(articles, key=publication_order)
    return sorted(ordered, key=lambda a: published_at(a, tz), reverse=True)


def people(byline: Byline) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(authors, contributors): reporters write the piece and photographers take
    its pictures, so both are authors; correspondents and interns contribute.

    With no reporter credited, everyone credited is an author. How each
    photo credit reads (通讯员 吴海峰 摄) is in the captions of the content.
    """
    names = byline.names()
    if not byline.reporters:
        return names, ()
    authors = tuple(dict.fromkeys(byline.reporters + byline.photographers))
    return authors, tuple(n for n in names if n not in authors)


@dataclass(frozen=True)
class Tombstone:
    """An RFC 6721 `at:deleted-entry`: the entry `ref` (its atom:id) was withdrawn `when`."""

    ref: str
    when: datetime
    comment: str


def entries(
    articles: Sequence[Article],
    config: Config,
    ids: FeedIds | None = None,
    decisions: Decisions | None = None,
) -> list[Entry]:
    """The newest `feed.max_items` articles not withdrawn, as feed entries, newest first.

    A corrected article's content ends with its correction notes, and its
    `updated` is the latest of its change and its notes.
    """
    tz = config.tz
    known = ids.articles if ids is not None else {}
    decisions = decisions or Decisions()
    live = [a for a in articles if not decisions.is_withdrawn(a.id)]
    chosen = newest_first(live, tz)[: config.feed.max_items]
    out = []
    for raw in chosen:
        a = clean_article(raw)
        authors, contributors = people(a.byline)
        notes = decisions.corrections.get(a.id, ())
        html = article_html(a, heading=None)
        if notes:
            html = html + Markup("\n") + corrections_html(notes, tz)
        changed = last_changed(raw, notes)
        out.append(
            Entry(
                article=a,
                id=known.get(a.id) or urls.article_tag(config, a.id, a.date),
                url=urls.article_url(config, a.id),
                published=published_at(a, tz),
                updated=whole_seconds(changed.astimezone(tz)) if changed else updated_at(a, tz),
                html=str(html),
                summary=summary(a),
                authors=authors,
                contributors=contributors,
            )
        )
    return out


def tombstones(
    articles: Sequence[Article],
    config: Config,
    ids: FeedIds | None = None,
    decisions: Decisions | None = None,
) -> list[Tombstone]:
    """A tombstone for each withdrawn article that would still be in the feed had it not
    been withdrawn: among the newest `feed.max_items` of all published articles. So a
    reader that holds the entry learns it is gone, for as long as it could hold it."""
    if decisions is None or not decisions.withdrawn:
        return []
    tz = config.tz
    known = ids.articles if ids is not None else {}
    window = newest_first(articles, tz)[: config.feed.max_items]
    out = []
    for a in window:
        withdrawal = decisions.withdrawn.get(a.id)
        if withdrawal is None:
            continue
        out.append(Tombstone(
            ref=known.get(a.id) or urls.article_tag(config, a.id, a.date),
            when=whole_seconds(withdrawal.when.astimezone(tz)),
            comment=retraction_text(a, withdrawal, tz),
        ))
    return out


def render_feeds(
    articles: Sequence[Article],
    issues: Sequence[Issue],
    config: Config,
    ids: FeedIds | None = None,
    decisions: Decisions | None = None,
    sections: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """Every feed file, by its path under the public folder.

    `ids`: the stored ids (see `FeedIds`); None mints them all from the
    current base URL, which only a first render may do. `decisions`: the
    editor's withdrawals and corrections (editorial.py): a withdrawn article
    leaves every feed, Atom keeps a tombstone for it, a correction's note
    ends its entry. `sections`: section name → slug, in the sections' order;
    each gets sections/<slug>/feed.xml, atom.xml and feed.json of its own
    articles (`feed_files`, as the paper's), and feeds.opml lists them all.
    """
    sections = sections or {}
    ids = mint_ids(articles, issues, config, ids or FeedIds(), sections)
    paper = feed_files(articles, config, paper_channel(config, ids.feeds["atom"]), ids, decisions)
    withdrawn = decisions.withdrawn if decisions is not None else {}
    by_id = {a.id: a for a in articles if a.id not in withdrawn}
    files = {urls.FEED_FILES[k]: data for k, data in paper.items()}
    files[urls.FEED_FILES["issues"]] = issues_feed(issues, by_id, config, ids)
    for name, slug in sections.items():
        channel = section_channel(config, name, slug, ids.feeds[section_feed_key(name)])
        own = [a for a in articles if a.section == name]
        for kind, data in feed_files(own, config, channel, ids, decisions).items():
            files[urls.section_feed_path(slug, kind)] = data
    files[urls.OPML_PATH] = opml(config, sections)
    return files


def feed_files(
    articles: Sequence[Article],
    config: Config,
    channel: Channel,
    ids: FeedIds | None = None,
    decisions: Decisions | None = None,
) -> dict[str, bytes]:
    """RSS 2.0, Atom and JSON Feed of these articles, by kind ("rss", "atom", "json").

    The one place a feed of articles is made, for the paper's feeds and each
    section's: the newest `feed.max_items` not withdrawn, with their stored
    ids, and in Atom a tombstone for each withdrawn one that would still be
    among them (`tombstones`).
    """
    items = entries(articles, config, ids, decisions)
    gone = tombstones(articles, config, ids, decisions)
    rss, atom = rss_and_atom(items, config, channel.atom_id, gone, channel)
    return {"rss": rss, "atom": atom, "json": json_feed(items, config, channel)}


#: OPML 2.0 (http://opml.org/spec2.opml): the folders it groups the feeds in, by format.
OPML_FOLDERS = (("atom", "Atom"), ("rss", "RSS 2.0"), ("json", "JSON Feed"))


def opml(config: Config, sections: Mapping[str, str]) -> bytes:
    """feeds.opml: every feed of the site as an OPML 2.0 subscription list.

    One folder per format (Atom, RSS 2.0, JSON Feed), so a reader that
    imports one folder subscribes to each channel once; in each the paper's
    feed, then (Atom) the issues feed, then every section's in the sections'
    order. Titles in the paper's language (`职工时报 · 要闻`). Every outline is
    `type="rss"`, the OPML 2.0 spec's one type for a feed whatever its format,
    with `xmlUrl` (the feed) and `htmlUrl` (its page). No date in it: the
    same sections give the same bytes.
    """
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = xml_safe(f"{config.paper.name} · 订阅源")
    etree.SubElement(head, "ownerName").text = xml_safe(config.paper.name)
    body = etree.SubElement(root, "body")
    channels = [(paper_channel(config), "")] + [
        (section_channel(config, name, slug), name) for name, slug in sections.items()
    ]
    for kind, label in OPML_FOLDERS:
        folder = etree.SubElement(body, "outline", text=label, title=label)
        for n, (channel, _name) in enumerate(channels):
            _outline(folder, channel.title, channel.links[kind], channel.home)
            if n == 0 and kind == "atom":
                _outline(folder, f"{config.paper.name} · 每期目录", urls.feed_url(config, "issues"),
                         urls.site(config) + urls.INDEX_PATH)
    return bytes(etree.tostring(root, pretty_print=True, encoding="UTF-8", xml_declaration=True))


def _outline(parent: etree._Element, title: str, xml_url: str, html_url: str) -> None:
    title = xml_safe(title)
    etree.SubElement(parent, "outline", type="rss", text=title, title=title,
                     xmlUrl=xml_url, htmlUrl=html_url)


def _newest(times: Sequence[datetime], tz: tzinfo) -> datetime:
    return max(times, default=EMPTY_FEED_TIME).astimezone(tz)


def _generator(config: Config, feed_id: str, title: str, subtitle: str) -> FeedGenerator:
    """A FeedGenerator with the channel-level fields every feed of ours shares."""
    fg = FeedGenerator()
    fg.id(feed_id)
    fg.title(xml_safe(title))
    fg.subtitle(xml_safe(subtitle) or xml_safe(title))
    fg.language(config.paper.language)
    fg.author({"name": xml_safe(config.paper.name), "uri": urls.site(config)})
    fg.generator(GENERATOR)
    return fg


def _links(fg: FeedGenerator, kind: str, self_url: str, home: str) -> None:
    fg.link(
        [  # feedgen takes the last link as RSS <channel><link>: the home page
            {"href": self_url, "rel": "self", "type": urls.FEED_TYPES[kind]},
            {"href": home, "rel": "alternate", "type": "text/html"},
        ],
        replace=True,
    )


def rss_and_atom(
    items: Sequence[Entry],
    config: Config,
    feed_id: str | None = None,
    gone: Sequence[Tombstone] = (),
    channel: Channel | None = None,
) -> tuple[bytes, bytes]:
    """RSS 2.0 and Atom 1.0 from one generator: same entries, same order.

    `feed_id`: the Atom feed's stored id (default: its URL now). `gone`:
    RFC 6721 tombstones for the Atom feed (RSS has no such thing; the entry
    simply leaves it). A withdrawal changes the feed, so its time counts
    towards the feed's `updated` and `lastBuildDate`. `channel`: whose feeds
    these are (default: the paper's own).
    """
    channel = channel or paper_channel(config, feed_id)
    fg = _generator(config, feed_id or channel.atom_id, channel.title, channel.subtitle)
    fg.load_extension("dc", atom=False, rss=True)
    newest = _newest([e.updated for e in items] + [t.when for t in gone], config.tz)
    fg.updated(newest)
    fg.lastBuildDate(newest)
    for e in items:
        a = e.article
        fe = fg.add_entry(order="append")
        fe.id(e.id)  # also the RSS guid, isPermaLink="false"
        fe.title(a.title)
        fe.link(href=e.url, rel="alternate", type="text/html")
        fe.published(e.published)
        fe.updated(e.updated)
        # The summary goes out as escaped HTML: RSS <description> is HTML by
        # definition, and Atom's type="html" says so, so "<" in the text stays text.
        fe.summary(str(escape(e.summary)), type="html")  # also RSS <description>
        fe.content(e.html, type="html")  # also RSS <content:encoded>, after it
        if e.authors:
            fe.author([{"name": n} for n in e.authors])
        if e.contributors:
            fe.contributor([{"name": n} for n in e.contributors])
        if a.section:
            fe.category(term=a.section)
        names = e.authors + e.contributors
        if names:
            fe.dc.dc_creator(list(names))
    _links(fg, "atom", channel.links["atom"], channel.home)
    atom = with_tombstones(fg.atom_str(pretty=True), gone)
    _links(fg, "rss", channel.links["rss"], channel.home)
    rss = _hex_references(fg.rss_str(pretty=True))
    return rss, atom


#: RFC 6721, "The Atom 'deleted-entry' Element".
TOMBSTONES_NS = "http://purl.org/atompub/tombstones/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"


def with_tombstones(atom: bytes, gone: Sequence[Tombstone]) -> bytes:
    """The Atom document with an `at:deleted-entry` per tombstone (RFC 6721 §2).

    feedgen has no tombstone extension (its extensions add to entries, not
    to the feed), so the elements are added to its output with lxml, which
    escapes the comment's text. They go before the first entry: RFC 4287's
    RELAX NG schema (§B) admits foreign elements at feed level in the
    metadata, ahead of atom:entry, and RFC 6721 lets them stand anywhere
    among the feed's children, so that place satisfies both. `ref` is the
    withdrawn entry's atom:id, `when` an RFC 3339 time, the reason an
    `at:comment` in the paper's language. No tombstone: the bytes unchanged.
    """
    if not gone:
        return atom
    root = etree.fromstring(atom, etree.XMLParser(remove_blank_text=True, resolve_entities=False))
    first = root.find(f"{{{ATOM_NS}}}entry")
    at = f"{{{TOMBSTONES_NS}}}"
    for stone in gone:
        element = etree.Element(f"{at}deleted-entry", nsmap={"at": TOMBSTONES_NS})
        element.set("ref", stone.ref)
        element.set("when", stone.when.isoformat())
        comment = etree.SubElement(element, f"{at}comment")
        comment.text = xml_safe(stone.comment)
        if first is not None:
            first.addprevious(element)
        else:
            root.append(element)
    etree.cleanup_namespaces(root, top_nsmap={"at": TOMBSTONES_NS})
    return bytes(etree.tostring(root, pretty_print=True, encoding="UTF-8", xml_declaration=True))


# RSS plain-text elements, whose text never holds a raw "<" once serialised.
_RSS_PLAIN = re.compile(rb"<(title|category|dc:creator)>([^<]*)</\1>")
_HEX = {b"&amp;": b"&#x26;", b"&lt;": b"&#x3C;", b"&gt;": b"&#x3E;"}
_ENTITY = re.compile(rb"&(?:amp|lt|gt);")


def _hex_references(rss: bytes) -> bytes:
    """Write & < > in RSS plain-text elements as &#x26; &#x3C; &#x3E;.

    The same characters to any XML parser; the RSS Best Practices Profile
    (which the W3C validator checks) asks for this form, because readers
    disagree on whether &lt; in a title is text or markup.
    """
    def swap(m: re.Match[bytes]) -> bytes:
        text = _ENTITY.sub(lambda e: _HEX[e[0]], m[2])
        return b"<%s>%s</%s>" % (m[1], text, m[1])

    return _RSS_PLAIN.sub(swap, rss)


def json_feed(items: Sequence[Entry], config: Config, channel: Channel | None = None) -> bytes:
    """JSON Feed 1.1 with the same entries as RSS and Atom (`channel`: as for `rss_and_atom`)."""
    paper = config.paper
    channel = channel or paper_channel(config)
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": xml_safe(channel.title),
        "home_page_url": channel.home,
        "feed_url": channel.links["json"],
    }
    if channel.subtitle:
        feed["description"] = xml_safe(channel.subtitle)
    feed["language"] = paper.language
    feed["authors"] = [{"name": xml_safe(paper.name), "url": urls.site(config)}]
    feed["items"] = [_json_item(e) for e in items]
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _json_item(e: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": e.id,
        "url": e.url,
        "title": e.article.title,
        "content_html": e.html,
        "summary": e.summary,
        "date_published": e.published.isoformat(),
        "date_modified": e.updated.isoformat(),
    }
    names = e.authors + e.contributors
    if names:
        item["authors"] = [{"name": n} for n in names]
    if e.article.section:
        item["tags"] = [e.article.section]
    return item


def issues_feed(
    issues: Sequence[Issue],
    articles: Mapping[str, Article],
    config: Config,
    ids: FeedIds | None = None,
) -> bytes:
    """issues.xml: one Atom entry per issue, its table of contents as content."""
    tz = config.tz
    paper = config.paper
    ids = mint_ids((), issues, config, ids or FeedIds())
    fg = _generator(config, ids.feeds["issues"], f"{paper.name} · 每期目录", paper.description)
    chosen = sorted(issues, key=lambda i: i.number, reverse=True)[: config.feed.max_items]
    stamps = []
    for issue in chosen:
        held = [clean_article(articles[i]) for i in issue.article_ids if i in articles]
        created = whole_seconds(issue.created.astimezone(tz))
        updated = max([created, *(updated_at(a, tz) for a in held)])
        stamps.append(updated)
        fe = fg.add_entry(order="append")
        fe.id(ids.issues[issue.number])
        fe.title(xml_safe(issue.title))
        fe.link(href=urls.issue_url(config, issue.number), rel="alternate", type="text/html")
        fe.published(created)
        fe.updated(updated)
        toc = toc_html(held, lambda a: urls.article_url(config, a.id))
        fe.content(str(toc), type="html")
    fg.updated(_newest(stamps, tz))
    _links(fg, "issues", urls.feed_url(config, "issues"), urls.site(config) + urls.INDEX_PATH)
    return fg.atom_str(pretty=True)
