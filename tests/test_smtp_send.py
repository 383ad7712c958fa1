"""`send --via smtp` end to end: the ledger, resuming, stopping, killing.

A real working folder (init, the example pages, an assembled issue, our
own members) sends to a real aiosmtpd relay on 127.0.0.1 with STARTTLS on a
certificate made for the test and AUTH.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gongbao_feed.cli import main
from gongbao_feed.config import load_config
from gongbao_feed.models import Delivery, DeliveryState
from gongbao_feed.outbox import eml_name, issue_folder
from gongbao_feed.publish import Newsroom
from gongbao_feed.skeleton import init_folder
from gongbao_feed.store import Store

from .conftest import EXAMPLE_INBOX, FixedClock
from .helpers_mail import put_delivery
from .smtp_server import PASSWORD, Faults, SmtpTestServer

PASSWORD_ENV = "GONGBAO_TEST_SMTP_PASSWORD"
SURNAMES = "王李张刘陈杨黄赵吴周"
MEMBERS = [f"worker{i:03d}@union.example.org" for i in range(24)]


def member_name(i: int) -> str:
    return f"{SURNAMES[i % 10]}师傅{i}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with issue 1 assembled and 24 members; copied by each test."""
    folder = tmp_path_factory.mktemp("base") / "paper"
    init_folder(folder)
    for page in EXAMPLE_INBOX.iterdir():
        if page.is_file():
            shutil.copy(page, folder / "inbox" / page.name)
    with Newsroom(load_config(folder / "config.toml"), clock=FixedClock()) as room:
        room.ingest()
        assert room.assemble().plan.issue is not None
        for i, email in enumerate(MEMBERS):
            room.add_member(email, member_name(i))
    return folder


@pytest.fixture
def paper(base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "paper"))


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def toml_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, bool) else str(value)


def use_relay(folder: Path, relay: SmtpTestServer, **overrides: Any) -> None:
    """Point the folder's [smtp] table at the test relay."""
    cfg = folder / "config.toml"
    table = "[smtp]\n" + "".join(
        f"{k} = {toml_value(v)}\n" for k, v in relay.smtp_settings(**overrides).items()
    )
    text, n = re.subn(r"^\[smtp\]\n(?:(?!\[).*\n)*", table + "\n", cfg.read_text("utf-8"),
                      flags=re.M)
    assert n == 1
    cfg.write_text(text, "utf-8")


def open_room(folder: Path) -> Newsroom:
    return Newsroom(load_config(folder / "config.toml"), clock=FixedClock())


def ledger(folder: Path) -> dict[str, Delivery]:
    with Store(load_config(folder / "config.toml").database_url) as store:
        return {d.email: d for d in store.deliveries(1)}


def states(folder: Path) -> Counter[str]:
    return Counter(str(d.state) for d in ledger(folder).values())


def test_send_delivers_each_member_once_with_the_outbox_bytes(
    paper: Path, tmp_path: Path, password: None
) -> None:
    twin = Path(shutil.copytree(paper, tmp_path / "twin"))
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(paper, relay, connections=3, messages_per_connection=5)
        with open_room(paper) as room:
            report = room.send(via="smtp")
        got = relay.by_recipient()
    assert (report.sent, report.failed) == (len(MEMBERS), [])

    with open_room(twin) as room:
        room.send(via="outbox")
        outbox = issue_folder(room.config.outbox_dir, 1)
    assert sorted(got) == sorted(MEMBERS)
    rows = ledger(paper)
    for email in MEMBERS:
        (received,) = got[email]
        # The envelope sender is the member's VERP address on the From domain (bounces.py).
        assert re.fullmatch(r"bounce\+[a-z2-7]{24}@news\.example\.org", received.sender)
        assert received.recipients == (email,)
        eml = (outbox / eml_name(email)).read_bytes()
        # The file records the same envelope sender in a Return-Path line; the relay got
        # the rest (aiosmtpd adds no Received header: nothing to scrub).
        assert eml == b"Return-Path: <" + received.sender.encode() + b">\r\n" + received.data
        row = rows[email]
        assert (row.state, row.transport, row.code, row.attempts) == ("sent", "smtp", 250, 1)
        assert "queued as" in row.detail
        assert row.message_id and row.message_id.encode() in received.data


