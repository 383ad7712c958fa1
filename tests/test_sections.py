"""Sections (栏目): where an article's section comes from, the section feeds, pages,
feeds.opml, and the digest grouped by section."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from lxml import etree, html

from gongbao_feed.config import load_config
from gongbao_feed.digest import email_environment, render_digest
from gongbao_feed.errors import ConfigError
from gongbao_feed.handwritten import FrontMatterError, parse_markdown
from gongbao_feed.pages import header_section, parse_page
from gongbao_feed.publish import Newsroom
from gongbao_feed.sections import assign_slugs, pinyin_slug
from gongbao_feed.skeleton import builtin_templates

from .conftest import FixedClock
from .helpers_cli import run
from .helpers_feeds import (
    assert_atom_valid,
    assert_json_feed_valid,
    assert_rss_valid,
    parsed_feed,
)
from .helpers_issues import BASE, START, make_room

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sections"
PAGES = FIXTURES / "pages"
TWO_SECTIONS = "2026-03-02-03.txt"  # 第3版 要闻: two articles; 第3版 工会新闻: one
IDS = {
    "skills": "2026-03-02-3631e2f4",   # 市总工会部署春季职工技能比武 (要闻)
    "stations": "2026-03-02-fbf4c287",  # 园区工会服务站全部挂牌 (要闻)
    "couriers": "2026-03-02-e1dddea6",  # 快递小哥有了“暖心驿站” (工会新闻)
    "books": "2026-03-02-0a65e373",     # 职工书屋新添千册图书 (no header: [sections] files)
    "note": "2026-03-02-06c61a02",      # 手写的稿件自带栏目 (front matter: 评论)
}
SECTIONS_CONFIG = {
    # *.md would say 要闻, *-03.txt 副刊: the front matter and the page headers win.
    "files": {"*-05.txt": "副刊", "*-03.txt": "副刊", "*.md": "要闻"},
    "slugs": {"要闻": "news"},
}


def publish(tmp_path: Path, names: tuple[str, ...] = (TWO_SECTIONS,),
            **config: dict) -> Newsroom:
    room = make_room(tmp_path, FixedClock(START), **config)
    room.config.inbox.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(PAGES / name, room.config.inbox / name)
    report = room.ingest()
    assert report.ok, report.failed
    assert room.assemble().issue is not None
    return room


@pytest.fixture
def room(tmp_path: Path) -> Newsroom:
    """Every fixture page, with [sections] files and one configured slug."""
    room = publish(tmp_path, tuple(sorted(p.name for p in PAGES.iterdir())),
                   sections=SECTIONS_CONFIG)
    yield room
    room.close()


def public(room: Newsroom, path: str) -> bytes:
    return (room.config.public_dir / path).read_bytes()


# -- where a section comes from ------------------------------------------------------


@pytest.mark.parametrize(("line", "section"), [
    ("第3版 要闻", "要闻"),
    ("第3版：要闻", "要闻"),
    ("第3版要闻", "要闻"),
    ("03版 要闻", "要闻"),
    ("A03版 要闻", "要闻"),
    ("第三版 · 工会新闻", "工会新闻"),
    ("第１２版｜体育", "体育"),
    ("要闻 第3版", "要闻"),
    ("第5版 社会·民生", "社会·民生"),
    ("第3版", None),
    ("2026年3月2日 星期一", None),
    ("5版方案出炉", None),  # no 第 and no space: a headline, not a header
    ("要闻 第3版 要闻", None),
])
def test_a_page_header_names_its_section(line: str, section: str | None) -> None:
    assert header_section(line) == section


def test_articles_under_a_header_are_in_its_section_until_the_next_one() -> None:
    page = parse_page((PAGES / TWO_SECTIONS).read_text("utf-8"), date(2026, 3, 2))
    assert [(a.title, a.section) for a in page.articles] == [
        ("市总工会部署春季职工技能比武", "要闻"),
        ("园区工会服务站全部挂牌", "要闻"),
        ("快递小哥有了“暖心驿站”", "工会新闻"),
    ]
    # The headers that name a section are read; the date line is still skipped, and said.
    assert page.warnings == ["line 3: skipped page header '2026年3月2日 星期一'"]


def test_a_page_number_alone_ends_the_section_before_it() -> None:
    text = (
        "第1版 要闻\n\n头版的稿件\n\n本报讯 第一篇稿件的正文写在这里。\n\n"
        "第2版\n\n二版的稿件\n\n本报讯 第二篇稿件的正文写在这里。\n"
    )
    page = parse_page(text, date(2026, 3, 2))
    assert [(a.title, a.section) for a in page.articles] == [
        ("头版的稿件", "要闻"), ("二版的稿件", None)]
    assert page.warnings == ["line 7: skipped page header '第2版'"]


def test_front_matter_beats_the_config_and_headers_beat_the_config(room: Newsroom) -> None:
    sections = {a.id: a.section for a in room.store.all_articles()}
    assert sections == {
        IDS["skills"]: "要闻",        # page header, though *-03.txt says 副刊
        IDS["stations"]: "要闻",
        IDS["couriers"]: "工会新闻",
        IDS["books"]: "副刊",         # no header: the first pattern that matches
        IDS["note"]: "评论",          # front matter, though *.md says 要闻
    }


def test_articles_list_filters_by_a_real_section(room: Newsroom, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paper]\nname = "职工时报"\nbase_url = "{BASE}"\n', "utf-8")
    code, listed, err = run(tmp_path, "articles", "list", "--section", "要闻", "--json")
    assert code == 0, err
    assert [(a["title"], a["section"], a["issue"]) for a in listed] == [
        ("市总工会部署春季职工技能比武", "要闻", 1),
        ("园区工会服务站全部挂牌", "要闻", 1),
    ]
    code, listed, err = run(tmp_path, "articles", "list", "--section", "体育", "--json")
    assert (code, listed) == (0, [])


def test_a_long_section_in_front_matter_is_refused() -> None:
    text = '+++\ntitle = "标题"\nsection = "' + "栏" * 33 + '"\n+++\n\n正文。\n'
    with pytest.raises(FrontMatterError, match="at most 32 characters"):
        parse_markdown(text, date(2026, 3, 2))


@pytest.mark.parametrize(("sections", "message"), [
    ({"slugs": {"要闻": "News"}},
     "sections.slugs: 要闻: 'News' is not a slug; expected lowercase ASCII letters and "
     'digits joined by hyphens, such as "news" or "union-news"'),
    ({"slugs": {"要闻": "news", "体育": "news"}},
     "sections.slugs: 体育: the slug 'news' is already 要闻's; each section needs its own"),
    ({"files": {"*-03.txt": 3}}, "sections.files.*-03.txt: expected a string (got 3)"),
    ({"pages": {}}, "sections.pages: unknown key; expected one of: files, slugs"),
])
def test_a_bad_sections_table_is_refused_naming_the_key(
    tmp_path: Path, sections: dict, message: str
) -> None:
    lines = ["[sections]"]
    for key, table in sections.items():
        lines.append(f"[sections.{key}]")
        lines += [f'"{k}" = {json.dumps(v, ensure_ascii=False)}' for k, v in table.items()]
    (tmp_path / "config.toml").write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "config.toml")
    assert caught.value.message == f"{tmp_path / 'config.toml'}: {message}"


def test_a_section_moved_by_a_header_is_no_revision_and_no_correction(tmp_path: Path) -> None:
    """A page stored before its headers were read gains its sections without a 更正."""
    room = make_room(tmp_path, FixedClock(START))
    room.config.inbox.mkdir(parents=True)
    page = room.config.inbox / TWO_SECTIONS
    text = (PAGES / TWO_SECTIONS).read_text("utf-8")
    page.write_text(text.replace("第3版 要闻\n", "").replace("第3版 工会新闻\n", ""), "utf-8")
    assert room.ingest().new == 3
    assert room.assemble().issue is not None
    assert {a.section for a in room.store.all_articles()} == {None}
    page.write_text(text, "utf-8")
    report = room.ingest()
    assert (report.new, report.updated, report.unchanged) == (0, 0, 3)
    stored = {a.id: a for a in room.store.all_articles()}
    assert stored[IDS["couriers"]].section == "工会新闻"
    assert {a.revision for a in stored.values()} == {1}
    assert room.store.corrections() == []


# -- slugs ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "slug"), [
    ("要闻", "yaowen"),
    ("工会新闻", "gonghuixinwen"),
    ("工会 新闻", "gonghui-xinwen"),
    ("社会·民生", "shehui-minsheng"),
    ("绿色生活", "lvseshenghuo"),
    ("Café 要闻 2", "cafe-yaowen-2"),
    ("·—·", "section"),
])
def test_a_slug_is_the_sections_pinyin(name: str, slug: str) -> None:
    assert pinyin_slug(name) == slug


def test_slugs_are_unique_configured_first_then_stored_then_first_come() -> None:
    names = ["要闻", "耀文", "药闻", "体育"]  # the first three all read yaowen
    assert assign_slugs(names, {}, {}) == {
        "要闻": "yaowen", "耀文": "yaowen-2", "药闻": "yaowen-3", "体育": "tiyu"}
    # a configured slug wins, and a stored slug is kept even if another now reads the same
    assert assign_slugs(names, {"体育": "sports"}, {"药闻": "yaowen"}) == {
        "要闻": "yaowen-2", "耀文": "yaowen-3", "药闻": "yaowen", "体育": "sports"}
    # a stored slug a configured one now takes is made anew
    assert assign_slugs(["要闻", "体育"], {"体育": "yaowen"}, {"要闻": "yaowen"}) == {
        "要闻": "yaowen-2", "体育": "yaowen"}


def test_a_slug_once_given_stays(tmp_path: Path) -> None:
    room = publish(tmp_path)
    assert room.section_slugs(room.store.all_articles()) == {
        "要闻": "yaowen", "工会新闻": "gonghuixinwen"}
    # stored: even a section that comes first later, with the same reading, cannot take it
    assert room.store.feed_ids("section-slug") == {"要闻": "yaowen", "工会新闻": "gonghuixinwen"}
    assert assign_slugs(["耀文", "要闻"], {}, room.store.feed_ids("section-slug")) == {
        "耀文": "yaowen-2", "要闻": "yaowen"}


# -- the section feeds ---------------------------------------------------------------


def test_a_page_with_two_section_headers_gives_two_section_feeds_that_pass_every_check(
    tmp_path: Path,
) -> None:
    room = publish(tmp_path)
    root = room.config.public_dir
    folders = sorted(p.name for p in (root / "sections").iterdir())
    assert folders == ["gonghuixinwen", "yaowen"]
    main_ids = {e.title: e.id for e in parsed_feed(public(room, "atom.xml")).entries}
    expected = {
        # first seen together: in page order
        "yaowen": ("要闻", ["市总工会部署春季职工技能比武", "园区工会服务站全部挂牌"]),
        "gonghuixinwen": ("工会新闻", ["快递小哥有了“暖心驿站”"]),
    }
    for slug, (name, titles) in expected.items():
        base = f"sections/{slug}/"
        assert_atom_valid(root / base / "atom.xml")
        feed = assert_json_feed_valid(public(room, base + "feed.json"))
        assert_rss_valid(public(room, base + "feed.xml"), BASE + base + "feed.xml",
                         BASE + base + "index.html")
        for kind in ("atom.xml", "feed.xml"):
            parsed = parsed_feed(public(room, base + kind))
            assert parsed.feed.title == f"职工时报 · {name}"
            # newest first; the same articles in the same order in every format,
            # with the ids the paper's own feed gives them
            assert [e.title for e in parsed.entries] == titles
            assert [e.id for e in parsed.entries] == [main_ids[t] for t in titles]
        assert feed["title"] == f"职工时报 · {name}"
        assert feed["feed_url"] == BASE + base + "feed.json"
        assert [i["title"] for i in feed["items"]] == titles
        assert all(i["tags"] == [name] for i in feed["items"])


def test_a_withdrawn_article_leaves_its_section_feeds_with_a_tombstone(
    tmp_path: Path,
) -> None:
    room = publish(tmp_path)
    atom_id = {e.title: e.id for e in parsed_feed(public(room, "atom.xml")).entries}
    room.withdraw(IDS["stations"], "数据有误")
    base = room.config.public_dir / "sections" / "yaowen"
    assert_atom_valid(base / "atom.xml")
    atom = etree.fromstring((base / "atom.xml").read_bytes())
    stones = atom.findall("{http://purl.org/atompub/tombstones/1.0}deleted-entry")
    assert [s.get("ref") for s in stones] == [atom_id["园区工会服务站全部挂牌"]]
    for kind in ("atom.xml", "feed.xml"):
        titles = [e.title for e in parsed_feed((base / kind).read_bytes()).entries]
        assert titles == ["市总工会部署春季职工技能比武"]
    feed = json.loads((base / "feed.json").read_bytes())
    assert [i["title"] for i in feed["items"]] == ["市总工会部署春季职工技能比武"]
    page = (base / "index.html").read_text("utf-8")
    assert "［已撤稿］</span> <a href=\"../../articles/2026-03-02-fbf4c287.html\"" in page
    # the other section is untouched
    other = room.config.public_dir / "sections" / "gonghuixinwen" / "atom.xml"
    assert b"deleted-entry" not in other.read_bytes()


def test_the_opml_file_lists_every_feed_with_chinese_titles(room: Newsroom) -> None:
    data = public(room, "feeds.opml")
    doc = etree.fromstring(data)
    assert doc.tag == "opml" and doc.get("version") == "2.0"
    assert doc.findtext("head/title") == "职工时报 · 订阅源"
    outlines = doc.findall("body/outline/outline")
    listed = {o.get("xmlUrl") for o in outlines}
    written = {
        BASE + str(p.relative_to(room.config.public_dir))
        for p in room.config.public_dir.rglob("*")
        if p.name in ("feed.xml", "atom.xml", "feed.json", "issues.xml")
    }
    assert listed == written and len(outlines) == len(written) == 16
    assert all(o.get("type") == "rss" and o.get("text") == o.get("title") for o in outlines)
    atom = [(o.get("title"), o.get("xmlUrl")) for o in doc.find("body/outline").iter("outline")
            if o.get("xmlUrl")]
    assert atom == [
        ("职工时报", BASE + "atom.xml"),
        ("职工时报 · 每期目录", BASE + "issues.xml"),
        ("职工时报 · 要闻", BASE + "sections/news/atom.xml"),
        ("职工时报 · 工会新闻", BASE + "sections/gonghuixinwen/atom.xml"),
        ("职工时报 · 副刊", BASE + "sections/fukan/atom.xml"),
        ("职工时报 · 评论", BASE + "sections/pinglun/atom.xml"),
    ]
    golden = FIXTURES / "feeds.opml"
    if os.environ.get("GONGBAO_WRITE_GOLDEN"):
        golden.write_bytes(data)
    assert data == golden.read_bytes()


def test_a_section_that_is_gone_takes_its_files_with_it(tmp_path: Path) -> None:
    room = publish(tmp_path)
    stray = room.config.public_dir / "sections" / "old" / "feed.xml"
    kept = room.config.public_dir / "sections" / "mine" / "notes.txt"
    for path in (stray, kept):
        path.parent.mkdir(parents=True)
        path.write_text("x", "utf-8")
    room.render()
    assert not stray.parent.exists()
    assert kept.exists()  # not a file render writes: left alone


# -- pages advertise their section's feed ---------------------------------------------


def _alternates(page: bytes) -> list[tuple[str, str, str]]:
    doc = html.fromstring(page)
    return [(link.get("type"), link.get("title"), link.get("href"))
            for link in doc.findall(".//head/link[@rel='alternate']")]


def test_pages_advertise_their_sections_feed(room: Newsroom) -> None:
    section_feed = ("application/atom+xml", "职工时报 · 工会新闻 (Atom)",
                    BASE + "sections/gonghuixinwen/atom.xml")
    article = _alternates(public(room, f"articles/{IDS['couriers']}.html"))
    assert article[-1] == section_feed and len(article) == 5
    assert _alternates(public(room, "sections/gonghuixinwen/index.html"))[-1] == section_feed
    # the paper's own pages carry only the paper's feeds
    assert len(_alternates(public(room, "index.html"))) == 4
    doc = html.fromstring(public(room, "index.html"))
    assert [(a.text, a.get("href")) for a in doc.findall(".//nav[@class='sections']//li/a[1]")] \
        == [("要闻", "sections/news/index.html"),
            ("工会新闻", "sections/gonghuixinwen/index.html"),
            ("副刊", "sections/fukan/index.html"), ("评论", "sections/pinglun/index.html")]
    page = html.fromstring(public(room, f"articles/{IDS['couriers']}.html"))
    link = page.find(".//span[@class='section']/a")
    assert (link.text, link.get("href")) == ("工会新闻", "../sections/gonghuixinwen/index.html")


def test_a_working_folders_older_templates_still_advertise_the_section_feed(
    tmp_path: Path,
) -> None:
    """The link comes with the `feeds` every base template loops over."""
    room = make_room(tmp_path, FixedClock(START))
    web = room.config.templates_dir / "web"
    web.mkdir(parents=True)
    old = (builtin_templates() / "web" / "article.html.j2").read_text("utf-8")
    (web / "article.html.j2").write_text(
        re.sub(r'<p class="meta">.*</p>\n', "", old), "utf-8")
    room.close()
    room = publish(tmp_path)
    page = public(room, f"articles/{IDS['couriers']}.html")
    assert _alternates(page)[-1][2] == BASE + "sections/gonghuixinwen/atom.xml"


# -- the digest ----------------------------------------------------------------------


def _digest(room: Newsroom):
    issue = room.store.issue(1)
    env = email_environment([builtin_templates() / "email"])
    return render_digest(issue, room.store.articles(issue.article_ids), room.config, env)


def test_the_digest_groups_an_issue_by_section_in_both_parts(room: Newsroom) -> None:
    digest = _digest(room)
    text = digest.text
    toc = text[text.index("本期目录"):text.index("#" * 36)].strip()
    assert toc == (
        "本期目录\n【要闻】\n  1. 市总工会部署春季职工技能比武\n  2. 园区工会服务站全部挂牌\n"
        "【工会新闻】\n  3. 快递小哥有了“暖心驿站”\n【副刊】\n  4. 职工书屋新添千册图书\n"
        "【评论】\n  5. 手写的稿件自带栏目"
    )
    headings = re.findall(r"^■ (.+)$", text, re.M)
    assert headings == ["要闻", "工会新闻", "副刊", "评论"]
    # each heading stands right above the first article of its section
    firsts = ["市总工会部署春季职工技能比武", "快递小哥有了“暖心驿站”", "职工书屋新添千册图书",
              "手写的稿件自带栏目"]
    for heading, title in zip(headings, firsts, strict=True):
        block = text[text.index(f"■ {heading}"):]
        assert block.split("\n")[2:4] == ["=" * 36, title]
    doc = html.fromstring(digest.html)
    assert [h.text for h in doc.findall(".//h3[@class='toc-section']")] == headings
    assert [h.text for h in doc.findall(".//h2[@class='section-name']")] == headings
    order = [h.text_content() for h in doc.xpath(
        "//h2[@class='section-name'] | //h2[@class='title']")]
    assert order == ["要闻", "市总工会部署春季职工技能比武", "园区工会服务站全部挂牌",
                     "工会新闻", "快递小哥有了“暖心驿站”", "副刊", "职工书屋新添千册图书",
                     "评论", "手写的稿件自带栏目"]
    golden = FIXTURES / "digest.txt"
    if os.environ.get("GONGBAO_WRITE_GOLDEN"):
        golden.write_text(text, "utf-8")
    assert text == golden.read_text("utf-8")


def test_an_issue_of_one_section_is_not_grouped(tmp_path: Path) -> None:
    room = make_room(tmp_path, FixedClock(START))
    room.config.inbox.mkdir(parents=True)
    text = (PAGES / TWO_SECTIONS).read_text("utf-8").replace("第3版 工会新闻", "第3版 要闻")
    (room.config.inbox / TWO_SECTIONS).write_text(text, "utf-8")
    assert room.ingest().ok and room.assemble().issue is not None
    digest = _digest(room)
    assert "■" not in digest.text and "【要闻】" not in digest.text
    assert 'class="section-name"' not in digest.html
