"""Feeds: RSS, Atom, JSON Feed and issues.xml, checked with the tools readers use."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gongbao_feed.feeds import render_feeds
from gongbao_feed.fragments import UNTITLED, xml_safe
from gongbao_feed.models import Byline
from gongbao_feed.publish import Newsroom

from .conftest import FixedClock
from .helpers_feeds import (
    NS,
    RFC822,
    assert_atom_valid,
    assert_json_feed_valid,
    assert_rss_valid,
    jing,
    parsed_feed,
)
from .helpers_issues import (
    BASE,
    SCHEMAS,
    START,
    body_texts,
    copy_page,
    html_text,
    issue_of,
    make_config,
    make_room,
    record,
)

HOSTILE = "2026-03-02-01.txt"


@pytest.fixture
def published(tmp_path: Path) -> Newsroom:
    """Our own pages (with <script>, & and quotes) ingested, assembled and rendered."""
    clock = FixedClock(START)
    room = make_room(tmp_path, clock)
    copy_page(room, HOSTILE)
    assert room.ingest().ok
    clock.advance(days=1)
    copy_page(room, "2026-03-03-01.txt")
    assert room.ingest().ok
    assert room.assemble().issue is not None
    yield room
    room.close()


def read(room: Newsroom, name: str) -> bytes:
    return (room.config.public_dir / name).read_bytes()


def parsed(room: Newsroom, name: str) -> feedparser.FeedParserDict:
    return parsed_feed(read(room, name))


# -- readers can read them ------------------------------------------------------


@pytest.mark.parametrize("name", ["feed.xml", "atom.xml", "issues.xml"])
def test_feeds_parse_without_bozo(published: Newsroom, name: str) -> None:
    feed = parsed(published, name)
    assert feed.entries
    assert feed.feed.get("language", "zh-CN") == "zh-CN"


def test_article_text_comes_through_intact_and_escaped(published: Newsroom) -> None:
    article = next(a for a in published.store.all_articles() if "小发明" in a.title)
    for name in ("feed.xml", "atom.xml"):
        entry = next(e for e in parsed(published, name).entries if "小发明" in e.title)
        assert entry.title == article.title
        html = entry.content[0].value
        assert "<script" not in html  # the text never became markup...
        paragraphs = body_texts(html)
        assert paragraphs[0] == f"{article.dateline}　{article.paragraphs[0]}"
        assert paragraphs[1:] == list(article.paragraphs[1:])  # ...and reads exactly as printed
        assert '<script>alert("x")</script>' in paragraphs[0]
        assert "A&B" in paragraphs[1] and "“R&amp;D”" in paragraphs[1]
        assert html_text(entry.summary) == article.paragraphs[0]  # summary: HTML, escaped
    raw = read(published, "feed.xml") + read(published, "atom.xml")
    assert b"<script" not in raw


def test_json_feed_carries_the_same_text(published: Newsroom) -> None:
    feed = json.loads(read(published, "feed.json"))
    item = next(i for i in feed["items"] if "小发明" in i["title"])
    assert "&lt;script&gt;" in item["content_html"] and "<script" not in item["content_html"]
    assert body_texts(item["content_html"])[2] == "“只要肯琢磨，处处都是课题。”老技师陈国强说。"


def test_stray_control_characters_never_reach_the_xml(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    dirty = record(
        "标题\x01里有\x0b控制符\ufffe",
        ("第一段\x00正文\x1f，含<b>与&amp;。", "第二段\ud800完。"),
        kicker="引\x7f题", subtitle="副题\uffff", captions=("图为\x08现场。",),
        byline=Byline(reporters=("张\x0c三",), photographers=("李四",)),
    )
    files = render_feeds([dirty], [issue_of([dirty])], config)
    for name, data in files.items():
        if name.endswith(".xml"):
            etree.fromstring(data)  # strict XML parser: raises on any forbidden character
            feed = feedparser.parse(data)
            assert not feed.bozo, (name, feed.get("bozo_exception"))
    entry = feedparser.parse(files["atom.xml"]).entries[0]
    assert entry.title == "标题里有控制符"
    assert body_texts(entry.content[0].value) == ["第一段正文，含<b>与&amp;。", "第二段完。"]
    assert [a.name for a in entry.authors] == ["张三", "李四"]
    item = json.loads(files["feed.json"])["items"][0]
    assert item["title"] == "标题里有控制符"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.text(min_size=1, max_size=30),
    paragraphs=st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=3),
    name=st.text(min_size=1, max_size=6),
)
def test_any_text_makes_feeds_readers_accept(title: str, paragraphs: list[str], name: str) -> None:
    """Pages we have never seen: whatever the text, the feeds parse and keep it."""
    config = make_config(Path("."))
    art = record(title, tuple(paragraphs), byline=Byline(reporters=(name,)))
    files = render_feeds([art], [issue_of([art])], config)
    for kind in ("feed.xml", "atom.xml", "issues.xml"):
        feed = feedparser.parse(files[kind])
        assert not feed.bozo, (kind, feed.get("bozo_exception"))
    shown = xml_safe(title).strip() or UNTITLED
    atom = etree.fromstring(files["atom.xml"])
    assert atom.findtext("atom:entry/atom:title", namespaces=NS) == shown
    assert json.loads(files["feed.json"])["items"][0]["title"] == shown
    content = feedparser.parse(files["atom.xml"]).entries[0].content[0].value
    assert body_texts(content) == [xml_safe(p) for p in paragraphs]


# -- schemas ----------------------------------------------------------------------


def test_atom_validates_against_rfc4287_schema(published: Newsroom) -> None:
    public = published.config.public_dir
    assert_atom_valid(public / "atom.xml", public / "issues.xml")


def test_json_feed_validates_against_schema(published: Newsroom) -> None:
    assert_json_feed_valid(read(published, "feed.json"))


# -- what the W3C validator checks ------------------------------------------------


def test_rss_follows_the_validator_rules(published: Newsroom) -> None:
    assert_rss_valid(read(published, "feed.xml"), BASE + "feed.xml", BASE)


def test_plain_text_uses_hex_references_in_rss(tmp_path: Path) -> None:
    """The RSS Profile's rule for & and < in titles and names (same text to any parser)."""
    art = record("甲&乙<丙>", ("正文。",), byline=Byline(reporters=("A&B",)))
    rss = render_feeds([art], [issue_of([art])], make_config(tmp_path))["feed.xml"]
    assert b"<title>\xe7\x94\xb2&#x26;\xe4\xb9\x99&#x3C;\xe4\xb8\x99&#x3E;</title>" in rss
    assert b"<dc:creator>A&#x26;B</dc:creator>" in rss
    assert feedparser.parse(rss).entries[0].title == "甲&乙<丙>"