def test_faults_are_recorded_and_resume_sends_only_what_is_missing(
    paper: Path, tmp_path: Path, password: None
) -> None:
    refused = set(MEMBERS[5:7])
    faults = Faults(
        busy_connects=1,
        soft_fail_once=frozenset(MEMBERS[1:4]),
        hard_fail=frozenset(refused),
        drop_in_data=frozenset({MEMBERS[10]}),
        close_after=6,
    )
    with SmtpTestServer(tmp_path / "relay", faults=faults) as relay:
        use_relay(paper, relay, connections=2)
        with open_room(paper) as room:
            report = room.send(via="smtp")
        got = relay.by_recipient()
        assert sorted(got) == sorted(set(MEMBERS) - refused)
        assert all(len(copies) == 1 for copies in got.values())
        assert sorted(e for e, _ in report.failed) == sorted(refused)

        rows = ledger(paper)
        for email in refused:
            row = rows[email]
            assert (row.state, row.permanent, row.code) == ("failed", True, 550)
            assert "mailbox unavailable" in row.detail
        assert rows[MEMBERS[10]].attempts == 2 and rows[MEMBERS[10]].state == "sent"
        assert states(paper) == {"sent": len(MEMBERS) - 2, "failed": 2}

        # The ledger as the operator sees it.
        out = CliRunner().invoke(
            main, ["deliveries", "--issue", "1", "--json", "--config", str(paper / "config.toml")]
        )
        assert out.exit_code == 0, out.output
        data = json.loads(out.output)
        assert data["issues"] == [{"issue": 1, "pending": 0, "sent": len(MEMBERS) - 2,
                                   "failed": 2, "failed_permanent": 2, "failed_temporary": 0}]
        assert {f["email"]: f["code"] for f in data["failures"]} == dict.fromkeys(refused, 550)
        text = CliRunner().invoke(main, ["deliveries", "--config", str(paper / "config.toml")])
        assert f"issue 1: {len(MEMBERS) - 2} sent, 2 failed (2 permanent" in text.output
        assert "mailbox unavailable" in text.output

        # Resume: nothing is sent twice, the refused addresses are left alone...
        before = len(relay.received)
        refusals = len(relay.refusals)
        with open_room(paper) as room:
            again = room.send(via="smtp")
        assert (again.sent, again.skipped, len(relay.received)) == (0, len(MEMBERS), before)
        assert len(relay.refusals) == refusals
        # ...unless asked.
        with open_room(paper) as room:
            retried = room.send(via="smtp", retry_failed=True)
        assert sorted(e for e, _ in retried.failed) == sorted(refused)
        assert len(relay.refusals) == refusals + 2 and len(relay.received) == before


def test_resume_retries_pending_and_temporary_failures_only(
    paper: Path, tmp_path: Path, password: None
) -> None:
    with open_room(paper) as room:
        now = room.now()
        for email, state, permanent in [
            (MEMBERS[0], DeliveryState.SENT, False),
            (MEMBERS[1], DeliveryState.PENDING, False),
            (MEMBERS[2], DeliveryState.FAILED, False),
            (MEMBERS[3], DeliveryState.FAILED, True),
        ]:
            put_delivery(room.store, Delivery(1, email, state, "smtp", 1, permanent,
                                              updated=now))
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(paper, relay)
        with open_room(paper) as room:
            report = room.send(via="smtp")
        assert sorted(relay.by_recipient()) == sorted(set(MEMBERS) - {MEMBERS[0], MEMBERS[3]})
    assert (report.sent, report.skipped) == (len(MEMBERS) - 2, 2)
    assert ledger(paper)[MEMBERS[3]].state == "failed"


def test_wrong_password_is_one_clear_error_and_nothing_is_recorded(
    paper: Path, tmp_path: Path
) -> None:
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(paper, relay)
        result = CliRunner().invoke(
            main, ["send", "--via", "smtp", "--config", str(paper / "config.toml")],
            env={PASSWORD_ENV: "wrong"},
        )
        assert relay.received == []
    assert result.exit_code == 1
    assert "smtp.username" in result.output and PASSWORD_ENV in result.output
    assert "Traceback" not in result.output
    assert ledger(paper) == {}


def test_send_json_prints_its_report_with_the_error_when_it_stops_on_one(
    paper: Path, tmp_path: Path
) -> None:
    """A caller reading `send --json` gets the counts and the reason, never nothing."""
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(paper, relay)
        result = CliRunner().invoke(
            main, ["send", "--via", "smtp", "--json", "--config", str(paper / "config.toml")],
            env={PASSWORD_ENV: "wrong"},
        )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["issue"], report["sent"], report["failed"]) == (1, 0, [])
    assert "smtp.username" in report["error"] or "password" in report["error"].lower()
    assert ledger(paper) == {}  # every claim given back


