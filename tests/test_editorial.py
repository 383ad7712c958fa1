"""Editorial control: withdrawals (撤稿) and corrections (更正), seen as readers, feed
readers and members see them: feedparser, the RFC 4287 RELAX NG schema (jing), a real
HTTP client against `serve`, the outbox and the delivery ledger."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import httpx
import pytest
from lxml import etree

from gongbao_feed.publish import Newsroom
from gongbao_feed.web import create_app

from .conftest import FixedClock
from .helpers_cli import run
from .helpers_feeds import assert_atom_valid
from .helpers_issues import START, copy_page, make_room
from .helpers_web import running

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "editorial"
TOMBSTONES = "http://purl.org/atompub/tombstones/1.0"
ATOM = "http://www.w3.org/2005/Atom"
PAGE = "2026-03-02-01.txt"
OTHER = "2026-03-03-01.txt"
REASON = "文中数据未经核实，本报决定撤回此稿。"
WHEN = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)  # 10:00 on 4 March in Shanghai

#: The public files a withdrawal changes and a restore must give back byte for byte.
PUBLIC = ("feed.xml", "atom.xml", "feed.json", "issues.xml", "index.html", "issues/0001.html")


def parsed(room: Newsroom, name: str) -> feedparser.FeedParserDict:
    feed = feedparser.parse((room.config.public_dir / name).read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


def html(room: Newsroom, name: str) -> str:
    return (room.config.public_dir / name).read_text("utf-8")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def published(tmp_path: Path, clock: FixedClock) -> Newsroom:
    """Two of our pages ingested a day apart and made into issue 1, two members on the list."""
    room = make_room(tmp_path, clock)
    copy_page(room, PAGE)
    assert room.ingest().ok
    clock.advance(days=1)
    copy_page(room, OTHER)
    assert room.ingest().ok
    assert room.assemble().issue is not None
    room.add_member("lin@example.org", "林")
    room.add_member("zhao@example.org", "赵")
    yield room
    room.close()


def article_titled(room: Newsroom, title: str) -> str:
    return next(a.id for a in room.store.all_articles() if a.title == title)


def snapshot(room: Newsroom) -> dict[str, bytes]:
    public = room.config.public_dir
    return {name: (public / name).read_bytes() for name in PUBLIC}


# -- withdrawn after publication: retracted ------------------------------------------------


@pytest.mark.slow
def test_withdraw_after_publication_retracts_everywhere_and_restore_gives_it_back(
    published: Newsroom, clock: FixedClock
) -> None:
    room = published
    aid = article_titled(room, "社区工会驿站开门迎客")
    keep = article_titled(room, "职工夜校开出新课程")
    feed_id = room.store.feed_ids("article")[aid]
    before = snapshot(room)
    article_page = html(room, f"articles/{aid}.html")

    clock.now = WHEN
    room.withdraw(aid, REASON, by="编辑 甲")
    notice = f"《社区工会驿站开门迎客》已于2026年3月4日撤稿。撤稿原因：{REASON}"

    # Atom: no entry, a tombstone; feedparser and the RFC 4287 schema accept it.
    atom = parsed(room, "atom.xml")
    assert feed_id not in [e.id for e in atom.entries]
    assert len(atom.entries) == 2
    assert_atom_valid(room.config.public_dir / "atom.xml")
    root = etree.fromstring((room.config.public_dir / "atom.xml").read_bytes())
    stones = root.findall(f"{{{TOMBSTONES}}}deleted-entry")
    assert [(s.get("ref"), s.get("when")) for s in stones] == [
        (feed_id, "2026-03-04T10:00:00+08:00")
    ]
    assert stones[0].findtext(f"{{{TOMBSTONES}}}comment") == notice
    assert root.nsmap["at"] == TOMBSTONES
    assert root.findtext(f"{{{ATOM}}}updated") == "2026-03-04T10:00:00+08:00"

    # RSS and JSON Feed no longer list it.
    rss = parsed(room, "feed.xml")
    assert feed_id not in [e.id for e in rss.entries] and len(rss.entries) == 2
    items = json.loads((room.config.public_dir / "feed.json").read_bytes())["items"]
    assert feed_id not in [i["id"] for i in items] and len(items) == 2
    assert "社区工会驿站" not in (room.config.public_dir / "feed.json").read_text("utf-8")

    # The issue page lists it as withdrawn, with the notice instead of the text.
    issue_page = html(room, "issues/0001.html")
    assert "［已撤稿］</span> <a href=\"#" + aid in issue_page
    assert notice in issue_page
    assert "为户外劳动者提供饮水" not in issue_page
    assert "共 2 篇" in issue_page

    # A real HTTP client: 410 Gone with the notice; the other articles as before.
    with running(create_app(room.config, room.store, clock)) as base:
        gone = httpx.get(f"{base}/articles/{aid}.html")
        again = httpx.get(f"{base}/articles/{aid}.html",
                          headers={"If-None-Match": gone.headers.get("etag", "*")})
        kept = httpx.get(f"{base}/articles/{keep}.html")
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "text/html; charset=utf-8"
    assert "社区工会驿站开门迎客" in gone.text and REASON in gone.text
    assert "2026年3月4日" in gone.text
    assert "为户外劳动者提供饮水" not in gone.text
    assert again.status_code == 410
    assert kept.status_code == 200

    # A digest not yet sent leaves it out.
    digest = room.digest(1)
    assert "社区工会驿站" not in digest.text and "职工夜校" in digest.text

    # Restore: every file as it was, the page served again.
    clock.advance(hours=1)
    room.restore(aid, by="编辑 甲")
    assert snapshot(room) == before
    assert html(room, f"articles/{aid}.html") == article_page
    with running(create_app(room.config, room.store, clock)) as base:
        back = httpx.get(f"{base}/articles/{aid}.html")
    assert back.status_code == 200 and "为户外劳动者提供饮水" in back.text

    # The record: who withdrew it, when and why, and who restored it.
    history = room.store.withdrawals(aid, active_only=False)
    assert [(w.by, w.when, w.reason, w.restored_by) for w in history] == [
        ("编辑 甲", WHEN, REASON, "编辑 甲")
    ]


def test_a_tombstone_lasts_as_long_as_the_entry_would_have(
    tmp_path: Path, clock: FixedClock
) -> None:
    """feed.max_items = 2: once two newer articles push it out, the tombstone goes too."""
    room = make_room(tmp_path, clock, feed={"max_items": 2})
    copy_page(room, PAGE)
    room.ingest()
    room.assemble()
    aid = article_titled(room, "社区工会驿站开门迎客")
    room.withdraw(aid, REASON, by="甲")
    root = etree.fromstring((room.config.public_dir / "atom.xml").read_bytes())
    assert len(root.findall(f"{{{TOMBSTONES}}}deleted-entry")) == 1

    clock.advance(days=1)
    copy_page(room, OTHER)
    (room.config.inbox / "2026-03-03-02.txt").write_text(
        "食堂新添夜班窗口\n本报讯（记者 吴婷）职工食堂本周起为夜班职工开设专门窗口。\n", "utf-8")
    room.ingest()
    room.assemble()
    root = etree.fromstring((room.config.public_dir / "atom.xml").read_bytes())
    assert root.findall(f"{{{TOMBSTONES}}}deleted-entry") == []
    assert len(root.findall(f"{{{ATOM}}}entry")) == 2
    room.close()


# -- withdrawn before any issue -------------------------------------------------------------


def test_withdrawn_before_an_issue_is_never_assembled_and_appears_nowhere(
    published: Newsroom, clock: FixedClock
) -> None:
    room = published
    clock.advance(days=1)
    page = room.config.inbox / "2026-03-04-01.txt"
    page.write_text(
        "误排的一篇稿件\n本报讯（记者 吴婷）这是一篇不该见报的稿件，排版时误放进了本版。\n\n"
        "食堂新添夜班窗口\n本报讯（记者 吴婷）职工食堂本周起为夜班职工开设专门窗口。\n",
        "utf-8",
    )
    assert room.ingest().new == 2
    wrong = article_titled(room, "误排的一篇稿件")
    room.withdraw(wrong, "误排", by="甲")

    made = room.assemble().issue
    assert made is not None and wrong not in made.article_ids and len(made.article_ids) == 1
    public = room.config.public_dir
    for path in public.rglob("*"):
        if path.is_file():
            text = path.read_text("utf-8")
            assert "误排" not in text and wrong not in text, path

    # Re-reading the same page (even changed) does not bring it back.
    clock.advance(hours=1)
    page.write_text(page.read_text("utf-8").replace("本版", "本版第二栏"), "utf-8")
    assert room.ingest().updated == 1
    assert room.assemble(force=True).issue is None
    [row] = [a for a in room.list_articles() if a.id == wrong]
    assert (row.status, row.issue, row.revision) == ("withdrawn", None, 2)

    # Restored, it goes into the next issue like any new article.
    room.restore(wrong, by="甲")
    assert room.assemble().issue.article_ids == (wrong,)


def test_withdraw_refuses_unknown_ids_empty_reasons_and_twice(published: Newsroom) -> None:
    from gongbao_feed.errors import StoreError

    aid = article_titled(published, "职工夜校开出新课程")
    with pytest.raises(StoreError, match="no article"):
        published.withdraw("2026-01-01-00000000", REASON)
    with pytest.raises(StoreError, match="reason"):
        published.withdraw(aid, "  ")
    published.withdraw(aid, REASON, by="甲")
    with pytest.raises(StoreError, match="already withdrawn"):
        published.withdraw(aid, REASON, by="甲")
    published.restore(aid, by="甲")
    with pytest.raises(StoreError, match="not withdrawn"):
        published.restore(aid, by="甲")


# -- corrections -------------------------------------------------------------------------------


def outbox_state(room: Newsroom) -> dict[str, bytes]:
    out = room.config.outbox_dir
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def ledger_state(room: Newsroom) -> list[tuple[object, ...]]:
    return [(d.issue, d.email, d.state, d.attempts, d.message_id, d.updated)
            for d in room.store.deliveries()]


CORRECTED = "更正：本文第二段中“四百余条”应为“五百余条”，特此更正。"


@pytest.mark.slow
def test_a_corrected_page_says_so_in_the_archive_and_the_feed_and_mails_nobody(
    published: Newsroom, clock: FixedClock
) -> None:
    room = published
    sent = room.send(1)
    assert sent.sent == 2
    outbox, ledger = outbox_state(room), ledger_state(room)
    aid = article_titled(room, "车间里的“小发明”大能量")
    feed_id = room.store.feed_ids("article")[aid]

    # The corrected page: a figure fixed, a 更正 line closing the article.
    clock.now = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 on 1 December in Shanghai
    page = room.config.inbox / PAGE
    text = page.read_text("utf-8").replace("四百余条", "五百余条")
    text = text.replace("通讯员 孙丽 摄\n", f"通讯员 孙丽 摄\n\n{CORRECTED}\n")
    page.write_text(text, "utf-8")
    report = room.publish()  # what the service does: ingest, assemble, send
    assert report.ingest.updated == 1 and report.issue is None and report.send is None

    note = "更正：本文于2026年12月1日更正。本文第二段中“四百余条”应为“五百余条”，特此更正。"
    [article] = room.store.articles([aid])
    assert article.id == aid and article.revision == 2
    assert all("更正" not in p for p in article.paragraphs)  # the line left the body

    page_html = html(room, f"articles/{aid}.html")
    assert f'<p class="correction">{note}</p>' in page_html
    assert "五百余条" in page_html
    assert f'<p class="correction">{note}</p>' in html(room, "issues/0001.html")

    atom = parsed(room, "atom.xml")
    [entry] = [e for e in atom.entries if e.id == feed_id]
    assert note in entry.content[0].value
    assert entry.updated == "2026-12-01T09:00:00+08:00"
    rss = parsed(room, "feed.xml")
    assert note in next(e for e in rss.entries if e.id == feed_id).content[0].value
    item = next(i for i in json.loads(html(room, "feed.json"))["items"] if i["id"] == feed_id)
    assert note in item["content_html"]
    assert_atom_valid(room.config.public_dir / "atom.xml")

    # Nobody is mailed again: the outbox and the ledger are as they were.
    assert outbox_state(room) == outbox
    assert ledger_state(room) == ledger

    # The next issue's page lists the correction.
    clock.advance(hours=1)
    (room.config.inbox / "2026-12-01-01.txt").write_text(
        "食堂新添夜班窗口\n本报讯（记者 吴婷）职工食堂本周起为夜班职工开设专门窗口。\n", "utf-8")
    room.ingest()
    assert room.assemble().issue.number == 2
    second = html(room, "issues/0002.html")
    assert '<section class="corrections"' in second
    assert f'车间里的“小发明”大能量</a>：{note}' in second
    assert "更正" not in html(room, "issues/0001.html").split('class="toc"')[0]

    # The editor's own words replace the page's.
    clock.advance(hours=1)
    room.note(aid, "第二段数字有误，已改正。", by="编辑 乙")
    fixed = "更正：本文于2026年12月1日更正。第二段数字有误，已改正。"
    assert f'<p class="correction">{fixed}</p>' in html(room, f"articles/{aid}.html")
    [entry] = [e for e in parsed(room, "atom.xml").entries if e.id == feed_id]
    assert fixed in entry.content[0].value
    assert entry.updated == "2026-12-01T11:00:00+08:00"
    assert outbox_state(room).keys() >= outbox.keys()
    assert ledger_state(room)[:2] == ledger


def test_an_edited_markdown_article_is_a_correction_with_its_note(
    tmp_path: Path, clock: FixedClock
) -> None:
    room = make_room(tmp_path, clock)
    room.config.inbox.mkdir(parents=True)
    md = room.config.inbox / "2026-03-02-评论.md"
    md.write_text('+++\ntitle = "让职工少跑腿"\n+++\n\n服务窗口前移，职工办事只需跑一次。\n',
                  "utf-8")
    room.ingest()
    room.assemble()
    [aid] = [a.id for a in room.store.all_articles()]

    clock.now = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
    md.write_text('+++\ntitle = "让职工少跑腿"\n+++\n\n服务窗口前移，职工办事最多跑一次。\n\n'
                  "更正：原文“只需”应为“最多”。\n", "utf-8")
    assert room.ingest().updated == 1
    [c] = room.store.corrections(aid)
    assert (c.revision, c.note, c.by) == (2, "原文“只需”应为“最多”。", "page")
    room.render()
    assert '<p class="correction">更正：本文于2026年3月5日更正。原文“只需”应为“最多”。</p>' in html(
        room, f"articles/{aid}.html")
    room.close()


def test_a_change_before_the_issue_is_no_correction(tmp_path: Path, clock: FixedClock) -> None:
    room = make_room(tmp_path, clock)
    page = copy_page(room, PAGE)
    room.ingest()
    page.write_text(page.read_text("utf-8").replace("四百余条", "五百余条"), "utf-8")
    assert room.ingest().updated == 1
    assert room.store.corrections() == []
    assert [r.revision for a in room.store.all_articles() for r in room.store.revisions(a.id)] \
        == [1]
    room.assemble()
    assert 'class="correction"' not in html(room, "issues/0001.html")
    from gongbao_feed.errors import StoreError

    aid = article_titled(room, "车间里的“小发明”大能量")
    room.close()
    unissued = make_room(tmp_path, clock)
    unissued.config.inbox.mkdir(parents=True, exist_ok=True)
    (unissued.config.inbox / "2026-03-09-01.txt").write_text(
        "食堂新添夜班窗口\n本报讯（记者 吴婷）职工食堂本周起为夜班职工开设专门窗口。\n", "utf-8")
    unissued.ingest()
    new = article_titled(unissued, "食堂新添夜班窗口")
    with pytest.raises(StoreError, match="no issue yet"):
        unissued.note(new, "改正")
    assert unissued.note(aid, "补记：数字已核实。").revision == 2
    unissued.close()


# -- the command line ----------------------------------------------------------------------------


def _scrub(text: str) -> str:
    """Times of day the CLI's real clock stamped: volatile, so replaced."""
    return re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", "YYYY-MM-DD HH:MM", text)