def test_atom_entries_carry_people_times_category(tmp_path: Path) -> None:
    when = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    art = record(
        "职工书屋开放", ("书屋藏书三千册。",), seen=when, updated=when + timedelta(hours=5),
        section="要闻",
        byline=Byline(reporters=("周文涛",), correspondents=("孙丽",), photographers=("何清",)),
    )
    files = render_feeds([art], [issue_of([art])], make_config(tmp_path))
    entry = etree.fromstring(files["atom.xml"]).find("atom:entry", NS)
    assert entry.findtext("atom:published", namespaces=NS) == "2026-03-02T09:00:00+08:00"
    assert entry.findtext("atom:updated", namespaces=NS) == "2026-03-02T14:00:00+08:00"
    # The photographer is an author (of the pictures); the correspondent contributes.
    assert [a.findtext("atom:name", namespaces=NS) for a in entry.findall("atom:author", NS)] \
        == ["周文涛", "何清"]
    assert [c.findtext("atom:name", namespaces=NS)
            for c in entry.findall("atom:contributor", NS)] == ["孙丽"]
    assert entry.find("atom:content", NS).get("type") == "html"
    assert entry.findtext("atom:summary", namespaces=NS) == "书屋藏书三千册。"
    assert entry.find("atom:summary", NS).get("type") == "html"
    assert entry.find("atom:category", NS).get("term") == "要闻"
    item = etree.fromstring(files["feed.xml"]).find("channel/item")
    assert item.findtext("category") == "要闻"
    assert [c.text for c in item.findall("dc:creator", NS)] == ["周文涛", "何清", "孙丽"]
    assert json.loads(files["feed.json"])["items"][0]["tags"] == ["要闻"]