def test_transport_smtp_in_the_config_is_used_without_via(
    paper: Path, tmp_path: Path, password: None
) -> None:
    cfg = paper / "config.toml"
    cfg.write_text(cfg.read_text("utf-8").replace('transport = "outbox"', 'transport = "smtp"'))
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(paper, relay)
        result = CliRunner().invoke(main, ["send", "--config", str(cfg)])
        assert result.exit_code == 0, result.output
        assert len(relay.received) == len(MEMBERS)
    assert not (paper / "outbox" / "0001").exists()


# -- stopping and crashing: the CLI in a subprocess ------------------------------------------

CLI = [sys.executable, "-c", "from gongbao_feed.cli import main; main()"]


def start_send(folder: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    with log.open("ab") as out:
        return subprocess.Popen(
            [*CLI, "send", "--via", "smtp", "--config", str(folder / "config.toml")],
            stdout=out, stderr=out, env=env,
        )


def wait_for(relay: SmtpTestServer, accepted: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while relay.accepted < accepted and proc.poll() is None:
        assert time.monotonic() < deadline, "the send made no progress"
        time.sleep(0.002)


def settle(relay: SmtpTestServer) -> None:
    """Let the relay finish a message whose last bytes reached it just before the kill."""
    seen = -1
    while relay.accepted != seen:
        seen = relay.accepted
        time.sleep(0.2)


def finish(folder: Path, log: Path) -> None:
    proc = start_send(folder, log)
    assert proc.wait(120) == 0, log.read_text("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_lets_each_connection_finish_and_record_its_message(
    paper: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "send.log"
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(paper, relay, connections=2)
        proc = start_send(paper, log)
        wait_for(relay, 5, proc)
        proc.send_signal(sig)
        assert proc.wait(60) == 128 + sig, log.read_text("utf-8", "replace")
        settle(relay)
        rows = ledger(paper)
        sent = {e for e, d in rows.items() if d.state == "sent"}
        # Everything the relay took is recorded sent, nothing is left in flight.
        assert sent == set(relay.by_recipient())
        assert "pending" not in states(paper)
        assert len(sent) < len(MEMBERS)

        finish(paper, log)
        got = relay.by_recipient()
    assert sorted(got) == sorted(MEMBERS)
    assert all(len(copies) == 1 for copies in got.values())
    assert "finishing the messages in flight" in log.read_text("utf-8")


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(base: Path, tmp_path: Path) -> None:
    """The crash window, measured: SIGKILL mid-send, resume, count the copies.

    A copy the relay accepted but the ledger does not say `sent` must be one
    of the rows left `pending` (claimed by the sender that died), at most one
    per connection, and only such a member may end with a second copy.
    """
    connections, runs = 2, 5
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"\nkill -9 runs (seed {seed}), {len(MEMBERS)} members, {connections} connections:")
    total_dupes = 0
    for run in range(runs):
        folder = Path(shutil.copytree(base, tmp_path / f"run{run}"))
        log = tmp_path / f"run{run}.log"
        with SmtpTestServer(tmp_path / f"relay{run}") as relay:
            use_relay(folder, relay, connections=connections, messages_per_connection=7)
            proc = start_send(folder, log)
            target = rng.randrange(0, len(MEMBERS) - 2)
            wait_for(relay, target, proc)
            time.sleep(rng.uniform(0, 0.03))
            proc.kill()
            proc.wait(30)
            settle(relay)
            at_kill = relay.by_recipient()
            rows = ledger(folder)
            pending = {e for e, d in rows.items() if d.state == "pending"}
            unrecorded = {e for e in at_kill if rows.get(e) is None or rows[e].state != "sent"}
            assert unrecorded <= pending, "a copy went out that the ledger does not hold in flight"
            assert len(unrecorded) <= connections

            finish(folder, log)
            copies = Counter({e: len(v) for e, v in relay.by_recipient().items()})
        assert sorted(copies) == sorted(MEMBERS), "a member got nothing"
        dupes = {e: n - 1 for e, n in copies.items() if n > 1}
        assert set(dupes) <= unrecorded and all(n == 1 for n in dupes.values())
        assert states(folder) == {"sent": len(MEMBERS)}
        total_dupes += sum(dupes.values())
        print(f"  run {run}: killed after {len(at_kill)} accepted, {len(pending)} claimed, "
              f"{len(unrecorded)} accepted but unrecorded, {sum(dupes.values())} duplicate(s)")
    print(f"  total duplicates: {total_dupes} in {runs} runs (bound: {connections} per run)")
