"""Ingest: idempotent, per-file transactions, bad files reported and skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from gongbao_feed.cli import main
from gongbao_feed.ingest import Gone, date_from_name, publication_date
from gongbao_feed.publish import Newsroom
from gongbao_feed.store import Store

from .conftest import EXAMPLE_INBOX, FixedClock
from .helpers_cli import run
from .helpers_issues import public_files

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))

# A story of our own to put where the second story of 2026-11-22-01.txt stood:
# same beat (a district union, 职工, 工会), different news.
REPLACEMENT = """东湖区职工电工技能提升培训班开班

本报讯（记者 方远）11月21日，东湖区总工会联合区人社局举办职工电工技能提升培训班，\
来自辖区28家企业的90名职工参加学习。培训为期三天，内容包括低压配电、安全用电规范和故障排查。

参训职工王海涛说，老师讲的都是工作中常遇到的问题，回去就能用上。
"""

# A two-story page of our own, and its later edition: the first story's headline
# corrected and one figure changed, the second story replaced by another.
TWO_STORIES = """河西区环卫工人冬季安全培训开班

本报讯（记者 方远）11月22日，河西区总工会在区环卫所举办户外劳动者冬季安全培训，\
120余名环卫工人参加。培训邀请消防和医护人员现场讲解防滑防冻、急救包扎等知识。

培训结束后，区总工会为每名参训工人发放了防寒手套、反光背心和暖贴。\
环卫工人李桂芳说，冬天清扫路面最怕结冰，学了这些办法心里更有底。

南湖区总工会为外卖骑手免费体检

本报讯（通讯员 李可）11月22日，南湖区总工会为辖区200余名外卖骑手免费提供健康体检，\
并为每人建立了健康档案。区总工会还在骑手集中的商圈设立了3个爱心驿站，提供热水和手机充电服务。
"""
TWO_STORIES_LATER = (
    TWO_STORIES.replace("河西区环卫工人冬季安全培训开班", "河西区总工会为环卫工人开展冬季安全培训")
    .replace("120余名", "130余名")
    .replace(
        TWO_STORIES[TWO_STORIES.index("南湖区总工会"):],
        """北岸街道工会开办职工夜校

