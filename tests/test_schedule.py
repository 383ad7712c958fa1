"""The scheduler service: schedules, misfires, the folder lock, stopping, status.

The end-to-end tests start `gongbao-feed run` as a subprocess. They make a
publish fall due within seconds without any test-only setting: the next run
time is state in the job store, and `set_next_run` moves it (while no
service runs) exactly as if the service had scheduled it earlier. The
service must then honour the stored time on start, which is the property
the misfire rules rest on. Users keep plain five-field `publish_cron`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gongbao_feed import ledger
from gongbao_feed.config import load_config
from gongbao_feed.crontab import crontab_trigger, weekdays
from gongbao_feed.errors import ConfigError, ServiceError
from gongbao_feed.models import DeliveryState
from gongbao_feed.publish import Newsroom
from gongbao_feed.schedule import (
    INGEST,
    PUBLISH,
    Holder,
    ServiceLock,
    install_jobs,
    service_status,
    set_next_run,
    stored_jobs,
    stored_next_runs,
)
from gongbao_feed.store import Store

from .smtp_server import PASSWORD, SmtpTestServer

EXE = Path(sys.executable).parent / "gongbao-feed"
FAR_CRON = "0 3 1 1 *"  # 03:00 on 1 January: never during a test
SHANGHAI = "Asia/Shanghai"


# -- helpers ------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def write_config(folder: Path, **sections: dict[str, Any]) -> Path:
    """Rewrite the working folder's config.toml with only the given sections."""
    base: dict[str, dict[str, Any]] = {
        "paper": {"name": "职工时报", "base_url": "https://news.example.org/",
                  "timezone": SHANGHAI},
        "schedule": {"publish_cron": FAR_CRON, "ingest_every_minutes": 60,
                     "misfire_grace_seconds": 30},
        "log": {"file": "state/service.log"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items()) + "\n"
        for name, values in base.items()
    )
    path = folder / "config.toml"
    path.write_text(text, "utf-8")
    return path


def add_members(config_path: Path, n: int) -> list[str]:
    emails = [f"member{i:03d}@members.example.org" for i in range(n)]
    with Newsroom.open(config_path) as room:
        for i, email in enumerate(emails):
            room.add_member(email, name=f"会员{i}")
    return emails


