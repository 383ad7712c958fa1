"""Small things a user notices: the database's file mode, counts with the right wording,
the archive's date once, re-import counts that say what changed.

Wording tests run in English and in Chinese; the Chinese runs (`zh_catalog`) assert
the merged catalog's text (entries from i18n-pending/hints.po).
"""

from __future__ import annotations

import re
import sqlite3
import stat
from pathlib import Path

from gongbao_feed.config import load_config
from gongbao_feed.skeleton import init_folder
from gongbao_feed.store import Store

from .helpers_cli import run
from .test_hints import LANGS, ONE_ARTICLE, empty_inbox, lang  # noqa: F401 - the fixture

__all__ = ["lang"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the database file ---------------------------------------------------------------------


def test_init_makes_the_database_0600_in_a_0700_folder(tmp_path: Path) -> None:
    folder = tmp_path / "paper"
    init_folder(folder)
    assert mode(folder / "state") == 0o700
    assert mode(folder / "state" / "gongbao.db") == 0o600
    assert mode(folder / "state" / "secret.key") == 0o600


def test_a_database_made_by_any_command_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "data" / "news.db"
    Store(f"sqlite:///{path}").close()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_a_database_others_can_read_is_tightened_with_a_note(workdir: Path) -> None:
    db = load_config(workdir / "config.toml").state_dir / "gongbao.db"
    wal = db.with_name("gongbao.db-wal")
    with sqlite3.connect(db) as conn:  # leaves a -wal file beside it, as a live service does
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        held = sqlite3.connect(db)
        held.execute("SELECT 1").fetchall()
    db.chmod(0o644)
    if wal.exists():
        wal.chmod(0o644)
    code, _, err = run(workdir, "members", "list")
    held.close()
    assert code == 0
    assert mode(db) == 0o600
    assert (
        f"note: {db} could be read by other users of this machine (mode 0644); it holds "
        "members' names and addresses, so it is now readable by its owner only (0600)"
    ) in err
    code, _, err = run(workdir, "members", "list", "--json")  # (no "no members yet" note)
    assert code == 0 and err == ""  # said once: the file stays 0600


def test_postgresql_urls_are_not_files(tmp_path: Path) -> None:
    from gongbao_feed.store import sqlite_file

    assert sqlite_file("postgresql+psycopg://gongbao@db/gongbao") is None


# -- counts ----------------------------------------------------------------------------------


def one_article_issue(workdir: Path) -> None:
    inbox = empty_inbox(workdir)
    (inbox / "2026-11-23-night-school.md").write_text(ONE_ARTICLE, "utf-8")
    assert run(workdir, "ingest")[0] == 0


def test_one_article_is_one_article(workdir: Path, lang: str) -> None:
    one_article_issue(workdir)
    code, out, _ = run(workdir, "assemble")
    assert code == 0
    first = str(out).splitlines()[0]
    assert first.endswith({"en": "with 1 article", "zh": "1 篇稿件"}[lang])

    code, out, _ = run(workdir, "status")
    assert code == 0
    heading = {"en": "last issue", "zh": "最近一期"}[lang]
    (last,) = [t for t in str(out).splitlines() if t.startswith(heading)]
    assert {"en": ", 1 article, made ", "zh": "1 篇稿件"}[lang] in last
    if lang == "en":
        assert "1 articles" not in str(out)

    code, out, _ = run(workdir, "parse", str(workdir / "inbox" / "2026-11-23-night-school.md"))
    assert code == 0
    assert str(out).rstrip().endswith(
        {"en": "1 paragraph, 0 captions", "zh": "正文 1 段，图片说明 0 条"}[lang]
    )


def test_render_counts_files_in_the_right_form(workdir: Path, lang: str) -> None:
    one_article_issue(workdir)
    run(workdir, "assemble")
    article = next((workdir / "public" / "articles").glob("*.html"))
    article.unlink()
    code, out, _ = run(workdir, "render")
    assert code == 0
    unchanged = len([p for p in (workdir / "public").rglob("*") if p.is_file()]) - 1
    assert out == {
        "en": f"rendered: 1 file written, {unchanged} unchanged\n",
        "zh": f"已生成：写入 1 个文件，{unchanged} 个文件未变\n",
    }[lang]


# -- members re-imported -----------------------------------------------------------------------

SHEET = "email,name\na@example.com,甲\nb@example.com,乙\nc@example.com,丙\nd@example.com,丁\n" \
        "e@example.com,戊\n"


def test_a_reimport_says_what_changed(workdir: Path, lang: str) -> None:
    sheet = workdir / "members.csv"
    sheet.write_text(SHEET, "utf-8")
    expect = {
        "en": "members: {} new, {} changed, {} already present, {} failed\n",
        "zh": "会员：新增 {} 人，更新 {} 人，已在名单中且无变化 {} 人，出错 {} 行\n",
    }[lang]
    assert run(workdir, "members", "import", str(sheet))[1] == expect.format(5, 0, 0, 0)
    assert run(workdir, "members", "import", str(sheet))[1] == expect.format(0, 0, 5, 0)

    sheet.write_text(SHEET.replace("丙", "丙二") + "f@example.com,己\na@example.com,甲\n", "utf-8")
    code, out, _ = run(workdir, "members", "import", str(sheet))
    assert code == 0
    assert out == expect.format(1, 1, 4, 0).rstrip("\n") + {
        "en": "; 1 row repeated an earlier row of the file\n",
        "zh": "；文件中有 1 行与前面的行重复\n",
    }[lang]

    code, out, _ = run(workdir, "members", "import", str(sheet), "--json")
    assert out == {"imported": 0, "merged": 7, "changed": 0, "unchanged": 6, "failed": []}


def test_a_resubscribe_is_a_change(workdir: Path) -> None:
    sheet = workdir / "members.csv"
    sheet.write_text("email,name\na@example.com,甲\n", "utf-8")
    run(workdir, "members", "import", str(sheet))
    run(workdir, "members", "remove", "a@example.com")
    code, out, _ = run(workdir, "members", "import", str(sheet), "--resubscribe")
    assert (code, out) == (0, "members: 0 new, 1 changed, 0 already present, 0 failed\n")


# -- the archive's list of past issues -----------------------------------------------------------


def past_issues(workdir: Path) -> list[str]:
    html = (workdir / "public" / "index.html").read_text("utf-8")
    section = html[html.index('<section class="issues">'):]
    items = re.findall(r"<li>(.*?)</li>", section)
    return [re.sub(r"<[^>]+>", "", item) for item in items]


def test_the_list_of_past_issues_shows_the_date_once(workdir: Path) -> None:
    one_article_issue(workdir)
    run(workdir, "assemble")
    (item,) = past_issues(workdir)
    date = re.search(r"\d{4}年\d{1,2}月\d{1,2}日", item)
    assert date is not None
    assert item.count(date.group()) == 1
    assert re.fullmatch(r"职工时报 第1期 · \d{4}年\d{1,2}月\d{1,2}日 · 1 篇", item), item


def test_a_title_without_the_date_keeps_the_date_beside_it(workdir: Path) -> None:
    config = workdir / "config.toml"
    text = config.read_text("utf-8")
    config.write_text(re.sub(r'(?m)^title = .*$', 'title = "{paper} 第{number}期"', text,
                             count=1), "utf-8")
    one_article_issue(workdir)
    run(workdir, "assemble")
    (item,) = past_issues(workdir)
    assert re.fullmatch(r"职工时报 第1期 \d{4}年\d{1,2}月\d{1,2}日 · 1 篇", item), item