本报讯（通讯员 李可）北岸街道工会近日在社区党群服务中心开办职工夜校，\
首期开设电脑操作、普通话和家庭理财三门课程，每周二、周四晚上授课，已有160多名职工报名。
""",
    )
)



def test_second_ingest_finds_nothing_new(workdir: Path) -> None:
    code, first, _ = run(workdir, "ingest", "--json")
    assert code == 0
    assert first["new"] == 9 and first["failed"] == []
    code, second, _ = run(workdir, "ingest", "--json")
    assert code == 0
    assert second == {"new": 0, "updated": 0, "unchanged": 9, "failed": [], "gone": []}


def test_edited_paragraph_is_one_update_with_a_new_revision(
    room: Newsroom, clock: FixedClock
) -> None:
    page = room.config.inbox / "2026-11-22-01.txt"
    room.ingest([page])
    before = {a.title: a for a in room.store.all_articles()}
    text = page.read_text("utf-8-sig").replace("免费向市民开放。", "免费向市民开放，周一闭馆。")
    page.write_text(text, "utf-8")
    clock.advance(hours=2)
    report = room.ingest([page])
    assert (report.new, report.updated, report.unchanged) == (0, 1, 1)
    after = {a.title: a for a in room.store.all_articles()}
    changed = after["全市职工书法美术摄影作品展开幕"]
    old = before["全市职工书法美术摄影作品展开幕"]
    assert changed.id == old.id
    assert changed.revision == 2
    assert changed.first_seen == old.first_seen
    assert changed.updated == clock.now
    assert changed.paragraphs[-1].endswith("周一闭馆。")


def test_corrected_headline_keeps_the_article_id(room: Newsroom, clock: FixedClock) -> None:
    page = room.config.inbox / "2026-11-22-01.txt"
    room.ingest([page])
    old = room.store.all_articles()[0]
    page.write_text(
        page.read_text("utf-8-sig").replace("作品展开幕", "作品展在市工人文化宫开幕"), "utf-8"
    )
    clock.advance(minutes=5)
    report = room.ingest([page])
    assert report.updated == 1 and report.new == 0
    fixed = room.store.article(old.id)
    assert fixed is not None and fixed.title.endswith("作品展在市工人文化宫开幕")
    assert fixed.revision == 2


def test_a_different_story_in_an_old_ones_place_is_new_and_the_old_one_is_gone(
    room: Newsroom, clock: FixedClock
) -> None:
    page = room.config.inbox / "2026-11-22-01.txt"
    room.ingest([page])
    first, second = room.store.all_articles()
    made = room.assemble()
    assert made.issue is not None and made.issue.article_ids == (first.id, second.id)
    published = public_files(room)
    text = page.read_text("utf-8-sig")
    page.write_text(text[: text.index("“小切口”")] + REPLACEMENT, "utf-8")
    clock.advance(hours=3)

    report = room.ingest([page])

    assert (report.new, report.updated, report.unchanged) == (1, 0, 1)
    assert report.gone == [Gone(second.id, second.title, str(page))]
    assert room.store.article(second.id) == replace(second, issue=1)  # row untouched
    (fresh,) = room.store.unissued_articles()
    assert fresh.title == "东湖区职工电工技能提升培训班开班" and fresh.id != second.id
    assert fresh.position == second.position and fresh.first_seen == clock.now
    # What was published stays published: the issue and the feeds are as they were.
    issue = room.store.issue(1)
    assert issue is not None and issue.article_ids == (first.id, second.id)
    assert not room.render().written
    assert public_files(room) == published


def test_same_place_new_headline_new_body_is_a_new_article(
    room: Newsroom, clock: FixedClock
) -> None:
    """A corrected headline over the same story keeps its id; a different story does not."""
    page = room.config.inbox / "2026-11-23-03.txt"
    page.write_text(TWO_STORIES, "utf-8")
    room.ingest([page])
    cleaners, riders = room.store.all_articles()
    page.write_text(TWO_STORIES_LATER, "utf-8")
    clock.advance(hours=1)

    report = room.ingest([page])

    assert (report.new, report.updated, report.unchanged) == (1, 1, 0)
    assert report.gone == [Gone(riders.id, "南湖区总工会为外卖骑手免费体检", str(page))]
    fixed = room.store.article(cleaners.id)
    assert fixed is not None and fixed.title == "河西区总工会为环卫工人开展冬季安全培训"
    assert fixed.revision == 2 and "130余名" in fixed.paragraphs[0]
    night_school = [a for a in room.store.all_articles() if a.title == "北岸街道工会开办职工夜校"]
    assert len(night_school) == 1 and night_school[0].id not in {cleaners.id, riders.id}
    assert night_school[0].position == riders.position
    kept = room.store.article(riders.id)
    assert kept is not None and kept.revision == 1 and kept.paragraphs == riders.paragraphs

    # A re-read of the page changes nothing and does not report it again.
    again = room.ingest([page])
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2)
    assert again.gone == []

    # Two stored stories now stand at that place; a corrected headline over the
    # second one's body finds the second one, not the one that went.
    page.write_text(TWO_STORIES_LATER.replace("开办职工夜校", "职工夜校开课"), "utf-8")
    third = room.ingest([page])
    assert (third.new, third.updated, third.unchanged) == (0, 1, 1)
    assert third.gone == []

    # Put back, then dropped again: reported again.
    page.write_text(TWO_STORIES, "utf-8")
    back = room.ingest([page])
    assert [g.id for g in back.gone] == [night_school[0].id]
    page.write_text(TWO_STORIES_LATER.replace("开办职工夜校", "职工夜校开课"), "utf-8")
    assert [g.id for g in room.ingest([page]).gone] == [riders.id]
    renamed = room.store.article(night_school[0].id)
    assert renamed is not None and renamed.title == "北岸街道工会职工夜校开课"


def test_a_story_that_moved_down_the_page_is_not_gone(room: Newsroom, clock: FixedClock) -> None:
    page = room.config.inbox / "2026-11-23-03.txt"
    page.write_text(TWO_STORIES, "utf-8")
    room.ingest([page])
    cut = TWO_STORIES.index("南湖区总工会为外卖骑手免费体检")
    page.write_text(TWO_STORIES[cut:] + "\n" + TWO_STORIES[:cut], "utf-8")
    clock.advance(hours=1)
    report = room.ingest([page])
    assert (report.new, report.updated, report.unchanged, report.gone) == (0, 0, 2, [])
    assert [a.title for a in room.store.all_articles()] == [
        "南湖区总工会为外卖骑手免费体检", "河西区环卫工人冬季安全培训开班"
    ]


def test_cli_ingest_lists_gone_articles(workdir: Path) -> None:
    page = workdir / "inbox" / "2026-11-22-01.txt"
    code, first, _ = run(workdir, "ingest", "--json", str(page))
    assert code == 0 and first["gone"] == []
    text = page.read_text("utf-8-sig")
    page.write_text(text[: text.index("“小切口”")] + REPLACEMENT, "utf-8")
    code, second, _ = run(workdir, "ingest", "--json", str(page))
    assert code == 0
    assert isinstance(second, dict) and second["new"] == 1
    (gone,) = second["gone"]
    assert gone["title"] == "“小切口”解决职工“急难愁盼”"
    assert gone["path"] == str(page) and gone["id"].startswith("2026-11-22-")
    code, again, _ = run(workdir, "ingest", "--json", str(page))
    assert code == 0 and again["gone"] == []  # reported once, not on every re-read
    page.write_text(text, "utf-8")  # the first edition back: the replacement goes
    code, out, _ = run(workdir, "ingest", str(page))
    assert code == 0
    assert f"gone from {page}: 东湖区职工电工技能提升培训班开班 (" in out
    assert out.rstrip().endswith("0 new, 0 updated, 2 unchanged, 0 failed, 1 gone")


def test_binary_file_fails_alone_and_exit_status_says_so(workdir: Path) -> None:
    (workdir / "inbox" / "2026-11-23-photo.txt").write_bytes(PNG)
    (workdir / "inbox" / "2026-11-23-broken.txt").write_bytes(b"\xff\xfe\xfd" * 50 + b"\x81")
    code, report, err = run(workdir, "ingest", "--json")
    assert code == 1
    assert report["new"] == 9
    failed = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert set(failed) == {"2026-11-23-photo.txt", "2026-11-23-broken.txt"}
    assert failed["2026-11-23-photo.txt"] == "an image (a scan or photo of a page), not a text page"
    assert "2026-11-23-photo.txt" in err


def test_page_with_no_articles_is_a_failure(workdir: Path) -> None:
    empty = workdir / "inbox" / "2026-11-24-empty.txt"
    empty.write_text("\n\n\f\n", "utf-8")
    code, report, _ = run(workdir, "ingest", "--json", str(empty))
    assert code == 1
    assert report["failed"][0]["error"].startswith("no articles found")


def test_markdown_front_matter_errors_name_the_key(workdir: Path) -> None:
    md = workdir / "inbox" / "note.md"
    md.write_text('+++\ntitle = "标题"\nauthor = "张三"\n+++\n\n正文。\n', "utf-8")
    code, report, _ = run(workdir, "ingest", "--json", str(md))
    assert code == 1
    assert "unknown key 'author'" in report["failed"][0]["error"]


def test_publication_date_prefers_the_file_name() -> None:
    assert date_from_name("gongbao-2026-02-30-p1.txt") is None  # not a real day
    assert date_from_name("x2026-03-0511.txt") is None
    today = date(2026, 11, 26)
    named = Path("2026-11-20-01.txt")
    assert publication_date(named, date(2026, 1, 1), today) == date(2026, 11, 20)
    assert publication_date(Path("page.txt"), date(2026, 1, 1), today) == date(2026, 1, 1)
    assert publication_date(Path("page.txt"), None, today) == today


def test_today_is_taken_in_the_papers_time_zone(room: Newsroom, clock: FixedClock) -> None:
    from datetime import UTC, datetime

    clock.now = datetime(2026, 11, 25, 17, 30, tzinfo=UTC)  # 01:30 on the 26th in Shanghai
    assert room.today() == date(2026, 11, 26)


def test_parse_json_is_one_object_with_the_promised_fields(tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_text(
        "工会开展职工体检\n\n本报讯（记者 张三）近日，某区工会组织职工体检。\n", "utf-8"
    )
    result = CliRunner().invoke(main, ["parse", str(page), "--date", "2026-05-04", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert list(data) == ["articles"]
    (article,) = data["articles"]
    assert {"id", "date", "kicker", "title", "subtitle", "dateline", "byline", "captions",
            "paragraphs"} <= set(article)
    assert article["date"] == "2026-05-04"
    assert article["dateline"] == "本报讯"
    assert article["byline"] == {
        "reporters": ["张三"], "correspondents": [], "interns": [], "photographers": []
    }
    assert article["paragraphs"] == ["近日，某区工会组织职工体检。"]


def test_parse_rejects_a_bad_date(tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_text("标题\n\n本报讯（记者 张三）正文。\n", "utf-8")
    result = CliRunner().invoke(main, ["parse", str(page), "--date", "2026-13-01"])
    assert result.exit_code == 2
    assert "expected YYYY-MM-DD" in result.stderr


def test_store_works_from_any_sqlalchemy_url(tmp_path: Path) -> None:
    from gongbao_feed.pages import parse_page

    store = Store("sqlite://")
    page = parse_page("标题一\n\n本报讯（记者 张三）正文一。\n", date(2026, 1, 2), "a.txt")
    from datetime import UTC, datetime

    assert store.save_articles(page.articles, datetime.now(UTC)).new == 1
    assert [a.title for a in store.unissued_articles()] == ["标题一"]


def test_init_then_ingest_in_a_new_folder_with_the_real_command(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "gongbao-feed"
    subprocess.run([str(exe), "init", str(tmp_path / "w")], check=True, capture_output=True)
    folder = tmp_path / "w"
    assert oct((folder / "state" / "secret.key").stat().st_mode & 0o777) == "0o600"
    for page in EXAMPLE_INBOX.glob("*.txt"):
        shutil.copy(page, folder / "inbox")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run(
        [str(exe), "ingest", "--json"], cwd=folder, check=True, capture_output=True, env=env
    )
    assert json.loads(out.stdout)["new"] == 8
    assert (folder / "state" / "gongbao.db").is_file()
