"""deploy/: the systemd units agree with the README's install section and with
each other, systemd accepts them, and the timer `gongbao-feed timer` writes
fires when the service's crontab does.

systemd is the judge where it is installed (`systemd-analyze verify` for the
units, `systemd-analyze calendar` for the timer's times, compared with the
times APScheduler gives the service); not installed: a failure in CI, a skip
with the reason elsewhere.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gongbao_feed.crontab import crontab_trigger, on_calendar

from .conftest import in_ci
from .helpers_cli import run

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
README = (ROOT / "README.md").read_text("utf-8")
GOLDEN = Path(__file__).parent / "fixtures" / "deploy"

# The layout the README's "Install for production" sets up.
COMMAND = "/opt/gongbao-feed/venv/bin/gongbao-feed"
FOLDER = "/srv/gongbao"
ENV_FILE = "/etc/gongbao-feed.env"
UNITS = {  # unit → the arguments its ExecStart gives the command
    "gongbao-feed.service": ["run", "--config", f"{FOLDER}/config.toml"],
    "gongbao-feed-web.service": ["serve", "--config", f"{FOLDER}/config.toml"],
    "gongbao-feed-once.service": ["run", "--once", "--config", f"{FOLDER}/config.toml"],
}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text("utf-8"), source=name)
    return parser


def test_deploy_holds_these_units_and_no_timer_with_a_time_in_it() -> None:
    assert sorted(p.name for p in DEPLOY.iterdir()) == sorted(UNITS)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_each_unit_runs_the_installed_command_in_the_working_folder(name: str) -> None:
    service = unit(name)["Service"]
    assert shlex.split(service["ExecStart"]) == [COMMAND, *UNITS[name]]
    assert service["WorkingDirectory"] == FOLDER
    assert (service["User"], service["Group"]) == ("gongbao", "gongbao")
    assert service["EnvironmentFile"] == ENV_FILE
    # Hardening that leaves it working: it writes inside the working folder only.
    assert service["NoNewPrivileges"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    writable = service["ReadWritePaths"].split()
    assert writable and all(p == FOLDER or p.startswith(FOLDER + "/") for p in writable)


def test_the_web_unit_runs_serve() -> None:
    """Every digest's one-click unsubscribe depends on it (the issue's interface)."""
    argv = shlex.split(unit("gongbao-feed-web.service")["Service"]["ExecStart"])
    assert Path(argv[0]).name == "gongbao-feed" and argv[1] == "serve"
    # state/ for unsubscribes and signups; outbox/ for signup confirmations (outbox transport).
    assert unit("gongbao-feed-web.service")["Service"]["ReadWritePaths"].split() == [
        f"{FOLDER}/state", f"{FOLDER}/outbox"]


def install_section() -> str:
    m = re.search(r"^## Install for production\n(.*?)^## ", README, re.M | re.S)
    assert m, "README.md has no '## Install for production' section"
    return m.group(1)


def test_the_readme_install_section_sets_up_what_the_units_expect() -> None:
    text = install_section()
    for step in (
        "python3 -m venv /opt/gongbao-feed/venv",
        "/opt/gongbao-feed/venv/bin/pip install",
        "useradd --system",
        f"gongbao-feed init {FOLDER}",
        f"install -m 0600 -o root -g root /dev/null {ENV_FILE}",
        "systemctl enable --now gongbao-feed gongbao-feed-web",
        "journalctl -u gongbao-feed",
        "gongbao-feed db upgrade",
        "gongbao-feed timer --config /srv/gongbao/config.toml",
        "[postgres]",
        "make demo",
    ):
        assert step in text, f"the install section lacks {step!r}"
    for name in UNITS:
        assert f"deploy/{name}" in text, f"the install section never installs {name}"


def test_nothing_points_at_the_old_venv() -> None:
    for path in [ROOT / "README.md", *DEPLOY.iterdir()]:
        assert "/opt/gongbao-feed/.venv" not in path.read_text("utf-8"), path


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        why = f"{tool} is not installed (Debian: systemd)"
        if in_ci():
            pytest.fail(f"cannot check the units in CI: {why}", pytrace=False)
        pytest.skip(f"units not verified by systemd: {why}")
    return found


@pytest.mark.slow
def test_systemd_accepts_the_units_and_the_written_timer(workdir: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify` prints nothing: no unknown key, no bad value, the
    command exists (here this test's own gongbao-feed stands in for the venv's)."""
    analyze = need("systemd-analyze")
    here = Path(sys.executable).parent / "gongbao-feed"
    units = tmp_path / "units"
    units.mkdir()
    for name in UNITS:
        text = (DEPLOY / name).read_text("utf-8").replace(COMMAND, str(here))
        (units / name).write_text(text.replace(FOLDER, str(workdir)), "utf-8")
    code, out, _err = run(workdir, "timer")
    assert code == 0
    (units / "gongbao-feed-once.timer").write_text(str(out), "utf-8")
    names = [*sorted(UNITS), "gongbao-feed-once.timer"]
    proc = subprocess.run([analyze, "verify", *[f"./{n}" for n in names]], cwd=units,
                          capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


# -- the timer follows [schedule] publish_cron ------------------------------------------------
CALENDARS = [  # crontab → the OnCalendar= value, written down from systemd.time(7)
    ("30 7 * * *", "*-*-* 07:30:00 Asia/Shanghai"),
    ("0 8 * * 1-5", "Mon..Fri *-*-* 08:00:00 Asia/Shanghai"),
    ("0 8 * * mon-fri", "Mon..Fri *-*-* 08:00:00 Asia/Shanghai"),
    ("0 7 * * 6,0", "Sat,Sun *-*-* 07:00:00 Asia/Shanghai"),
    ("0 7 * * 5-7", "Fri..Sun *-*-* 07:00:00 Asia/Shanghai"),
    ("0 7 * * 1,3", "Mon,Wed *-*-* 07:00:00 Asia/Shanghai"),
    ("*/15 8-18 * * *", "*-*-* 08..18:00/15:00 Asia/Shanghai"),
    ("5/20 6 * * *", "*-*-* 06:05/20:00 Asia/Shanghai"),
    ("0 6 1,15 * *", "*-*-01,15 06:00:00 Asia/Shanghai"),
    ("0 9 */2 jan-mar,dec *", "*-01..03,12-01/2 09:00:00 Asia/Shanghai"),
    ("45 23 * * 0", "Sun *-*-* 23:45:00 Asia/Shanghai"),
]


@pytest.mark.parametrize(("cron", "calendar"), CALENDARS)
def test_a_crontab_as_a_calendar_event(cron: str, calendar: str) -> None:
    assert on_calendar(cron, "Asia/Shanghai") == calendar


@pytest.mark.parametrize(("cron", "item"), [
    ("0 7 last * *", "last"),
    ("0 7 1st mon * *", None),  # not five fields once split: refused as the config does
    ("0 7 L * *", None),
])
def test_what_systemd_cannot_express_is_refused_naming_it(cron: str, item: str | None) -> None:
    with pytest.raises(ValueError) as err:
        on_calendar(cron, "Asia/Shanghai")
    if item:
        assert str(err.value) == (
            f"cannot write {item!r} as a systemd calendar event; use cron's numbers, "
            "ranges (a-b), lists (a,b) and steps (*/n)")


_ELAPSE = re.compile(r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


@pytest.mark.slow
@pytest.mark.parametrize(("cron", "calendar"), CALENDARS)
def test_systemd_fires_when_the_service_would(cron: str, calendar: str) -> None:
    """The next 8 times systemd computes for the calendar event are, one after the
    other, the times the service's own trigger (APScheduler) fires at."""
    analyze = need("systemd-analyze")
    proc = subprocess.run([analyze, "calendar", "--iterations=8", calendar],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "TZ": "UTC", "LC_ALL": "C"})
    times = [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in _ELAPSE.findall(proc.stdout)]
    assert len(times) == 8, proc.stdout
    trigger = crontab_trigger(cron, "Asia/Shanghai")
    for prev, this in zip([times[0] - timedelta(seconds=1), *times], times, strict=False):
        fire = trigger.get_next_fire_time(None, prev + timedelta(microseconds=1))
        assert fire == this, f"after {prev}: systemd {this}, the service {fire}"


# -- `gongbao-feed timer` ------------------------------------------------------------------------
def set_cron(workdir: Path, cron: str) -> None:
    config = workdir / "config.toml"
    text = config.read_text("utf-8")
    text, n = re.subn(r'^publish_cron = ".*"$', f'publish_cron = "{cron}"', text, flags=re.M)
    assert n == 1
    config.write_text(text, "utf-8")


def test_the_timer_command_writes_the_unit_from_the_config(workdir: Path) -> None:
    set_cron(workdir, "0 8 * * 1-5")
    code, out, err = run(workdir, "timer")
    assert (code, err) == (0, "")
    text = str(out).replace(str((workdir / "config.toml").resolve()), "WORKDIR/config.toml")
    assert text == (GOLDEN / "weekdays.timer").read_text("utf-8")


def test_the_timer_command_refuses_a_crontab_systemd_cannot_express(workdir: Path) -> None:
    set_cron(workdir, "0 7 last * *")
    code, out, err = run(workdir, "timer")
    assert (code, out) == (1, "")
    config = workdir / "config.toml"
    assert err == (
        f"error: {config}: schedule.publish_cron = '0 7 last * *': cannot write 'last' as a "
        "systemd calendar event; use cron's numbers, ranges (a-b), lists (a,b) and steps (*/n)\n"
        "  hint: use the `gongbao-feed run` service, which reads any crontab the config "
        "accepts, or simplify publish_cron\n")
