"""Hints where users get stuck, in both languages: the empty inbox, no members, a busy
port, an office document in the inbox, a page with no articles, page warnings in the
service log.

Each hint test runs in English (`LANG=C.UTF-8`) and in Chinese (`LANG=zh_CN.UTF-8`).
The Chinese runs are marked `zh_catalog`: they assert the text of the merged catalog
(gongbao_feed/locale/zh_CN), whose entries for these strings come from
i18n-pending/hints.po.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gongbao_feed.ingest import sniff_document
from gongbao_feed.schedule import Service

from .helpers_cli import run

ZH = pytest.param("zh", marks=pytest.mark.zh_catalog, id="zh")
LANGS = [pytest.param("en", id="en"), ZH]
LOCALE = {"en": "C.UTF-8", "zh": "zh_CN.UTF-8"}


def locale_env(lang: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with LANG set for `lang` and nothing overriding it."""
    out = dict(os.environ if env is None else env)
    for key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        out.pop(key, None)
    out["LANG"] = LOCALE[lang]
    return out


@pytest.fixture(params=LANGS)
def lang(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The operator's language for this test, set the way the operator sets it."""
    for key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LANG", LOCALE[request.param])
    return str(request.param)


def empty_inbox(workdir: Path) -> Path:
    inbox = workdir / "inbox"
    for page in inbox.iterdir():
        page.unlink()
    return inbox


# -- the empty inbox -----------------------------------------------------------------

EMPTY_INBOX = {
    "en": (
        "note: the inbox {inbox} is empty: nothing to ingest\n"
        "  hint: put the day's pages there as plain-text files (.txt, UTF-8 or GB18030), "
        "or hand-written articles as Markdown (.md), then run `gongbao-feed ingest` again\n"
    ),
    "zh": (
        "注意：收稿目录 {inbox} 是空的，没有可入库的稿件\n"
        "  提示：请把当天的版面稿件以纯文本文件（.txt，UTF-8 或 GB18030 编码）放进该目录，"
        "手写稿件可用 Markdown（.md），然后重新运行 `gongbao-feed ingest`\n"
    ),
}


def test_an_empty_inbox_says_so_and_what_goes_there(workdir: Path, lang: str) -> None:
    inbox = empty_inbox(workdir)
    (inbox / ".gitkeep").write_text("")  # hidden files are not pages
    code, out, err = run(workdir, "ingest")
    assert code == 0
    assert err == EMPTY_INBOX[lang].format(inbox=inbox)
    assert out == {"en": "ingested: 0 new, 0 updated, 0 unchanged, 0 failed\n",
                   "zh": "收稿：新稿 0 篇，更新 0 篇，未变 0 篇，失败 0 个文件\n"}[lang]

    code, out, err = run(workdir, "ingest", "--json")  # stdout stays the stable JSON
    assert code == 0
    assert out == {"new": 0, "updated": 0, "unchanged": 0, "failed": [], "gone": []}
    assert err == EMPTY_INBOX["en"].format(inbox=inbox)  # --json runs in English throughout


def test_a_missing_inbox_says_where_it_was_looked_for(workdir: Path, lang: str) -> None:
    inbox = empty_inbox(workdir)
    inbox.rmdir()
    code, _, err = run(workdir, "ingest")
    assert code == 0
    assert err == {
        "en": f"note: the inbox {inbox} does not exist: nothing to ingest\n"
              "  hint: make that folder and put the pages in it, or set paths.inbox in "
              "config.toml to the folder where the pages arrive\n",
        "zh": f"注意：收稿目录 {inbox} 不存在，没有可入库的稿件\n"
              "  提示：请建立该目录并把版面稿件放进去，或在 config.toml 中把 paths.inbox "
              "设为稿件实际存放的目录\n",
    }[lang]


def test_named_files_never_get_the_empty_inbox_note(workdir: Path) -> None:
    empty_inbox(workdir)
    page = workdir / "page.md"
    page.write_text(ONE_ARTICLE, "utf-8")
    code, _, err = run(workdir, "ingest", str(page))
    assert code == 0 and err == ""


# -- no members --------------------------------------------------------------------------

NO_MEMBERS = {
    "en": (
        "note: there are no active members to send issue 1 to\n"
        "  hint: add members with `gongbao-feed members import FILE.csv` (a sheet with the "
        "columns email and name) or `gongbao-feed members add EMAIL --name NAME`, then run "
        "`gongbao-feed send` again\n"
    ),
    "zh": (
        "注意：没有可发送的会员（名单为空或都已退订），第1期无人可发\n"
        "  提示：请用 `gongbao-feed members import 文件.csv`（含 email 和 name 两列的表格）"
        "或 `gongbao-feed members add 邮箱 --name 姓名` 添加会员，然后重新运行 "
        "`gongbao-feed send`\n"
    ),
}


def test_a_send_with_no_members_says_how_to_add_them(workdir: Path, lang: str) -> None:
    assert run(workdir, "ingest")[0] == 0
    assert run(workdir, "assemble")[0] == 0
    code, out, err = run(workdir, "send")
    assert code == 0
    assert out == {"en": "issue 1: 0 sent, 0 skipped, 0 failed\n",
                   "zh": "第1期：发送 0 封，跳过 0 封，失败 0 封\n"}[lang]
    assert err == NO_MEMBERS[lang]

    code, out, err = run(workdir, "send", "--dry-run")
    assert code == 0 and out == ""
    assert err.endswith(NO_MEMBERS[lang])

    code, out, err = run(workdir, "send", "--json")
    assert out == {"issue": 1, "sent": 0, "skipped": 0, "failed": []}
    assert err == NO_MEMBERS["en"]  # --json runs in English throughout


def test_everyone_unsubscribed_is_no_members_too(workdir: Path) -> None:
    run(workdir, "members", "add", "wang@example.com")
    run(workdir, "members", "remove", "wang@example.com")
    run(workdir, "ingest")
    run(workdir, "assemble")
    code, _, err = run(workdir, "send")
    assert code == 0 and err.startswith("note: there are no active members to send issue 1 to")


def test_a_send_with_members_has_no_such_note(workdir: Path) -> None:
    run(workdir, "members", "add", "wang@example.com")
    run(workdir, "ingest")
    run(workdir, "assemble")
    code, out, err = run(workdir, "send")
    assert (code, out, err) == (0, "issue 1: 1 sent, 0 skipped, 0 failed\n", "")


def test_the_services_publish_logs_the_no_members_hint(
    workdir: Path, lang: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gongbao_feed")
    report = Service(workdir / "config.toml").run_once()
    assert report is not None and report.send is not None and report.send.sent == 0
    message, hint = NO_MEMBERS[lang].splitlines()
    message = message.split(" ", 1)[1] if lang == "en" else message.split("：", 1)[1]
    hint = hint.split(": ", 1)[1] if lang == "en" else hint.split("：", 1)[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f'publish: {message} [hint="{hint}"]' in warnings


# -- a busy port -------------------------------------------------------------------------

BUSY = {
    "en": (
        "error: cannot serve on 127.0.0.1:{port}: the address is already in use (another "
        "program, or another `gongbao-feed serve`, listens there)\n"
        "  hint: choose another port with `--port PORT`, or set web.port in config.toml "
        "(`ss -ltnp` shows which program holds this one)\n"
    ),
    "zh": (
        "error: 无法在 127.0.0.1:{port} 上提供服务：该地址已被占用（另一个程序或另一个 "
        "`gongbao-feed serve` 正在监听）\n"
        "  hint: 请用 `--port 端口号` 换一个端口，或在 config.toml 中设置 web.port"
        "（`ss -ltnp` 可查看是哪个程序占用了该端口）\n"
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGS)
def test_serve_on_a_busy_port_stops_before_saying_serving(workdir: Path, language: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", "from gongbao_feed.cli import main; main()", "serve",
             "--config", str(workdir / "config.toml"), "--port", str(port)],
            capture_output=True, text=True, timeout=60, env=locale_env(language),
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "serving" not in done.stderr
    assert "http://" not in done.stderr  # the "serving … on http://…" line, in any language
    # "error:" and "hint:" are the existing labels, translated with the rest of the catalog.
    expected = BUSY[language].format(port=port)
    if language == "zh":
        assert done.stderr.splitlines()[0].endswith(expected.splitlines()[0].split(" ", 1)[1])
        assert done.stderr.splitlines()[1].endswith(expected.splitlines()[1].split(": ", 1)[1])
    else:
        assert done.stderr == expected


def test_bind_names_a_host_that_is_not_this_machines(lang: str) -> None:
    from gongbao_feed.errors import GongbaoError
    from gongbao_feed.web import bind

    with pytest.raises(GongbaoError) as caught:
        bind("192.0.2.1", 8080)  # TEST-NET-1: never an address of this machine
    assert caught.value.message == {
        "en": "cannot serve on 192.0.2.1:8080: 192.0.2.1 is not an address of this machine",
        "zh": "无法在 192.0.2.1:8080 上提供服务：192.0.2.1 不是本机的地址",
    }[lang]
    assert caught.value.hint is not None and "web.host" in caught.value.hint


# -- office documents and other files that are not pages -------------------------------------


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def ole2(stream: str) -> bytes:
    """An OLE2 compound file's header, some padding and a directory entry's name."""
    return bytes.fromhex("D0CF11E0A1B11AE1") + bytes(504) + stream.encode("utf-16-le") + bytes(64)


DOCX = zipped({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"})
XLSX = zipped({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
PPTX = zipped({"[Content_Types].xml": b"<Types/>", "ppt/presentation.xml": b"<p/>"})
ODT = zipped({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x/>"})
ODS = zipped({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"})
OFD = zipped({"OFD.xml": b"<ofd:OFD/>"})
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
RTF = rb"{\rtf1\ansi\ansicpg936 {\fonttbl\f0 SimSun;} \f0 \'b1\'be\'b1\'a8\'d1\'b6}"

WORD_HINT = (
    "open it in Word or WPS and save it as plain text (File → Save As → Plain Text, .txt; "
    "encoding UTF-8 or GB18030), then put the .txt file in the inbox instead"
)
PDF_HINT = (
    "copy the text out of it (or export it as text) into a plain-text .txt file "
    "(UTF-8 or GB18030), and put that in the inbox instead"
)
SHEET_HINT = (
    "pages come as plain text, not spreadsheets: copy the articles into a plain-text .txt "
    "file (UTF-8 or GB18030); a member list goes to `gongbao-feed members import` as CSV"
)
COPY_HINT = (
    "copy its text into a plain-text .txt file (UTF-8 or GB18030) and put that in the "
    "inbox instead"
)


@pytest.mark.parametrize(
    ("data", "suffix", "what", "hint"),
    [
        (DOCX, ".docx", "a Word document (.docx)", WORD_HINT),
        (DOCX, ".txt", "a Word document (.docx)", WORD_HINT),  # content decides, not the name
        (DOCX, ".wps", "a WPS document (.wps)", WORD_HINT),
        (ole2("WordDocument"), ".doc", "a Word document (.doc)", WORD_HINT),
        (ole2("WordDocument"), ".wps", "a WPS document (.wps)", WORD_HINT),
        (ole2("Workbook"), ".xls", "an Excel workbook (.xls)", SHEET_HINT),
        (ole2("Workbook"), ".et", "a WPS spreadsheet (.et)", SHEET_HINT),
        (ole2("PowerPoint Document"), ".ppt", "a PowerPoint presentation (.ppt)", COPY_HINT),
        (ole2("Root Entry"), "", "an Office document (Word, Excel or WPS)", WORD_HINT),
        (XLSX, ".xlsx", "an Excel workbook (.xlsx)", SHEET_HINT),
        (PPTX, ".pptx", "a PowerPoint presentation (.pptx)", COPY_HINT),
        (ODT, ".odt", "an OpenDocument text (.odt)", WORD_HINT),
        (ODS, ".ods", "an OpenDocument spreadsheet (.ods)", SHEET_HINT),
        (OFD, ".ofd", "an OFD document (.ofd)", PDF_HINT),
        (PDF, ".pdf", "a PDF file", PDF_HINT),
        (RTF, ".rtf", "an RTF document", WORD_HINT),
        (zipped({"2026-11-20-01.txt": b"x"}), ".zip", "a ZIP archive",
         "unpack it and put the pages themselves (plain-text .txt files) in the inbox"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", ".jpg", "an image (a scan or photo of a page)",
         "the text cannot be read from a picture: ask for the page as plain text "
         "(.txt, UTF-8 or GB18030)"),
    ],
)
def test_what_a_document_is_and_what_to_export_instead(
    monkeypatch: pytest.MonkeyPatch, data: bytes, suffix: str, what: str, hint: str
) -> None:
    monkeypatch.setenv("LANGUAGE", "en")
    assert sniff_document(data, suffix) == (what, hint)


@pytest.mark.parametrize("text", ["本报讯 平常的一页。\n", "%PD 不是 PDF\n", "PK 开头的标题\n"])
def test_text_pages_are_not_taken_for_documents(text: str) -> None:
    assert sniff_document(text.encode("utf-8"), ".txt") is None
    assert sniff_document(text.encode("gb18030"), ".txt") is None


OFFICE_IN_INBOX = {
    "en": {
        "docx": ("a Word document (.docx), not a text page", WORD_HINT),
        "pdf": ("a PDF file, not a text page", PDF_HINT),
        "xls": ("an Excel workbook (.xls), not a text page", SHEET_HINT),
    },
    "zh": {
        "docx": ("Word 文档（.docx），不是纯文本稿件",
                 "请用 Word 或 WPS 打开，另存为纯文本（文件 → 另存为 → 纯文本 .txt，"
                 "编码选 UTF-8 或 GB18030），再把这个 .txt 文件放进收稿目录"),
        "pdf": ("PDF 文件，不是纯文本稿件",
                "请把其中的文字复制出来（或导出为文本），"
                "存成纯文本 .txt 文件（UTF-8 或 GB18030 编码），再放进收稿目录"),
        "xls": ("Excel 工作簿（.xls），不是纯文本稿件",
                "版面稿件须是纯文本，不能是表格：请把稿件复制到纯文本 .txt 文件"
                "（UTF-8 或 GB18030 编码）；会员名单请另存为 CSV，"
                "用 `gongbao-feed members import` 导入"),
    },
}


def test_office_files_in_the_inbox_say_what_to_export(workdir: Path, lang: str) -> None:
    inbox = workdir / "inbox"
    (inbox / "2026-11-23-03.docx").write_bytes(DOCX)
    (inbox / "2026-11-23-04.pdf").write_bytes(PDF)
    (inbox / "2026-11-23-05.xls").write_bytes(ole2("Workbook"))
    code, out, err = run(workdir, "ingest", "--json")
    assert code == 1  # a file failed
    assert isinstance(out, dict) and out["new"] == 9  # the good pages went in all the same
    failed = {Path(f["path"]).suffix[1:]: f["error"] for f in out["failed"]}
    # --json is English in every locale: other tools read it.
    assert failed == {kind: what for kind, (what, _) in OFFICE_IN_INBOX["en"].items()}
    code, _out, err = run(workdir, "ingest")  # the operator's own language
    assert code == 1
    expected = OFFICE_IN_INBOX[lang]
    label = {"en": "  hint: ", "zh": "  提示："}[lang]
    for kind, (what, hint) in expected.items():
        name = next(inbox.glob(f"*.{kind}"))
        assert f"{name}: {what}\n{label}{hint}\n" in err


def test_parse_of_a_word_file_says_what_to_do(workdir: Path, lang: str) -> None:
    doc = workdir / "inbox" / "稿件.doc"
    doc.write_bytes(ole2("WordDocument"))
    code, out, err = run(workdir, "parse", str(doc))
    assert code == 1 and out == ""
    what = {"en": "a Word document (.doc), not a text page",
            "zh": "Word 文档（.doc），不是纯文本稿件"}[lang]
    assert f"{doc}: {what}\n" in err
    assert OFFICE_IN_INBOX[lang]["docx"][1] in err


# -- a page with no articles ---------------------------------------------------------------

PAGE_SHAPE = {
    "en": "a page is plain text with each article's headline on a line of its own (one to "
          "three short lines), then its text in paragraphs, e.g. a lead such as "
          "本报讯（记者 张三）…; see “The page format” in README",
    "zh": "版面稿件应为纯文本：每篇稿件先是单独成行的标题（一至三行短句），再是分段的正文，"
          "如以“本报讯（记者 张三）…”开头的导语；详见 README 中的“The page format”一节",
}
HINT = {"en": "  hint: ", "zh": "  提示："}

#: One paragraph and no headline: the reader takes the page for one article.
HEADLESS = "这段文字没有标题，也没有导语，从头到尾只是一段话，一直写下去，到这里才结束。\n"


def test_a_page_with_no_articles_fails_with_what_a_page_looks_like(
    workdir: Path, lang: str
) -> None:
    blank = workdir / "inbox" / "2026-11-24-01.txt"
    blank.write_text("\n\n\f\n", "utf-8")
    code, out, err = run(workdir, "ingest")
    assert code == 1
    assert out.endswith({"en": "1 failed\n", "zh": "失败 1 个文件\n"}[lang])
    none_found = {"en": "no articles found", "zh": "没有找到稿件"}[lang]
    assert f"{blank}: {none_found}\n{HINT[lang]}{PAGE_SHAPE[lang]}\n" in err

    code, out, err = run(workdir, "parse", str(blank))  # parse stores nothing: a warning
    assert code == 0 and out == ""
    first = {"en": f"warning: {blank}: no articles found\n",
             "zh": f"警告：{blank}：没有找到稿件\n"}[lang]
    assert err.endswith(first + HINT[lang] + PAGE_SHAPE[lang] + "\n")


def test_a_page_without_a_headline_warns_with_what_a_page_looks_like(
    workdir: Path, lang: str
) -> None:
    page = workdir / "inbox" / "2026-11-24-02.txt"
    page.write_text(HEADLESS, "utf-8")
    code, _, err = run(workdir, "ingest", str(page))
    assert code == 0  # read as one article, with a warning
    label = {"en": "warning: ", "zh": "警告："}[lang]
    assert f"{label}{page}: {PAGE_SHAPE[lang]}\n" in err

    code, _, err = run(workdir, "parse", str(page))
    assert code == 0
    assert err.endswith(HINT[lang] + PAGE_SHAPE[lang] + "\n")


# -- page warnings in the service's log ----------------------------------------------------

PAGE_WITH_HEADER = """第3版

区总工会开设职工夜校

本报讯（记者 孟晓岚）区总工会职工夜校本周开课，首批开设电工、烹饪和手机摄影三门课程。

夜校每周二、四晚上授课，职工凭会员证免费报名。
"""


def test_page_warnings_reach_the_service_log_once_with_the_file_name(
    workdir: Path, lang: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = empty_inbox(workdir)
    header = inbox / "2026-11-25-01.txt"
    header.write_text(PAGE_WITH_HEADER, "utf-8")
    headless = inbox / "2026-11-25-02.txt"
    headless.write_text(HEADLESS, "utf-8")
    blank = inbox / "2026-11-25-03.txt"
    blank.write_text("\n", "utf-8")
    caplog.set_level(logging.INFO, logger="gongbao_feed")
    service = Service(workdir / "config.toml")

    service.ingest()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    line_1 = {"en": "line 1: ", "zh": "第 1 行："}[lang]
    assert any(m.startswith(f"ingest: {header}: {line_1}") and "'第3版'" in m
               for m in warnings), warnings
    assert f"ingest: {headless}: {PAGE_SHAPE[lang]}" in warnings
    none_found = {"en": "no articles found", "zh": "没有找到稿件"}[lang]
    assert any(m.startswith(f"ingest: {blank}: {none_found} [hint=") for m in warnings)

    caplog.clear()
    service.ingest()  # the same pages again: their warnings are not repeated ...
    again = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert not any(str(header) in m or str(headless) in m for m in again)
    assert any(str(blank) in m for m in again)  # ... a failure is: the file still needs fixing


def test_run_once_logs_page_warnings_with_the_file_name(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    header = workdir / "inbox" / "2026-11-25-01.txt"
    header.write_text(PAGE_WITH_HEADER, "utf-8")
    caplog.set_level(logging.INFO, logger="gongbao_feed")
    assert Service(workdir / "config.toml").run_once() is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith(f"ingest: {header}: line 1: ") for m in warnings), warnings


ONE_ARTICLE = """+++
title = "区总工会开设职工夜校"
date = 2026-11-23
reporters = ["孟晓岚"]
+++

区总工会职工夜校本周开课，首批开设电工、烹饪和手机摄影三门课程。
"""
