"""Assemble: new articles → the next numbered issue, its manifest and its record."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from gongbao_feed.assemble import last_manifest_number, plan_issue
from gongbao_feed.cli import main
from gongbao_feed.config import IssueConfig, PaperConfig
from gongbao_feed.publish import Newsroom

from .conftest import FixedClock
from .helpers_issues import START, copy_page, make_room, record

SHANGHAI = ZoneInfo("Asia/Shanghai")
PAPER = PaperConfig(name="职工时报")


def articles(n: int, day: date = date(2026, 3, 2)) -> list:
    return [record(f"第{i}篇", ("正文。",), day=day, position=i, issue=None) for i in range(n)]


# -- the pure plan ------------------------------------------------------------------


def test_next_number_date_in_paper_zone_and_title_from_template() -> None:
    late_utc = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)  # already 3 March in Shanghai
    settings = IssueConfig(title="{paper}·第{number}期·{date}")
    plan = plan_issue(articles(2), 41, late_utc, settings, PAPER, SHANGHAI)
    assert plan.issue is not None
    assert plan.issue.number == 42
    assert plan.issue.date == date(2026, 3, 3)
    assert plan.issue.title == "职工时报·第42期·2026年3月3日"
    assert plan.issue.created.utcoffset().total_seconds() == 8 * 3600


def test_articles_go_in_publication_order() -> None:
    pages = articles(3, date(2026, 3, 2)) + articles(2, date(2026, 3, 1))
    shuffled = pages[:]
    random.Random(4).shuffle(shuffled)
    plan = plan_issue(shuffled, 0, START, IssueConfig(), PAPER, SHANGHAI)
    expected = sorted(pages, key=lambda a: (a.date, a.position))
    assert plan.issue.article_ids == tuple(a.id for a in expected)


def test_max_articles_leaves_the_rest_for_the_next_issue() -> None:
    plan = plan_issue(articles(5), 0, START, IssueConfig(max_articles=3), PAPER, SHANGHAI)
    assert len(plan.issue.article_ids) == 3
    assert plan.waiting == 2
    assert "2 articles wait for the next issue" in plan.reason


def test_too_few_articles_makes_no_issue_and_says_why() -> None:
    plan = plan_issue(articles(2), 3, START, IssueConfig(min_articles=3), PAPER, SHANGHAI)
    assert plan.issue is None
    assert "issue.min_articles = 3" in plan.reason and "--force" in plan.reason
    forced = plan_issue(articles(2), 3, START, IssueConfig(min_articles=3), PAPER, SHANGHAI,
                        force=True)
    assert forced.issue is not None and forced.issue.number == 4


def test_nothing_new_makes_no_issue_even_forced() -> None:
    plan = plan_issue([], 7, START, IssueConfig(min_articles=0), PAPER, SHANGHAI, force=True)
    assert plan.issue is None
    assert plan.reason == "no new articles since issue 7"


def test_last_manifest_number_reads_only_manifests() -> None:
    assert last_manifest_number(["0003.json", "0012.json", "notes.txt", ".0013.json.tmp"]) == 12
    assert last_manifest_number([]) == 0


# -- the Newsroom edge -----------------------------------------------------------------


def test_assemble_writes_manifest_records_issue_and_renders(tmp_path: Path) -> None:
    with make_room(tmp_path) as room:
        copy_page(room, "2026-03-02-01.txt")
        room.ingest()
        result = room.assemble()
        ids = [a.id for a in room.store.all_articles()]
        assert result.to_json() == {
            "issue": 1, "articles": ids, "reason": "issue 1 with 2 articles",
        }
        manifest = json.loads((room.config.issues_dir / "0001.json").read_text("utf-8"))
        assert manifest == {
            "number": 1,
            "date": "2026-03-02",
            "title": "职工时报 第1期 · 2026年3月2日",
            "articles": ids,
            "created": "2026-03-02T08:30:00+08:00",
        }
        assert room.store.issue(1).article_ids == tuple(ids)
        assert all(a.issue == 1 for a in room.store.all_articles())
        assert (room.config.public_dir / "issues" / "0001.html").is_file()
        assert result.render is not None and "feed.xml" in result.render.written


def test_an_article_is_never_in_two_issues(tmp_path: Path) -> None:
    clock = FixedClock(START)
    with make_room(tmp_path, clock) as room:
        copy_page(room, "2026-03-02-01.txt")
        room.ingest()
        first = room.assemble().issue
        clock.advance(days=1)
        copy_page(room, "2026-03-03-01.txt")
        room.ingest()  # re-reads the first page too: unchanged, stays in issue 1
        second = room.assemble().issue
        assert room.assemble().issue is None
    assert second.number == first.number + 1
    assert not set(first.article_ids) & set(second.article_ids)
    assert len(second.article_ids) == 1


def test_issue_numbers_are_never_reused(tmp_path: Path) -> None:
    """A lost database does not hand out a number a published manifest has."""
    with make_room(tmp_path) as room:
        room.config.issues_dir.mkdir(parents=True)
        (room.config.issues_dir / "0007.json").write_text("{}", "utf-8")
        copy_page(room, "2026-03-02-01.txt")
        room.ingest()
        assert room.assemble().issue.number == 8
        assert (room.config.issues_dir / "0007.json").read_text("utf-8") == "{}"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    with make_room(tmp_path) as room:
        copy_page(room, "2026-03-02-01.txt")
        room.ingest()
        result = room.assemble(dry_run=True)
        assert result.to_json()["issue"] == 1
        assert len(result.to_json()["articles"]) == 2
        assert result.reason.startswith("dry run: would make issue 1")
        assert not room.config.issues_dir.exists() or not any(room.config.issues_dir.iterdir())
        assert not room.config.public_dir.exists()
        assert room.store.last_issue_number() == 0
        assert len(room.store.unissued_articles()) == 2


def _cli(root: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, [*args, "--config", str(root / "config.toml")])
    return result.exit_code, json.loads(result.stdout) if "--json" in args else result.stdout


def test_cli_min_articles_reason_exit_zero_and_force(workdir: Path, room: Newsroom) -> None:
    config = workdir / "config.toml"
    config.write_text(
        config.read_text("utf-8").replace("min_articles = 1", "min_articles = 50"), "utf-8"
    )
    room.ingest()
    code, out = _cli(workdir, "assemble", "--json")
    assert code == 0
    assert out["issue"] is None and out["articles"] == []
    assert "issue.min_articles = 50" in out["reason"]
    assert not any((workdir / "issues").iterdir())

    code, out = _cli(workdir, "assemble", "--dry-run", "--force", "--json")
    assert code == 0 and out["issue"] == 1 and len(out["articles"]) == 9
    assert not any((workdir / "issues").iterdir())

    code, out = _cli(workdir, "assemble", "--force", "--json")
    assert code == 0 and out["issue"] == 1
    assert (workdir / "issues" / "0001.json").is_file()
    assert (workdir / "public" / "feed.xml").is_file()

    code, out = _cli(workdir, "assemble", "--json")
    assert code == 0 and out == {"issue": None, "articles": [],
                                 "reason": "no new articles since issue 1"}


def test_cli_render_reports_unchanged_files(workdir: Path, room: Newsroom) -> None:
    room.ingest()
    room.assemble()
    code, out = _cli(workdir, "render", "--json")
    assert code == 0 and out["written"] == [] and out["unchanged"] > 10
    code, text = _cli(workdir, "render")
    assert code == 0 and text.startswith("rendered: 0 files written")


def test_unissued_articles_stay_out_of_feeds(tmp_path: Path) -> None:
    with make_room(tmp_path, issue={"min_articles": 5}) as room:
        copy_page(room, "2026-03-02-01.txt")
        room.ingest()
        assert room.assemble().issue is None
        feed = (room.config.public_dir / "feed.json").read_text("utf-8")
        assert json.loads(feed)["items"] == []


def test_created_time_is_the_injected_clock(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 3, 2, 23, 59, tzinfo=UTC))
    with make_room(tmp_path, clock) as room:
        copy_page(room, "2026-03-02-01.txt")
        room.ingest()
        issue = room.assemble().issue
    assert issue.date == date(2026, 3, 3)
    assert issue.created == clock.now