class Run:
    """`gongbao-feed run` in a subprocess, its log read from the log file."""

    def __init__(self, config_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.log_path = config_path.parent / "state" / "service.log"
        self.proc = subprocess.Popen(
            [str(EXE), "run", "--config", str(config_path), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        self.stderr = ""

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if len(re.findall(pattern, text)) >= count:
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.finish(kill=True)
        raise AssertionError(
            f"no {pattern!r} (x{count}) in the log within {timeout} s\n"
            f"log:\n{self.log()}\nstderr:\n{self.stderr}"
        )

    def terminate(self, timeout: float = 10, sig: int = signal.SIGTERM) -> int:
        """SIGTERM (or `sig`); the exit status, which must come within `timeout` seconds."""
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.finish(kill=True)
            raise AssertionError(f"no exit within {timeout} s of SIGTERM\n{self.log()}") from None
        self.finish()
        return rc

    def finish(self, kill: bool = False) -> None:
        if kill and self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        self.stderr += err or ""


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    """Every service a test starts is gone when it ends, passed or failed."""
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.finish(kill=True)


def start(runs: list[Run], config_path: Path, *args: str, **kw: Any) -> Run:
    run = Run(config_path, *args, **kw)
    runs.append(run)
    return run


def publish_lines(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if re.search(r" (INFO|WARNING|ERROR) publish: ", ln)]


# -- the crontab ----------------------------------------------------------------------


def test_weekdays_count_from_sunday_like_cron() -> None:
    assert weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert weekdays("0") == weekdays("7") == "sun"
    assert weekdays("5-7") == "sun,fri,sat"
    assert weekdays("*/2") == "sun,tue,thu,sat"
    assert weekdays("mon-fri") == "mon,tue,wed,thu,fri"


def test_weekday_crontab_publishes_monday_to_friday_in_the_paper_zone() -> None:
    trigger = crontab_trigger("30 7 * * 1-5", SHANGHAI)
    friday_evening = datetime(2026, 11, 27, 20, 0, tzinfo=trigger.timezone)
    nxt = trigger.get_next_fire_time(None, friday_evening)
    assert nxt is not None
    assert (nxt.strftime("%A %H:%M"), nxt.utcoffset()) == ("Monday 07:30", timedelta(hours=8))


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("30 7 * *", "five-field"),
        ("61 7 * * *", "61"),
        ("30 7 1 * 1", "set one of them to *"),
        ("30 7 * * 8", "0-7"),
    ],
)
def test_a_bad_crontab_is_a_config_error_naming_the_key(
    tmp_path: Path, cron: str, words: str
) -> None:
    path = write_config(tmp_path, schedule={"publish_cron": cron})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "schedule.publish_cron" in str(err.value)
    assert words in str(err.value)


# -- the job store ---------------------------------------------------------------------


def test_restarting_keeps_a_missed_run_and_a_changed_schedule_replaces_it(
    workdir: Path,
) -> None:
    config_path = write_config(workdir)
    set_next_run(config_path, PUBLISH,
                 (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0))
    with Store(load_config(config_path).database_url) as store:
        missed = stored_next_runs(store.engine)[PUBLISH]

    # A start with the same [schedule]: the missed time stays for the executor to judge.
    with stored_jobs(load_config(config_path)) as scheduler:
        assert install_jobs(scheduler, load_config(config_path), str(config_path)) == []
        assert scheduler.get_job(PUBLISH).next_run_time == missed

    # Only the grace changed: the options change, the next run does not.
    config_path = write_config(workdir, schedule={"misfire_grace_seconds": 600})
    with stored_jobs(load_config(config_path)) as scheduler:
        notes = install_jobs(scheduler, load_config(config_path), str(config_path))
        job = scheduler.get_job(PUBLISH)
        assert notes == ["publish: updated misfire_grace_time"]
        assert (job.next_run_time, job.misfire_grace_time) == (missed, 600)
        assert (job.coalesce, job.max_instances) == (True, 1)

    # A new publish_cron is a new schedule: the next run follows it.
    config_path = write_config(workdir, schedule={"publish_cron": "15 6 * * *"})
    with stored_jobs(load_config(config_path)) as scheduler:
        notes = install_jobs(scheduler, load_config(config_path), str(config_path))
        job = scheduler.get_job(PUBLISH)
        assert any("publish: schedule changed" in n for n in notes)
        assert job.next_run_time > datetime.now(UTC)
        assert job.next_run_time.strftime("%H:%M") == "06:15"
        assert {j.id for j in scheduler.get_jobs()} == {PUBLISH, INGEST}
    with stored_jobs(load_config(config_path)) as scheduler:
        assert scheduler.get_job(PUBLISH).next_run_time == job.next_run_time


# -- the lock --------------------------------------------------------------------------


def test_the_lock_names_who_holds_it(tmp_path: Path) -> None:
    first, second = ServiceLock(tmp_path), ServiceLock(tmp_path)
    me = Holder(4242, "news-1", datetime(2026, 11, 22, 7, 30, tzinfo=UTC), "/srv/config.toml")
    assert first.holder() is None
    first.acquire(me)
    try:
        with pytest.raises(ServiceError) as err:
            second.acquire(Holder(1, "news-2", None, "x"), wait=0)
        assert "pid 4242 on news-1" in str(err.value)
        assert "2026-11-22T07:30:00+00:00" in str(err.value)
        assert "hint:" in str(err.value)
        assert second.holder() == me
    finally:
        first.release()
    assert second.holder() is None
    second.acquire(Holder(1, "news-2", None, "x"), wait=0)
    second.release()


# -- publishing and status (in process) ----------------------------------------------


def test_two_publishes_with_nothing_new_send_nothing(workdir: Path) -> None:
    config_path = write_config(workdir)
    add_members(config_path, 3)
    with Newsroom.open(config_path) as room:
        first = room.publish()
        second = room.publish()
        third = room.publish()
        ledger = room.store.deliveries()
    assert first.issue is not None and first.send is not None
    assert first.send.sent == 3
    for again in (second, third):
        assert again.issue is None and again.send is None
        assert again.summary().endswith("nothing sent")
        assert "no new articles since issue 1" in again.summary()
    assert [d.state for d in ledger] == [DeliveryState.SENT] * 3
    assert len(list((workdir / "outbox" / "0001").iterdir())) == 3


def test_status_of_a_folder_whose_service_never_ran(workdir: Path) -> None:
    config_path = write_config(workdir, schedule={"publish_cron": "30 7 * * 1-5"})
    status = service_status(load_config(config_path),
                            now=datetime(2026, 11, 28, 12, 0, tzinfo=UTC))  # a Saturday
    data = status.to_json()
    assert data["service"] == {"running": False}
    assert data["last_issue"] is None
    publish = data["jobs"][0]
    assert publish["id"] == "publish" and not publish["stored"]
    assert publish["next_run"] == "2026-11-30T07:30:00+08:00"  # Monday
    assert "not scheduled yet" in "\n".join(status.lines())


def test_status_json_from_the_cli(workdir: Path) -> None:
    config_path = write_config(workdir)
    add_members(config_path, 2)
    with Newsroom.open(config_path) as room:
        room.publish()
    out = subprocess.run([str(EXE), "status", "--json", "--config", str(config_path)],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["last_issue"]["number"] == 1
    assert data["last_issue"]["created"].endswith("+08:00")
    assert data["deliveries"] == {"pending": 0, "sent": 2, "failed": 0, "unsent": 0}
    assert data["service"]["running"] is False


def test_run_once_with_the_relay_down_exits_1_and_logs_what_to_check(workdir: Path) -> None:
    import socket

    from click.testing import CliRunner

    from gongbao_feed.cli import main

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config_path = write_config(
        workdir, email={"transport": "smtp"},
        smtp={"host": "127.0.0.1", "port": port, "security": "none", "max_attempts": 1},
    )
    add_members(config_path, 2)
    result = CliRunner().invoke(main, ["run", "--once", "--config", str(config_path)])
    assert result.exit_code == 1
    log = (workdir / "state" / "service.log").read_text("utf-8")
    failed = [ln for ln in log.splitlines() if "publish: failed" in ln]
    assert len(failed) == 1 and " ERROR " in failed[0]
    assert "smtp.host" in failed[0]
    with Newsroom.open(config_path) as room:
        assert ledger.counts(room.store, 1)["sent"] == 0
    assert ServiceLock(workdir / "state").holder() is None  # the lock went with it


# -- end to end: the service in a subprocess ------------------------------------------


@pytest.mark.slow
def test_the_service_publishes_on_schedule_over_smtp_and_stops_on_sigterm(
    workdir: Path, tmp_path: Path, runs: list[Run]
) -> None:
    with SmtpTestServer(tmp_path / "certs") as relay:
        config_path = write_config(
            workdir, email={"transport": "smtp"}, smtp=relay.smtp_settings(),
        )
        members = add_members(config_path, 6)
        set_next_run(config_path, PUBLISH, datetime.now(UTC) + timedelta(seconds=2))

        run = start(runs, config_path, env={"GONGBAO_TEST_SMTP_PASSWORD": PASSWORD})
        log = run.wait_for(r"publish: issue 1 with \d+ articles; 6 sent")
        assert run.terminate(timeout=10) == 0

        line = publish_lines(log)[0]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00 INFO publish: ", line)
        assert "[issue=1 " in line and " sent=6 failed=0" in line
        manifest = json.loads((workdir / "issues" / "0001.json").read_text("utf-8"))
        assert manifest["number"] == 1 and manifest["articles"]
        for feed in ("feed.xml", "atom.xml", "feed.json", "issues/0001.html"):
            assert (workdir / "public" / feed).is_file()
        received = relay.by_recipient()
        assert Counter({m: len(received.get(m, [])) for m in members}) == Counter(
            dict.fromkeys(members, 1)
        )
        assert "service: stopped" in run.log()

        # Two publishes in a row with nothing new: nothing more reaches the relay.
        for _ in range(2):
            once = subprocess.run(
                [str(EXE), "run", "--once", "--config", str(config_path)],
                capture_output=True, text=True, timeout=60,
                env={**os.environ, "GONGBAO_TEST_SMTP_PASSWORD": PASSWORD},
            )
            assert once.returncode == 0, once.stderr
            assert "no new articles since issue 1; nothing sent" in once.stderr
        assert relay.accepted == len(members)

    status = service_status(load_config(config_path))
    assert status.holder is None
    assert status.deliveries["sent"] == 6
    nxt = {j.id: j.next_run for j in status.jobs}[PUBLISH]
    assert nxt is not None and nxt.strftime("%m-%d %H:%M") == "01-01 03:00"


@pytest.mark.slow
def test_sigterm_mid_send_records_what_went_and_a_restart_sends_the_rest(
    workdir: Path, tmp_path: Path, runs: list[Run]
) -> None:
    with SmtpTestServer(tmp_path / "certs") as relay:
        config_path = write_config(
            workdir, email={"transport": "smtp"},
            smtp=relay.smtp_settings(rate=15, connections=1),
        )
        members = add_members(config_path, 60)
        env = {"GONGBAO_TEST_SMTP_PASSWORD": PASSWORD}
        set_next_run(config_path, PUBLISH, datetime.now(UTC))

        run = start(runs, config_path, env=env)
        deadline = time.monotonic() + 30
        while relay.accepted < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert run.terminate(timeout=10) == 0
        with Newsroom.open(config_path) as room:
            sent_rows = [d for d in room.store.deliveries(1) if d.state is DeliveryState.SENT]
        # Every message the relay took is in the ledger, and no more.
        assert 5 <= len(sent_rows) == relay.accepted < len(members)
        assert "stopped early" in run.log()

        # The issue is minutes old, well within the grace: the next start sends the rest.
        again = start(runs, config_path, env=env)
        again.wait_for(r"resume: issue 1: \d+ sent", timeout=30)
        assert again.terminate() == 0
        received = relay.by_recipient()
        assert sorted(received) == sorted(members)
        assert all(len(msgs) == 1 for msgs in received.values())


@pytest.mark.slow
def test_a_second_run_refuses_and_a_killed_service_does_not_block_the_next(
    workdir: Path, runs: list[Run]
) -> None:
    config_path = write_config(workdir)
    first = start(runs, config_path)
    first.wait_for(r"service: started")

    second = subprocess.run([str(EXE), "run", "--config", str(config_path)],
                            capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert f"pid {first.proc.pid}" in second.stderr
    assert "another service is running for this working folder" in second.stderr
    once = subprocess.run([str(EXE), "run", "--once", "--config", str(config_path)],
                          capture_output=True, text=True, timeout=30)
    assert once.returncode != 0 and f"pid {first.proc.pid}" in once.stderr
    holder = service_status(load_config(config_path)).to_json()["service"]
    assert (holder["running"], holder["pid"], holder["mode"]) == (True, first.proc.pid, "run")

    first.proc.kill()  # kill -9: no chance to clean up; the lock file stays behind
    first.finish()
    assert (workdir / "state" / "service.lock").exists()

    third = start(runs, config_path)
    third.wait_for(r"service: started", count=2)
    assert third.terminate(sig=signal.SIGINT) == 0  # Ctrl-C stops it as cleanly
    assert "SIGINT: stopping" in third.log()


@pytest.mark.slow
def test_a_publish_missed_while_stopped_runs_once_on_a_start_within_the_grace(
    workdir: Path, runs: list[Run]
) -> None:
    config_path = write_config(workdir, schedule={"misfire_grace_seconds": 30})
    add_members(config_path, 2)
    first = start(runs, config_path)
    first.wait_for(r"service: started")
    assert first.terminate() == 0

    # While no service runs, a publish falls due (and passes).
    set_next_run(config_path, PUBLISH, datetime.now(UTC) + timedelta(seconds=1))
    time.sleep(2)

    second = start(runs, config_path)
    log = second.wait_for(r"publish: issue 1 with \d+ articles; 2 sent")
    time.sleep(1)  # time for a second run, if there were to be one
    assert second.terminate() == 0
    log = second.log()
    assert len(publish_lines(log)) == 1
    assert "overdue" in log
    assert len(list((workdir / "outbox" / "0001").iterdir())) == 2
    nxt = {j.id: j.next_run for j in service_status(load_config(config_path)).jobs}[PUBLISH]
    assert nxt is not None and nxt > datetime.now(UTC)


@pytest.mark.slow
def test_a_publish_missed_beyond_the_grace_is_skipped_and_logged(
    workdir: Path, runs: list[Run]
) -> None:
    config_path = write_config(workdir, schedule={"misfire_grace_seconds": 1})
    add_members(config_path, 2)
    set_next_run(config_path, PUBLISH, datetime.now(UTC) + timedelta(seconds=0.5))
    time.sleep(3)  # the service is down across the scheduled time, and then some

    run = start(runs, config_path)
    log = run.wait_for(r"publish: missed the run at")
    time.sleep(1)
    assert run.terminate() == 0
    log = run.log()
    missed = [ln for ln in log.splitlines() if "publish: missed" in ln]
    assert len(missed) == 1 and " WARNING " in missed[0]
    assert "beyond schedule.misfire_grace_seconds = 1; skipped" in missed[0]
    assert not [ln for ln in publish_lines(log) if "publish: missed" not in ln]
    assert not list((workdir / "issues").glob("*.json"))
    assert not (workdir / "outbox" / "0001").exists()
    nxt = {j.id: j.next_run for j in service_status(load_config(config_path)).jobs}[PUBLISH]
    assert nxt is not None and nxt.strftime("%m-%d %H:%M") == "01-01 03:00"


# -- the systemd units -------------------------------------------------------------------

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.mark.parametrize(
    ("unit", "args"),
    [("gongbao-feed.service", ["run"]), ("gongbao-feed-once.service", ["run", "--once"])],
)
def test_the_shipped_units_run_real_commands(unit: str, args: list[str], tmp_path: Path) -> None:
    import configparser
    import shlex
    import shutil

    import click

    from gongbao_feed.cli import main

    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / unit, encoding="utf-8")
    argv = shlex.split(parser["Service"]["ExecStart"])
    assert argv[0].endswith("/gongbao-feed") and argv[1:len(args) + 1] == args
    with click.Context(main) as ctx:
        command = main.get_command(ctx, argv[1])
        assert command is not None
        parsed = command.make_context(argv[1], argv[2:], parent=ctx)
        assert parsed.params["config_path"].name == "config.toml"
    assert parser["Service"]["KillSignal"] == "SIGTERM"

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    # Verify the unit as systemd reads it, with a binary that exists here.
    # (The timer is written by `gongbao-feed timer`: tests/test_deploy.py verifies it.)
    text = (DEPLOY / unit).read_text("utf-8").replace(argv[0], "/bin/true")
    (tmp_path / unit).write_text(text, "utf-8")
    result = subprocess.run([analyze, "verify", str(tmp_path / unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