# -- entries, order, identity ---------------------------------------------------------


def _ids(room: Newsroom) -> dict[str, list[str]]:
    return {
        "rss": [e.id for e in parsed(room, "feed.xml").entries],
        "atom": [e.id for e in parsed(room, "atom.xml").entries],
        "json": [i["id"] for i in json.loads(read(room, "feed.json"))["items"]],
    }


def test_rss_atom_and_json_list_the_same_entries_in_the_same_order(published: Newsroom) -> None:
    ids = _ids(published)
    assert ids["rss"] == ids["atom"] == ids["json"]
    assert len(ids["rss"]) == 3
    # newest first: the page ingested a day later leads; a page keeps its own order
    titles = [e.title for e in parsed(published, "atom.xml").entries]
    assert titles == ["职工夜校开出新课程", "车间里的“小发明”大能量", "社区工会驿站开门迎客"]


def test_every_article_is_in_one_issue_and_in_the_feeds(published: Newsroom) -> None:
    articles = published.store.all_articles()
    held = [aid for issue in published.store.issues() for aid in issue.article_ids]
    assert sorted(held) == sorted(a.id for a in articles)
    assert len(set(held)) == len(held)
    assert len(_ids(published)["atom"]) == len(articles)


def test_max_items_keeps_the_newest(tmp_path: Path) -> None:
    arts = [
        record(f"第{n}篇", ("正文。",), position=n, seen=START + timedelta(hours=n))
        for n in range(5)
    ]
    files = render_feeds(arts, [issue_of(arts)], make_config(tmp_path, feed={"max_items": 2}))
    assert [e.title for e in feedparser.parse(files["atom.xml"]).entries] == ["第4篇", "第3篇"]
    assert [e.title for e in feedparser.parse(files["feed.xml"]).entries] == ["第4篇", "第3篇"]
    assert len(json.loads(files["feed.json"])["items"]) == 2


def test_same_input_same_bytes_whatever_the_clock(tmp_path: Path) -> None:
    arts = [record("职工书屋开放", ("书屋藏书三千册。",))]
    config = make_config(tmp_path)
    first = render_feeds(arts, [issue_of(arts)], config)
    second = render_feeds(arts, [issue_of(arts)], config)
    assert first == second
    updated = etree.fromstring(first["atom.xml"]).findtext("atom:updated", namespaces=NS)
    assert updated == "2026-03-02T08:30:00+08:00"  # the newest change, not now


def test_correction_keeps_the_id_and_moves_updated(tmp_path: Path) -> None:
    clock = FixedClock(START)
    with make_room(tmp_path, clock) as room:
        page = copy_page(room, HOSTILE)
        room.ingest()
        room.assemble()
        before = {e.id: e for e in parsed(room, "atom.xml").entries}
        manifest = (room.config.issues_dir / "0001.json").read_bytes()
        held = room.store.issue(1).article_ids

        clock.advance(hours=3)
        page.write_text(
            page.read_text("utf-8").replace("四百余条", "五百余条"), "utf-8"
        )
        assert room.ingest().updated == 1
        report = room.assemble()
        assert report.issue is None  # a correction is not a new article
        after = {e.id: e for e in parsed(room, "atom.xml").entries}

        assert set(after) == set(before)
        fixed = next(i for i in after if "五百余条" in after[i].content[0].value)
        assert after[fixed].published == before[fixed].published
        assert after[fixed].updated == "2026-03-02T11:30:00+08:00"
        assert before[fixed].updated == "2026-03-02T08:30:00+08:00"
        other = next(i for i in after if i != fixed)
        assert after[other].updated == before[other].updated
        rss = parsed(room, "feed.xml")
        assert rss.feed.updated == "Mon, 02 Mar 2026 11:30:00 +0800"  # lastBuildDate moved
        assert (room.config.issues_dir / "0001.json").read_bytes() == manifest
        assert room.store.issue(1).article_ids == held  # the issue still points at it