def test_articles_list_json_and_show_match_the_golden_files(
    published: Newsroom, tmp_path: Path
) -> None:
    room = published
    config = room.config.root / "config.toml"
    config.write_text(
        '[paper]\nname = "职工时报"\nbase_url = "https://paper.example.net/"\n', "utf-8"
    )
    folder = config.parent
    aid = article_titled(room, "社区工会驿站开门迎客")
    fixed = article_titled(room, "车间里的“小发明”大能量")
    page = room.config.inbox / PAGE
    page.write_text(page.read_text("utf-8").replace("四百余条", "五百余条"), "utf-8")
    assert room.ingest().updated == 1

    code, _, err = run(folder, "articles", "withdraw", aid, "--reason", REASON, "--by", "编辑 甲")
    assert code == 0, err
    code, _, err = run(folder, "articles", "note", fixed, "第二段数字有误，已改正。", "--by", "乙")
    assert code == 0, err

    code, listed, err = run(folder, "articles", "list", "--json")
    assert code == 0, err
    if os.environ.get("GONGBAO_WRITE_GOLDEN"):
        (GOLDEN / "articles-list.json").write_text(
            json.dumps(listed, ensure_ascii=False, indent=2) + "\n", "utf-8")
        for name, which in (("show-withdrawn.txt", aid), ("show-corrected.txt", fixed)):
            (GOLDEN / name).write_text(_scrub(run(folder, "articles", "show", which)[1]), "utf-8")
    expected = json.loads((GOLDEN / "articles-list.json").read_text("utf-8"))
    assert listed == expected

    code, one_issue, _ = run(folder, "articles", "list", "--issue", "1", "--json")
    assert one_issue == expected

    code, shown, err = run(folder, "articles", "show", aid)
    assert code == 0, err
    assert _scrub(shown) == (GOLDEN / "show-withdrawn.txt").read_text("utf-8")
    code, shown, err = run(folder, "articles", "show", fixed)
    assert _scrub(shown) == (GOLDEN / "show-corrected.txt").read_text("utf-8")

    code, _, err = run(folder, "articles", "withdraw", "2026-01-01-00000000", "--reason", "x")
    assert code == 1 and "there is no article 2026-01-01-00000000" in err
