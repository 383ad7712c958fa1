"""Photo credits as the newspaper prints them (issue 15, "Credits as a newspaper prints them").

A credit stays with the caption it belongs to, role and all (`通讯员 吴海峰 摄`),
and reads the same in the archive, the feeds (content, and the photographer
among the entry's authors) and both parts of the digest. Every page here is
written for these tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from lxml import html as lxml_html

from gongbao_feed.digest import email_environment, render_digest
from gongbao_feed.fragments import article_html, credit_line, printed_captions
from gongbao_feed.handwritten import parse_markdown
from gongbao_feed.models import Article, Byline, article_id, photo_credit, with_credit
from gongbao_feed.pages import parse_page
from gongbao_feed.publish import Newsroom
from gongbao_feed.skeleton import builtin_templates

from .conftest import FixedClock
from .helpers_issues import START, html_blocks, make_room

DAY = date(2026, 11, 20)

#: The issue's example: a caption with its credit, the role in front of the name.
CAPTION = "图为焊工赛项选手正在进行实操比赛。通讯员 吴海峰 摄"

# The page in both layouts: full-width indentation, and blank lines between blocks.
INDENTED = (
    "全市职工职业技能大赛开赛\n"
    "　　本报讯（记者 甘露）11月18日，全市职工职业技能大赛在市工人文化宫开赛，"
    "八百余名选手参加焊工、电工等十二个赛项的比拼。\n"
    f"{CAPTION}\n"
)
PLAIN = "\n\n".join(line.lstrip("\u3000") for line in INDENTED.splitlines()) + "\n"


def read(text: str) -> list[Article]:
    return parse_page(text, DAY).articles


# -- the reader keeps the credit with its caption ------------------------------------


@pytest.mark.parametrize("page", [INDENTED, PLAIN], ids=["indented", "blank-lines"])
def test_the_issues_caption_keeps_its_credit_in_both_layouts(page: str) -> None:
    (art,) = read(page)
    assert art.captions == (CAPTION,)
    assert art.byline == Byline(reporters=("甘露",), photographers=("吴海峰",))
    assert art.paragraphs[-1].endswith("十二个赛项的比拼。")


STORY = "职工书屋开放\n\n本报讯（记者 甘露）区职工书屋今天开放。\n\n"


@pytest.mark.parametrize(("printed", "names"), [
    ("图为职工在书屋阅读。本报记者 王立新 摄", ("王立新",)),
    ("图为职工在书屋阅读。新华社记者 李卫东 摄", ("李卫东",)),
    ("图为职工在书屋阅读。王立新 摄", ("王立新",)),
    ("图为职工在书屋阅读。（张三 摄）", ("张三",)),
    ("图为职工在书屋阅读。（本报记者 邓　佳 摄）", ("邓佳",)),  # a padded name, as printed
    ("图为职工在书屋阅读。本报记者 王立新 本报通讯员 李卫东 摄影报道", ("王立新", "李卫东")),
])
def test_each_credit_form_is_kept_as_printed(printed: str, names: tuple[str, ...]) -> None:
    (art,) = read(STORY + printed + "\n")
    assert art.captions == (printed,)
    assert art.byline.photographers == names
    assert art.paragraphs == ("区职工书屋今天开放。",)


def test_a_credit_on_the_line_under_its_caption_joins_it() -> None:
    (art,) = read(STORY + "图为职工在书屋阅读。\n\n通讯员 吴海峰 摄\n")
    assert art.captions == ("图为职工在书屋阅读。通讯员 吴海峰 摄",)
    (unfinished,) = read(STORY + "图为职工在书屋阅读\n\n通讯员 吴海峰 摄\n")
    assert unfinished.captions == ("图为职工在书屋阅读　通讯员 吴海峰 摄",)
    (org,) = read(STORY + "图为职工在书屋阅读。\n\n区总工会供图\n")
    assert org.captions == ("图为职工在书屋阅读。区总工会供图",)


def test_two_captions_keep_their_own_credits() -> None:
    (art,) = read(
        STORY + "图为职工在书屋阅读。通讯员 吴海峰 摄\n\n图为书屋一角。\n\n本报记者 王立新 摄\n"
    )
    assert art.captions == (
        "图为职工在书屋阅读。通讯员 吴海峰 摄", "图为书屋一角。本报记者 王立新 摄"
    )
    assert art.byline.photographers == ("吴海峰", "王立新")


@pytest.mark.parametrize("page", [
    "寒夜送暖\n\n11月19日晚，市总工会志愿者在火车站为返乡职工送上姜茶。\n\n本报记者 王立新 摄\n",
    "寒夜送暖\n\n11月19日晚，市总工会志愿者在火车站为返乡职工送上姜茶。本报记者 王立新 摄\n",
], ids=["credit-on-its-own-line", "credit-at-the-end-of-the-line"])
def test_a_photo_news_items_credit_is_its_caption(page: str) -> None:
    (art,) = read(page)
    assert art.title == "寒夜送暖"
    assert art.paragraphs == ("11月19日晚，市总工会志愿者在火车站为返乡职工送上姜茶。",)
    assert art.captions == ("本报记者 王立新 摄",)
    assert art.byline == Byline(photographers=("王立新",))


# -- one rule for showing it -----------------------------------------------------------


def _article(captions: tuple[str, ...], **roles: tuple[str, ...]) -> Article:
    return Article(id=article_id(DAY, "标题"), date=DAY, title="标题", captions=captions,
                   byline=Byline(**roles), paragraphs=("正文。",))


def test_the_byline_credits_writers_and_the_caption_the_photographer() -> None:
    art = _article((CAPTION,), reporters=("甘露",), photographers=("吴海峰",))
    assert credit_line(art.byline) == "记者 甘露"
    blocks = html_blocks(str(article_html(art))).blocks
    assert ("p.byline", "记者 甘露") in blocks
    assert ("p.caption", CAPTION) in blocks
    assert printed_captions(art) == (CAPTION,)  # named in its caption: not credited twice


def test_a_photographer_no_caption_names_is_still_credited() -> None:
    """Markdown articles, and rows stored before captions kept their credits."""
    old_row = _article(("图为焊工赛项选手正在进行实操比赛。",), photographers=("吴海峰",))
    assert printed_captions(old_row) == ("图为焊工赛项选手正在进行实操比赛。吴海峰 摄",)
    no_caption = _article((), photographers=("吴海峰", "王立新"))
    assert printed_captions(no_caption) == ("吴海峰、王立新 摄",)
    only_byline = _article((), photographers=("吴海峰",))
    assert "p.byline" not in dict(html_blocks(str(article_html(only_byline))).blocks)
    padded = _article(("图为书屋一角。（本报记者 邓　佳 摄）",), photographers=("邓佳",))
    assert printed_captions(padded) == ("图为书屋一角。（本报记者 邓　佳 摄）",)
    md = parse_markdown(
        '+++\ntitle = "书屋开放"\nphotographers = ["吴海峰"]\n'
        'captions = ["图为书屋一角。"]\n+++\n\n正文。\n', DAY
    ).articles[0]
    assert printed_captions(md) == ("图为书屋一角。吴海峰 摄",)


def test_with_credit_and_photo_credit() -> None:
    assert with_credit("图为书屋一角。", "通讯员 吴海峰 摄") == "图为书屋一角。通讯员 吴海峰 摄"
    assert with_credit("图为书屋一角", "通讯员 吴海峰 摄") == "图为书屋一角　通讯员 吴海峰 摄"
    assert with_credit("", "吴海峰 摄") == "吴海峰 摄"
    assert photo_credit(["吴海峰"]) == "吴海峰 摄" and photo_credit([]) == ""


# -- the same text everywhere -----------------------------------------------------------


@pytest.fixture
def room(tmp_path: Path) -> Iterator[Newsroom]:
    room = make_room(tmp_path, FixedClock(START))
    room.config.inbox.mkdir(parents=True, exist_ok=True)
    (room.config.inbox / "2026-11-20-01.txt").write_text(INDENTED, "utf-8")
    assert room.ingest().ok
    assert room.assemble().issue is not None
    yield room
    room.close()


def _public(room: Newsroom, name: str) -> bytes:
    return (room.config.public_dir / name).read_bytes()


def test_archive_feeds_and_digest_print_the_same_credit(room: Newsroom) -> None:
    (art,) = room.store.all_articles()

    # the archive: article page and issue page
    for page in (f"articles/{art.id}.html", "issues/0001.html"):
        blocks = html_blocks(_public(room, page).decode()).blocks
        assert [t for c, t in blocks if c == "p.caption"] == [CAPTION], page
        assert [t for c, t in blocks if c == "p.byline"] == ["记者 甘露"], page

    # Atom and RSS: the caption with its credit in the content, the photographer an author
    for name in ("atom.xml", "feed.xml"):
        entry = feedparser.parse(_public(room, name)).entries[0]
        captions = html_blocks(entry.content[0].value).blocks
        assert [t for c, t in captions if c == "p.caption"] == [CAPTION], name
        assert "摄影" not in entry.content[0].value, name
    atom = etree.fromstring(_public(room, "atom.xml"))
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert [n.text for n in atom.findall("a:entry/a:author/a:name", ns)] == ["甘露", "吴海峰"]
    rss = etree.fromstring(_public(room, "feed.xml"))
    creators = rss.findall("channel/item/{http://purl.org/dc/elements/1.1/}creator")
    assert [c.text for c in creators] == ["甘露", "吴海峰"]

    # JSON Feed
    (item,) = json.loads(_public(room, "feed.json"))["items"]
    assert [t for c, t in html_blocks(item["content_html"]).blocks if c == "p.caption"] \
        == [CAPTION]
    assert item["authors"] == [{"name": "甘露"}, {"name": "吴海峰"}]

    # the digest, both parts
    issue = room.issue()
    env = email_environment([builtin_templates() / "email"])
    digest = render_digest(issue, room.store.articles(issue.article_ids), room.config, env)
    doc = lxml_html.fromstring(digest.html.encode())
    assert [p.text_content() for p in doc.find_class("caption")] == [CAPTION]
    assert [p.text_content() for p in doc.find_class("byline")] == ["记者 甘露"]
    lines = digest.text.splitlines()
    assert CAPTION in lines and "记者 甘露" in lines
    assert "摄影" not in digest.text and "摄影" not in digest.html