def test_issues_feed_lists_each_issue_with_its_contents(published: Newsroom) -> None:
    feed = parsed(published, "issues.xml")
    assert [e.title for e in feed.entries] == ["职工时报 第1期 · 2026年3月3日"]
    entry = feed.entries[0]
    assert entry.link == BASE + "issues/0001.html"
    toc = entry.content[0].value
    for article in published.store.all_articles():
        assert f'{BASE}articles/{article.id}.html' in toc
    assert feed.feed.links[0].href == BASE + "issues.xml"



# -- ids that outlive a move, times in whole seconds -----------------------------

MOVED = "https://archive.example.com/gongbao/zhigong/"


def _everything(room: Newsroom) -> dict[str, object]:
    """Every id and link of every feed, and every time they carry."""
    atom = parsed(room, "atom.xml")
    rss = parsed(room, "feed.xml")
    issues = parsed(room, "issues.xml")
    data = json.loads(read(room, "feed.json"))
    return {
        "ids": {**_ids(room), "issues": [e.id for e in issues.entries]},
        "feed_ids": {"atom": atom.feed.id, "issues": issues.feed.id},
        "links": {
            "atom": [e.link for e in atom.entries], "rss": [e.link for e in rss.entries],
            "json": [i["url"] for i in data["items"]], "issues": [e.link for e in issues.entries],
            "home": [rss.feed.link, atom.feed.link, data["home_page_url"]],
        },
    }


def test_moving_the_site_changes_links_never_ids(tmp_path: Path) -> None:
    clock = FixedClock(START.replace(microsecond=795602))
    with make_room(tmp_path, clock) as room:
        copy_page(room, HOSTILE)
        room.ingest()
        room.assemble()
        before = _everything(room)
    assert before["feed_ids"] == {
        "atom": "https://paper.example.net/atom.xml",
        "issues": "https://paper.example.net/issues.xml",
    }
    assert before["ids"]["issues"] == ["tag:paper.example.net,2026-03-02:/issues/0001"]
    tag = re.compile(r"tag:paper\.example\.net,2026-03-02:/articles/2026-03-02-[0-9a-f]{8}")
    assert all(tag.fullmatch(i) for i in before["ids"]["atom"])

    clock.advance(days=1)
    with make_room(tmp_path, clock, paper={"base_url": MOVED}) as moved:
        copy_page(moved, "2026-03-03-01.txt")  # and something new after the move
        moved.ingest()
        moved.assemble()
        after = _everything(moved)
        public = moved.config.public_dir  # the RFC 4287 schema still holds after the move
        result = subprocess.run(
            [jing(), "-c", str(SCHEMAS / "atom.rnc"), str(public / "atom.xml"),
             str(public / "issues.xml")], capture_output=True, text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    assert after["feed_ids"] == before["feed_ids"]
    for kind, ids in before["ids"].items():
        assert [i for i in after["ids"][kind] if i in ids] == ids, kind  # every old id kept
    new = [i for i in after["ids"]["atom"] if i not in before["ids"]["atom"]]
    assert new and all(i.startswith("tag:archive.example.com,2026-03-03:/gongbao/zhigong/articles/")
                       for i in new)  # minted at its own first publication, under the new site
    assert after["ids"]["issues"][0] == (
        "tag:archive.example.com,2026-03-03:/gongbao/zhigong/issues/0002"
    )
    for kind, links in after["links"].items():
        assert links and all(link.startswith(MOVED) for link in links), (kind, links)


def test_every_feed_time_is_in_whole_seconds(tmp_path: Path) -> None:
    clock = FixedClock(START.replace(microsecond=795602))
    with make_room(tmp_path, clock) as room:
        copy_page(room, HOSTILE)
        room.ingest()
        room.assemble()
        texts = {name: read(room, name).decode() for name in
                 ("atom.xml", "feed.xml", "feed.json", "issues.xml")}
    iso = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}")
    for name, text in texts.items():
        stamps = [m.group(0) for m in iso.finditer(text)]
        if name == "feed.xml":
            stamps = re.findall(r"<(?:pubDate|lastBuildDate)>([^<]+)<", text)
            assert stamps and all(RFC822.match(s) for s in stamps), stamps
            continue
        assert stamps, name
        assert all(s.endswith("08:30:00+08:00") and "." not in s for s in stamps), (name, stamps)
