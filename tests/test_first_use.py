"""What a first-time user ran into, in both languages: approving an issue nothing waits
for, `dkim keygen` beside a config, English left in Chinese output, member sheets with
the wrong separator, config typos, the README's first steps.

Like tests/test_hints.py, each test that shows text runs in English (`LANG=C.UTF-8`) and
in Chinese (`LANG=zh_CN.UTF-8`, marked `zh_catalog`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gongbao_feed.cli import main
from gongbao_feed.config import load_config
from gongbao_feed.outbox import eml_name
from gongbao_feed.outbox import test_folder as proof_folder
from gongbao_feed.publish import Newsroom
from gongbao_feed.web import create_app

from .conftest import FixedClock
from .helpers_cli import run
from .helpers_web import running
from .test_approval import EDITORS, approve_path, read_eml, require_approval
from .test_hints import lang  # noqa: F401  (the fixture: both languages)
from .test_schedule import add_members

# -- 1. approving an issue nothing waits for ---------------------------------------------

ALREADY_SENT = {
    "en": "note: issue 1 has already gone to every member: nothing to approve or send\n",
    "zh": "注意：第1期已发送给全体会员，无需批准或发送\n",
}
NOT_REQUIRED = {
    "en": "note: approval is not required in this working folder (issue.approval = \"none\"): "
          "issue 1 goes to the members without it; nothing recorded\n"
          "  hint: to have an editor approve each issue first, set issue.approval = "
          "\"required\" and issue.editors in config.toml\n",
    "zh": "注意：本工作目录不需要审核（issue.approval = \"none\"）：第1期无须批准即发给会员；"
          "未做记录\n"
          "  提示：如需每期先经编辑批准，请在 config.toml 中设置 issue.approval = \"required\" "
          "和 issue.editors\n",
}


def test_approving_an_issue_sent_to_everyone_says_there_is_nothing_to_do(
    workdir: Path, lang: str  # noqa: F811
) -> None:
    add_members(workdir / "config.toml", 2)
    for step in ("ingest", "assemble", "send"):
        assert run(workdir, step)[0] == 0
    code, out, err = run(workdir, "approve", "1")
    assert (code, out, err) == (0, "", ALREADY_SENT[lang])
    code, out, err = run(workdir, "approve", "1", "--json")
    assert out == {"issue": 1, "approved": False, "changed": False, "sent": True,
                   "required": False}
    with Newsroom.open(workdir / "config.toml") as room:
        assert room.store.approval(1) is None  # nothing recorded


def test_approving_without_approval_required_says_so(workdir: Path, lang: str) -> None:  # noqa: F811
    for step in ("ingest", "assemble"):
        assert run(workdir, step)[0] == 0
    code, out, err = run(workdir, "approve", "1")
    assert (code, out, err) == (0, "", NOT_REQUIRED[lang])
    with Newsroom.open(workdir / "config.toml") as room:
        assert room.store.approval(1) is None


def test_approving_again_after_the_send_says_it_has_gone(workdir: Path, lang: str) -> None:  # noqa: F811
    require_approval(workdir / "config.toml")
    add_members(workdir / "config.toml", 2)
    for step in ("ingest", "assemble"):
        assert run(workdir, step)[0] == 0
    code, _out, err = run(workdir, "approve", "1", "--by", "王编辑")
    assert code == 0 and err.startswith({"en": "note: the service sends it",
                                         "zh": "注意：服务将在"}[lang])
    assert run(workdir, "send", "--issue", "1")[0] == 0
    code, out, err = run(workdir, "approve", "1")
    assert code == 0
    assert str(out).startswith({"en": "issue 1: already approved by 王编辑 at ",
                                "zh": "第1期：已由 王编辑 于 "}[lang])
    assert err == {"en": "note: issue 1 has already gone to every member: nothing more to send\n",
                   "zh": "注意：第1期已发送给全体会员，无需再发送\n"}[lang]


def test_the_approve_page_says_a_sent_issue_has_gone(workdir: Path) -> None:
    config_path = require_approval(workdir / "config.toml")
    add_members(config_path, 2)
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    config = load_config(config_path)
    with Newsroom(config, clock=clock) as room:
        room.publish()
        path = approve_path(read_eml(proof_folder(workdir / "outbox", 1) / eml_name(EDITORS[0])))
        with running(create_app(config, room.store, clock=clock)) as base, \
                httpx.Client(base_url=base) as client:
            done = client.post(path, data={"approve": "yes"})
            assert "已批准。系统将在15分钟内发送给会员。" in done.text
            assert room.send(1).sent == 2
            again = client.get(path)
            assert "本期已发送给全体会员，无需再操作。" in again.text
            assert "系统将在" not in again.text


# -- 2. dkim keygen beside a config ------------------------------------------------------


def keygen(cwd: Path, *args: str) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        result = CliRunner().invoke(main, ["dkim", "keygen", "--selector", "202611",
                                           "--domain", "news.example.org", *args])
    return result.exit_code, result.stdout, result.stderr


def key_line(err: str) -> str:
    found = re.search(r'^  private_key_file = "(.*)"$', err, re.M)
    assert found, err
    return found.group(1)


def test_keygen_writes_into_the_configs_folder_and_prints_the_line_it_reads(
    workdir: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(workdir / "config.toml")
    code, _out, err = keygen(elsewhere, "--config", config)
    assert code == 0, err
    assert (workdir / "dkim-202611.key").is_file() and list(elsewhere.iterdir()) == []
    assert key_line(err) == "dkim-202611.key"

    code, _out, err = keygen(elsewhere, "--config", config, "--out", "../paper/keys/k.key")
    assert code == 0, err
    assert key_line(err) == "keys/k.key"  # relative to the config's folder, not here
    code, _out, err = keygen(elsewhere, "--config", config, "--out", "outside.key")
    assert code == 0, err
    assert key_line(err) == str(elsewhere / "outside.key")  # outside it: absolute

    code, _out, err = keygen(elsewhere, "--selector", "202612")  # no config here: as before
    assert code == 0, err
    assert (elsewhere / "dkim-202612.key").is_file() and key_line(err) == "dkim-202612.key"


# -- 3. no English left in a Chinese run -------------------------------------------------


def test_status_names_the_jobs_in_the_operators_language(workdir: Path, lang: str) -> None:  # noqa: F811
    code, out, _err = run(workdir, "status")
    assert code == 0
    lines = str(out).splitlines()
    assert lines[1].startswith({"en": "publish: cron 30 7 * * * (Asia/Shanghai); next ",
                                "zh": "出版：cron 30 7 * * *（Asia/Shanghai）；下次 "}[lang])
    assert lines[2].startswith({"en": "ingest: every 15 min; next ",
                                "zh": "收稿：每 15 分钟；下次 "}[lang])
    code, out, _err = run(workdir, "status", "--json")
    assert isinstance(out, dict) and [j["id"] for j in out["jobs"]][:2] == ["publish", "ingest"]


def test_parse_names_the_byline_roles_in_the_operators_language(
    workdir: Path, lang: str  # noqa: F811
) -> None:
    code, out, _err = run(workdir, "parse", str(workdir / "inbox" / "2026-11-20-01.txt"))
    assert code == 0
    lines = str(out).splitlines()
    assert lines[3] == {
        "en": "    本报讯 | reporters=韩子墨,何清 interns=宋雨桐 photographers=吴海峰 "
              "| 3 paragraphs, 1 caption",
        "zh": "    本报讯 | 记者：韩子墨、何清 实习生：宋雨桐 摄影：吴海峰 "
              "| 正文 3 段，图片说明 1 条",
    }[lang]
    code, out, _err = run(workdir, "parse", str(workdir / "inbox" / "2026-11-20-01.txt"),
                          "--json")
    assert isinstance(out, dict)
    assert out["articles"][1]["byline"]["reporters"] == ["韩子墨", "何清"]  # --json keeps keys


def test_article_and_member_states_are_shown_in_the_operators_language(
    workdir: Path, lang: str  # noqa: F811
) -> None:
    assert run(workdir, "ingest")[0] == 0
    _code, out, _err = run(workdir, "articles", "list")
    first = str(out).splitlines()[0].split("\t")
    assert first[1] == {"en": "new", "zh": "新稿"}[lang]
    _code, out, _err = run(workdir, "articles", "show", first[0])
    assert {"en": "status:    new", "zh": "状态：    新稿"}[lang] in str(out).splitlines()
    _code, out, _err = run(workdir, "articles", "list", "--json")
    assert isinstance(out, list) and out[0]["status"] == "new"

    run(workdir, "members", "add", "wang@example.com", "--name", "王")
    run(workdir, "members", "remove", "wang@example.com")
    _code, out, _err = run(workdir, "members", "list")
    row = str(out).rstrip("\n").split("\t")
    assert (row[2], row[4]) == {"en": ("unsubscribed", "removed"),
                                "zh": ("已退订", "由编辑部移除")}[lang]
    _code, out, _err = run(workdir, "members", "list", "--json")
    assert isinstance(out, list) and out[0]["reason"] == "removed"


@pytest.mark.parametrize(("address", "en", "zh"), [
    ("bad-email", "it has no @", "缺少 @"),
    ("wang@localhost", "the domain after the @ has no dot (e.g. example.com)",
     "@ 后面的域名没有点（应如 example.com）"),
    ("wang@", "nothing comes after the @", "@ 后面没有内容"),
    ("wang li@example.com",
     "the part before the @ contains characters an address cannot have: SPACE",
     "@ 前面的部分含有地址中不能有的字符：SPACE"),
])
def test_a_bad_address_is_explained_in_the_operators_language(
    workdir: Path, lang: str, address: str, en: str, zh: str  # noqa: F811
) -> None:
    code, _out, err = run(workdir, "members", "add", address)
    assert code == 1
    assert err == {
        "en": f"error: {address!r} is not a valid email address: {en}\n",
        "zh": f"错误：{address!r} 不是有效的电子邮件地址：{zh}\n",
    }[lang]


def test_a_file_that_cannot_be_read_says_why_in_the_operators_language(
    workdir: Path, lang: str  # noqa: F811
) -> None:
    missing = workdir / "nope.txt"
    code, _out, err = run(workdir, "ingest", str(missing))
    assert code == 1
    assert {"en": f"{missing}: cannot read: no such file or folder",
            "zh": f"{missing}: 无法读取：文件或目录不存在"}[lang] in err
    inbox = workdir / "inbox"
    code, _out, err = run(workdir, "members", "import", str(inbox))  # click's own check
    assert code == 2
    assert err.endswith({"en": f"Error: Invalid value for 'FILE': File '{inbox}' is a directory.\n",
                         "zh": f"错误：'FILE' 的值无效：文件 '{inbox}' 是目录。\n"}[lang])


def test_config_errors_are_framed_alike_in_the_operators_language(
    workdir: Path, lang: str  # noqa: F811
) -> None:
    config = workdir / "config.toml"
    text = config.read_text("utf-8")
    text = text.replace('transport = "outbox"', 'transport = "mailer"')
    text = text.replace('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"')
    config.write_text(text, "utf-8")
    code, _out, err = run(workdir, "status")
    assert code == 1
    assert {
        "en": "  paper.timezone: unknown time zone 'Mars/Olympus'; expected an IANA name such "
              "as Asia/Shanghai\n"
              "  email.transport: input should be 'outbox' or 'smtp' (got 'mailer')\n",
        "zh": "  paper.timezone：未知的时区 'Mars/Olympus'；应为 IANA 时区名，如 Asia/Shanghai\n"
              "  email.transport：应为 'outbox' 或 'smtp'（实为 'mailer'）\n",
    }[lang] in err

    config.write_text(text.replace('transport = "mailer"', 'transport = \n'), "utf-8")
    code, _out, err = run(workdir, "status")
    line = text[:text.index('transport = "mailer"')].count("\n") + 1
    assert err.startswith({
        "en": f"error: {config}, line {line}, column 13: not valid TOML: Invalid value\n",
        "zh": f"错误：{config}：第 {line} 行第 13 列不是有效的 TOML：Invalid value\n",
    }[lang])


def test_clicks_missing_option_ends_with_the_operators_full_stop(
    workdir: Path, lang: str  # noqa: F811
) -> None:
    code, _out, err = run(workdir, "articles", "withdraw", "2026-11-20-cfe1df6a")
    assert code == 2
    assert err.endswith({"en": "Error: Missing option '--reason'.\n",
                         "zh": "错误：缺少选项 '--reason'。\n"}[lang])


def test_the_404_page_is_chinese_first_like_every_plain_answer(workdir: Path) -> None:
    config = load_config(workdir / "config.toml")
    with Newsroom(config) as room, running(create_app(config, room.store)) as base, \
            httpx.Client(base_url=base) as client:
        answer = client.get("/no-such-page.html")
    assert answer.status_code == 404
    assert answer.text == ("404：本站没有这个页面。请从首页重新打开。\n\n"
                           "404 Not Found: there is no such page here.\n")


# -- 4. member sheets with another separator; an empty list ------------------------------

RUN_TOGETHER = {
    "en": "error: {sheet}: line 1: the header '姓名，邮箱' is column names separated by "
          "full-width commas (，); the columns must be separated by commas (,)\n"
          "  hint: replace them with ASCII commas (,) throughout the file, e.g. `邮箱,姓名`, "
          "or save the sheet from Excel or WPS as CSV UTF-8\n",
    "zh": "错误：{sheet}: 第 1 行：表头 '姓名，邮箱' 是用中文逗号（，）隔开的列名；"
          "各列须用英文逗号（,）分隔\n"
          "  提示：请把全文件中的这些分隔符都换成英文逗号（,），例如 `邮箱,姓名`，"
          "或用 Excel、WPS 把表格另存为 CSV UTF-8\n",
}


def test_a_header_run_together_by_a_full_width_comma_is_named(
    workdir: Path, lang: str  # noqa: F811
) -> None:
    sheet = workdir / "members-fw.csv"
    sheet.write_text("姓名，邮箱\n王，wang@example.com\n", "utf-8")
    code, out, err = run(workdir, "members", "import", str(sheet))
    assert (code, out, err) == (1, "", RUN_TOGETHER[lang].format(sheet=sheet))


def test_a_cell_of_names_in_a_workbook_asks_for_a_cell_each(workdir: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["邮箱、姓名"])
    book.active.append(["wang@example.com、王"])
    sheet = workdir / "members.xlsx"
    book.save(sheet)
    code, _out, err = run(workdir, "members", "import", str(sheet))
    assert code == 1
    assert err.startswith(f"error: {sheet}: row 1: the header '邮箱、姓名' is column names "
                          "separated by enumeration commas (、); each column name must be in "
                          "a cell of its own\n")


def test_a_semicolon_sheet_is_read(workdir: Path) -> None:
    sheet = workdir / "members-sc.csv"
    sheet.write_text("姓名;邮箱\n王;wang@example.com\n李;li@example.com\n", "utf-8")
    code, out, err = run(workdir, "members", "import", str(sheet))
    assert code == 0, err
    _code, out, _err = run(workdir, "members", "list", "--json")
    assert isinstance(out, list)
    assert [(m["email"], m["name"]) for m in out] == [("li@example.com", "李"),
                                                      ("wang@example.com", "王")]


def test_an_empty_member_list_says_how_to_add_members(workdir: Path, lang: str) -> None:  # noqa: F811
    code, out, err = run(workdir, "members", "list")
    assert (code, out) == (0, "")
    assert err == {
        "en": "note: no members yet\n"
              "  hint: add members with `gongbao-feed members import FILE.csv` (a sheet with "
              "the columns email and name) or `gongbao-feed members add EMAIL --name NAME`\n",
        "zh": "注意：还没有会员\n"
              "  提示：请用 `gongbao-feed members import 文件.csv`（含 email 和 name 两列的表格）"
              "或 `gongbao-feed members add 邮箱 --name 姓名` 添加会员\n",
    }[lang]
    code, out, err = run(workdir, "members", "list", "--json")
    assert (code, out) == (0, [])


# -- 5. a typo in the config -------------------------------------------------------------

TYPO = {
    "en": "  web.prot: unknown key; did you mean port? (expected one of: host, port, "
          "request_timeout, keep_alive_timeout, max_connections)\n"
          "  schedul: unknown key; did you mean schedule? (expected one of: paper, paths, "
          "database, issue, feed, email, smtp, schedule, log, web, dkim, sections, bounces, "
          "signup)\n"
          "  hint: compare with the commented config.toml that `gongbao-feed init NEWDIR` "
          "writes (the usual keys, with their defaults); every key is described in the "
          "configuration reference of the project's README.md\n",
    "zh": "  web.prot：未知的键；是否想写 port？（应为以下之一：host, port, request_timeout, "
          "keep_alive_timeout, max_connections）\n"
          "  schedul：未知的键；是否想写 schedule？（应为以下之一：paper, paths, database, issue, "
          "feed, email, smtp, schedule, log, web, dkim, sections, bounces, signup）\n"
          "  提示：可对照 `gongbao-feed init 新目录` 生成的带注释的 config.toml（常用的键及其"
          "默认值）；所有键的说明见项目 README.md 中的配置说明\n",
}


def test_a_typo_in_a_section_or_key_suggests_the_name_meant(
    workdir: Path, lang: str  # noqa: F811
) -> None:
    config = workdir / "config.toml"
    text = config.read_text("utf-8").replace("[schedule]", "[schedul]").replace(
        "port = 8080", "prot = 8080")
    config.write_text(text, "utf-8")
    code, _out, err = run(workdir, "status")
    assert code == 1
    assert err.endswith(TYPO[lang])


def test_a_key_like_no_other_gets_no_suggestion(workdir: Path) -> None:
    config = workdir / "config.toml"
    config.write_text(config.read_text("utf-8").replace("max_items = 50", "zzz = 1"), "utf-8")
    code, _out, err = run(workdir, "status")
    assert code == 1
    assert "feed.zzz: unknown key; expected one of: " in err and "did you mean" not in err


# -- 6. the README's first steps work as written -----------------------------------------


def test_the_readmes_start_anywhere_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line of README's "Start anywhere" block, with ~ a temporary home and
    /path/to/pages the clone's example inbox (as the README says it may be)."""
    import shlex
    import shutil

    repo = Path(__file__).resolve().parent.parent
    readme = (repo / "README.md").read_text("utf-8")
    block = readme.split("## Start anywhere\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    ran = []
    for raw in block.splitlines():
        line = raw.split("#", 1)[0].strip().replace("~", str(home))
        line = line.replace("/path/to/pages", str(repo / "inbox"))
        words = shlex.split(line)
        if words[0] == "cd":
            monkeypatch.chdir(words[1])
        elif words[0] == "cp":
            sources = sorted(Path(words[1]).parent.glob(Path(words[1]).name))
            assert sources, line
            for source in sources:
                shutil.copy(source, words[2])
        else:
            assert words[0] == "gongbao-feed", line
            if words[1] == "parse":  # a page where the operator has it, not one init made
                assert not Path(words[2]).resolve().is_relative_to(home / "paper"), line
            result = CliRunner().invoke(main, words[1:])
            assert result.exit_code == 0, (line, result.output)
            ran.append(words[1])
            if words[1] == "init":
                assert list((home / "paper" / "inbox").iterdir()) == []  # "inbox/ (empty)"
    assert ran == ["init", "parse", "ingest"]
    assert (home / "paper" / "inbox" / "2026-11-20-01.txt").is_file()
