"""Messages in the operator's language: Simplified Chinese for a zh locale, English otherwise.

The catalog is complete (every message the source marks has a Chinese
translation that keeps its placeholders), the committed .mo is what the
.po compiles to, a wheel carries a freshly compiled one, and the command
speaks the locale's language, `--help` and click's own words included,
while `--json` output is the same in every locale.
"""

from __future__ import annotations

import gettext
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import gongbao_feed
from gongbao_feed import i18n
from gongbao_feed.i18n import _, english, ngettext, operator_language

from .conftest import REPO

PACKAGE = Path(gongbao_feed.__file__).parent
PO = PACKAGE / "locale" / "zh_CN" / "LC_MESSAGES" / "gongbao_feed.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "ngettext": (1, 2), "N_": None, "N_plural": (1, 2)}
CLI = Path(sys.executable).parent / "gongbao-feed"
LOCALE_KEYS = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def _source_messages(root: Path) -> dict[str | tuple[str, str], str]:
    """msgid (or (singular, plural)) → where it is, as Babel extracts them."""
    found: dict[str | tuple[str, str], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(root), method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        key = message if isinstance(message, str) else tuple(message[:2])
        found.setdefault(key, f"{root.name}/{filename}:{lineno}")
    return found


def _catalog():
    with PO.open("rb") as f:
        return read_po(f, locale="zh_CN")


_FIELD = re.compile(r"\{[^{}]*\}|%\([a-z]+\)s")


def _fields(text: str) -> set[str]:
    return set(_FIELD.findall(text))


# -- the catalog ------------------------------------------------------------------------


def test_every_message_in_the_source_has_a_chinese_translation() -> None:
    catalog = _catalog()
    problems = []
    for msgid, where in sorted(_source_messages(PACKAGE).items(), key=lambda kv: kv[1]):
        entry = catalog.get(msgid)
        strings = () if entry is None else (
            (entry.string,) if isinstance(entry.string, str) else tuple(entry.string))
        if entry is None or not all(strings):
            problems.append(f"{where}: no translation: {msgid!r}")
        elif entry.fuzzy:
            problems.append(f"{where}: fuzzy (check it, then drop the flag): {msgid!r}")
    assert not problems, (
        "run `make catalog` and translate these in " + str(PO.relative_to(REPO)) + ":\n"
        + "\n".join(problems)
    )


def test_translations_keep_every_placeholder() -> None:
    wrong = []
    for entry in _catalog():
        if not entry.id:
            continue
        ids = [entry.id] if isinstance(entry.id, str) else list(entry.id)
        strings = [entry.string] if isinstance(entry.string, str) else list(entry.string)
        wanted = _fields(ids[-1])  # Chinese has one form: the plural's fields
        for text in strings:
            if text and _fields(text) != wanted:
                wrong.append(f"{ids[0]!r}: {sorted(_fields(text))} ≠ {sorted(wanted)}")
    assert not wrong, "\n".join(wrong)


def test_the_committed_mo_is_what_the_po_compiles_to() -> None:
    """The .mo serves source checkouts and editable installs; `make catalog` refreshes it."""
    compiled = io.BytesIO()
    write_mo(compiled, _catalog())
    compiled.seek(0)
    fresh = gettext.GNUTranslations(compiled)
    with MO.open("rb") as f:
        shipped = gettext.GNUTranslations(f)
    stale = {k for k in fresh._catalog.keys() | shipped._catalog.keys()  # type: ignore[attr-defined]
             if fresh._catalog.get(k) != shipped._catalog.get(k)}  # type: ignore[attr-defined]
    assert not stale, f"{MO} is stale, run `make catalog`: {sorted(map(str, stale))[:10]}"


def test_the_click_words_we_translate_are_still_clicks() -> None:
    """_click_messages.py lists click's msgids word for word; a click that reworded one
    would show it in English again."""
    import click

    ours = {k for k, where in _source_messages(PACKAGE).items() if "_click_messages" in where}
    clicks = set(_source_messages(Path(click.__file__).parent))
    assert ours, "no click messages extracted"
    gone = sorted(map(str, ours - clicks))
    assert not gone, f"no longer in the installed click: {gone}"


# -- choosing the language ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh_CN"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({}, "en"),
        ({"LANG": "zh_TW.UTF-8"}, "zh_CN"),  # the only Chinese catalog there is
        ({"LANGUAGE": "zh_CN:en", "LANG": "C.UTF-8"}, "zh_CN"),  # LANGUAGE first
        ({"LANGUAGE": "en:zh_CN", "LANG": "zh_CN.UTF-8"}, "en"),  # its first entry decides
        ({"LANGUAGE": "", "LANG": "zh_CN.UTF-8"}, "zh_CN"),  # empty counts as unset
        ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL over LANG
        ({"LC_ALL": "zh_CN.UTF-8", "LC_MESSAGES": "C", "LANG": "C"}, "zh_CN"),
        ({"LC_MESSAGES": "zh_CN.GB18030", "LANG": "C.UTF-8"}, "zh_CN"),  # LC_MESSAGES over LANG
        ({"LC_MESSAGES": "C.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
    ],
)
def test_the_language_follows_the_gnu_order_of_the_locale_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for key in LOCALE_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert operator_language() == expected


def test_lookup_is_at_call_time_and_english_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert _("there is no issue yet") == "还没有任何一期"
    assert ngettext("{n} attempt", "{n} attempts", 1).format(n=1) == "尝试 1 次"
    with english():
        assert _("there is no issue yet") == "there is no issue yet"
        assert ngettext("{n} attempt", "{n} attempts", 2).format(n=2) == "2 attempts"
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert _("there is no issue yet") == "there is no issue yet"
    assert ngettext("{n} attempt", "{n} attempts", 1).format(n=1) == "1 attempt"


def test_importing_the_library_leaves_the_default_text_domain_alone() -> None:
    """Only the CLI binds click to our catalog (i18n.use_for_click)."""
    code = ("import gettext, gongbao_feed.cli, gongbao_feed.publish; "
            "print(gettext.textdomain())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "messages"
    assert i18n.DOMAIN == "gongbao_feed"


# -- the command in both languages -------------------------------------------------------------


def _run(lang: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in LOCALE_KEYS}
    env.update(lang)
    return subprocess.run([str(CLI), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


ZH = {"LANG": "zh_CN.UTF-8"}
EN = {"LANG": "C.UTF-8"}


@pytest.mark.slow
def test_ingest_summary_in_chinese_and_in_english(tmp_path: Path) -> None:
    for lang, folder in ((ZH, "zh"), (EN, "en")):
        work = tmp_path / folder
        assert _run(lang, "init", str(work), cwd=tmp_path).returncode == 0
        shutil.copy(REPO / "inbox" / "2026-11-20-01.txt", work / "inbox")
    zh = _run(ZH, "ingest", cwd=tmp_path / "zh")
    en = _run(EN, "ingest", cwd=tmp_path / "en")
    assert zh.returncode == en.returncode == 0, zh.stderr + en.stderr
    assert zh.stdout == "收稿：新稿 3 篇，更新 0 篇，未变 0 篇，失败 0 个文件\n"
    assert en.stdout == "ingested: 3 new, 0 updated, 0 unchanged, 0 failed\n"
    zh = _run(ZH, "assemble", cwd=tmp_path / "zh")
    en = _run(EN, "assemble", cwd=tmp_path / "en")
    assert zh.stdout.splitlines()[0] == "第1期，共 3 篇稿件"
    assert en.stdout.splitlines()[0] == "issue 1 with 3 articles"
    zh = _run(ZH, "status", cwd=tmp_path / "zh")
    en = _run(EN, "status", cwd=tmp_path / "en")
    assert "服务：未运行" in zh.stdout and "，3 篇稿件，编于 " in zh.stdout
    assert "service: not running" in en.stdout and ", 3 articles, made " in en.stdout


@pytest.mark.slow
def test_an_error_and_its_hint_in_chinese_and_in_english(tmp_path: Path) -> None:
    assert _run(EN, "init", str(tmp_path / "p"), cwd=tmp_path).returncode == 0
    zh = _run(ZH, "send", cwd=tmp_path / "p")
    en = _run(EN, "send", cwd=tmp_path / "p")
    assert zh.returncode == en.returncode == 1
    assert zh.stderr == "错误：还没有任何一期\n  提示：请运行 `gongbao-feed assemble`\n"
    assert en.stderr == "error: there is no issue yet\n  hint: run `gongbao-feed assemble`\n"
    zh = _run(ZH, "status", "--config", "nowhere.toml", cwd=tmp_path)
    assert zh.stderr.startswith(
        "错误：nowhere.toml：配置文件不存在\n  提示：请运行 `gongbao-feed init DIR`")


@pytest.mark.slow
def test_help_and_clicks_own_words_in_chinese_and_in_english(tmp_path: Path) -> None:
    zh = _run(ZH, "send", "--help", cwd=tmp_path)
    en = _run(EN, "send", "--help", cwd=tmp_path)
    assert zh.returncode == en.returncode == 0
    assert zh.stdout.startswith(
        "用法: gongbao-feed send [OPTIONS]\n\n  把一期电子报发给还没收到的每位会员。")
    assert "\n选项:\n" in zh.stdout
    assert "--dry-run              列出本期会发给谁；不发送。" in zh.stdout
    assert "-h, --help             显示本帮助后退出。" in zh.stdout
    assert "[默认：config.toml]" in zh.stdout
    assert en.stdout.startswith("Usage: gongbao-feed send [OPTIONS]\n\n  Mail an issue's digest")
    assert "\nOptions:\n" in en.stdout
    assert "--dry-run              List who would get the issue; send nothing." in en.stdout
    top = _run(ZH, "--help", cwd=tmp_path).stdout
    assert "\n命令:\n" in top and "  members     电子报的会员名单：导入、添加、移除、列出。" in top
    assert "--version   显示版本后退出。" in top
    zh = _run(ZH, "send", "--nope", cwd=tmp_path)
    en = _run(EN, "send", "--nope", cwd=tmp_path)
    assert zh.returncode == en.returncode == 2
    assert "错误：没有 '--nope' 这个选项。" in zh.stderr
    assert "运行 'gongbao-feed send --help' 查看帮助。" in zh.stderr
    assert "Error: No such option '--nope'." in en.stderr


@pytest.mark.slow
def test_json_output_is_the_same_in_every_locale(tmp_path: Path) -> None:
    """Tools read --json; the texts inside it (a failure's error) never change language."""
    assert _run(EN, "init", str(tmp_path / "p"), cwd=tmp_path).returncode == 0
    work = tmp_path / "p"
    (work / "inbox" / "2026-11-20-01.doc").write_bytes(b"\xd0\xcf\x11\xe0\x00\x00binary")
    page = str(REPO / "inbox" / "2026-11-20-01.txt")
    for args in (("ingest", "--json"), ("parse", page, "--json"), ("db", "version", "--json"),
                 ("assemble", "--dry-run", "--json"), ("members", "list", "--json")):
        zh = _run(ZH, *args, cwd=work)
        en = _run(EN, *args, cwd=work)
        assert zh.stdout == en.stdout, args
        assert zh.returncode == en.returncode, args
    failed = _run(ZH, "ingest", "--json", cwd=work)
    assert '"error": "binary data (NUL bytes), not a text page"' in failed.stdout


@pytest.mark.slow
def test_a_wheel_carries_the_catalog_compiled_at_build_time(tmp_path: Path) -> None:
    """hatch_build.py compiles the .po with Babel; the wheel has no .po and a current .mo."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path),
         str(REPO)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("gongbao_feed-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        mo = z.read("gongbao_feed/locale/zh_CN/LC_MESSAGES/gongbao_feed.mo")
    assert not [n for n in names if n.endswith((".po", ".pot"))]
    translations = gettext.GNUTranslations(io.BytesIO(mo))
    assert translations.gettext("there is no issue yet") == "还没有任何一期"
    with MO.open("rb") as f:
        assert translations._catalog == gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
