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
