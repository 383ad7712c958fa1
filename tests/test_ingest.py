"""Ingest: idempotent, per-file transactions, bad files reported and skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from gongbao_feed.cli import main
from gongbao_feed.ingest import date_from_name, publication_date
from gongbao_feed.publish import Newsroom
from gongbao_feed.store import Store

from .conftest import EXAMPLE_INBOX, FixedClock
from .helpers_cli import run

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))



def test_second_ingest_finds_nothing_new(workdir: Path) -> None:
    code, first, _ = run(workdir, "ingest", "--json")
    assert code == 0
    assert first["new"] == 9 and first["failed"] == []
    code, second, _ = run(workdir, "ingest", "--json")
    assert code == 0
    assert second == {"new": 0, "updated": 0, "unchanged": 9, "failed": []}


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


def test_binary_file_fails_alone_and_exit_status_says_so(workdir: Path) -> None:
    (workdir / "inbox" / "2026-11-23-photo.txt").write_bytes(PNG)
    (workdir / "inbox" / "2026-11-23-broken.txt").write_bytes(b"\xff\xfe\xfd" * 50 + b"\x81")
    code, report, err = run(workdir, "ingest", "--json")
    assert code == 1
    assert report["new"] == 9
    failed = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert set(failed) == {"2026-11-23-photo.txt", "2026-11-23-broken.txt"}
    assert "binary" in failed["2026-11-23-photo.txt"]
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
