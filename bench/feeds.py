"""RSS, Atom and JSON Feed for N articles, against writing the same XML with lxml directly.

    python bench/feeds.py [--articles 1000] [--repeat 5]

Times, best of --repeat runs, on N generated articles (feed.max_items = N):
  ours:   gongbao_feed.feeds: entries (HTML fragments, summaries) + feedgen RSS
          and Atom + JSON Feed;
  floor:  the same entries and JSON Feed, with RSS and Atom built element by
          element with lxml.etree (no feedgen);
and the XML part alone (feedgen against lxml, entries already built).
Target: ours at most 2x the floor.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from lxml import etree

from gongbao_feed import urls
from gongbao_feed.config import Config, config_from_dict
from gongbao_feed.feeds import Entry, entries, json_feed, rss_and_atom
from gongbao_feed.models import Article, Byline

HAN = "工会职工劳动技能竞赛服务中心区市企业岗位安全生产培训组织活动开展推动建设发展关爱帮扶"
NAMES = ["张明", "李红梅", "王强", "赵小川", "陈思远", "刘芳", "周建国", "吴雪"]
ATOM = "http://www.w3.org/2005/Atom"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
DC = "http://purl.org/dc/elements/1.1/"


def words(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(HAN) for _ in range(rng.randint(lo, hi)))


def make_articles(n: int) -> list[Article]:
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        day = date(2026, 1, 1) + timedelta(days=i // 8)
        seen = start + timedelta(hours=i)
        out.append(Article(
            id=f"{day.isoformat()}-{i:08x}",
            date=day,
            title=words(rng, 8, 20),
            kicker=words(rng, 6, 12) if i % 3 == 0 else None,
            subtitle=words(rng, 8, 16) if i % 4 == 0 else None,
            dateline="本报讯",
            byline=Byline(reporters=tuple(rng.sample(NAMES, 2)),
                          correspondents=(rng.choice(NAMES),)),
            captions=(f"图为{words(rng, 10, 20)}。",) if i % 5 == 0 else (),
            paragraphs=tuple(words(rng, 60, 160) + "。" for _ in range(rng.randint(4, 8))),
            section="要闻" if i % 2 else None,
            source=f"{day.isoformat()}-01.txt",
            position=i % 8,
            first_seen=seen,
            updated=seen,
            issue=1 + i // 8,
        ))
    return out


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def lxml_rss(items: Sequence[Entry], config: Config) -> bytes:
    rss = etree.Element("rss", version="2.0", nsmap={"atom": ATOM, "content": CONTENT, "dc": DC})
    ch = _sub(rss, "channel")
    _sub(ch, "title", config.paper.name)
    _sub(ch, "link", urls.site(config))
    _sub(ch, "description", config.paper.description or config.paper.name)
    _sub(ch, f"{{{ATOM}}}link", href=urls.feed_url(config, "rss"), rel="self",
         type="application/rss+xml")
    _sub(ch, "language", config.paper.language)
    _sub(ch, "lastBuildDate", format_datetime(max(e.updated for e in items)))
    for e in items:
        it = _sub(ch, "item")
        _sub(it, "title", e.article.title)
        _sub(it, "link", e.url)
        _sub(it, "description", e.summary)
        _sub(it, f"{{{CONTENT}}}encoded", e.html)
        _sub(it, "guid", e.id, isPermaLink="false")
        if e.article.section:
            _sub(it, "category", e.article.section)
        _sub(it, "pubDate", format_datetime(e.published))
        for name in e.authors + e.contributors:
            _sub(it, f"{{{DC}}}creator", name)
    return etree.tostring(rss, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def lxml_atom(items: Sequence[Entry], config: Config) -> bytes:
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    _sub(feed, "id", urls.feed_url(config, "atom"))
    _sub(feed, "title", config.paper.name)
    _sub(feed, "updated", max(e.updated for e in items).isoformat())
    _sub(_sub(feed, "author"), "name", config.paper.name)
    _sub(feed, "link", href=urls.feed_url(config, "atom"), rel="self")
    _sub(feed, "link", href=urls.site(config), rel="alternate")
    for e in items:
        en = _sub(feed, "entry")
        _sub(en, "id", e.id)
        _sub(en, "title", e.article.title)
        _sub(en, "updated", e.updated.isoformat())
        for name in e.authors:
            _sub(_sub(en, "author"), "name", name)
        _sub(en, "content", e.html, type="html")
        _sub(en, "link", href=e.url)
        _sub(en, "summary", e.summary, type="html")
        if e.article.section:
            _sub(en, "category", term=e.article.section)
        for name in e.contributors:
            _sub(_sub(en, "contributor"), "name", name)
        _sub(en, "published", e.published.isoformat())
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def best(fns: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """Best time of each function, runs interleaved so a busy machine hurts all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for slot, fn in zip(times, fns, strict=True):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            slot.append(time.perf_counter() - t0)
    return [min(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    config = config_from_dict(
        {"paper": {"description": "职工时报每日要闻"}, "feed": {"max_items": args.articles}},
        root=Path("."),
    )
    arts = make_articles(args.articles)
    items = entries(arts, config)

    def ours() -> None:
        got = entries(arts, config)
        rss_and_atom(got, config)
        json_feed(got, config)

    def floor() -> None:
        got = entries(arts, config)
        lxml_rss(got, config)
        lxml_atom(got, config)
        json_feed(got, config)

    def floor_xml() -> None:
        lxml_rss(items, config)
        lxml_atom(items, config)

    t_ours, t_floor, t_xml_ours, t_xml_floor = best(
        [ours, floor, lambda: rss_and_atom(items, config), floor_xml], args.repeat
    )
    rss, atom = rss_and_atom(items, config)
    print(f"{args.articles} articles, best of {args.repeat}; RSS {len(rss) // 1024} KiB, "
          f"Atom {len(atom) // 1024} KiB")
    print(f"all three feeds   ours {t_ours * 1000:7.1f} ms   floor {t_floor * 1000:7.1f} ms   "
          f"ratio {t_ours / t_floor:.2f}x")
    print(f"RSS + Atom only   ours {t_xml_ours * 1000:7.1f} ms   floor {t_xml_floor * 1000:7.1f} ms"
          f"   ratio {t_xml_ours / t_xml_floor:.2f}x")


if __name__ == "__main__":
    main()
