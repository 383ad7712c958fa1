"""Several senders share one send, exactly once: processes, SQLite and PostgreSQL.

Every test here starts real `gongbao-feed` processes on one working folder
whose database is either the default SQLite file or a fresh database on the
tests' own PostgreSQL server (tests/pg.py). The processes are started through
a gate: each imports the package, says it is ready, and waits for the gate
to open, so the commands begin within a millisecond of each other instead of
whenever the interpreter happened to finish importing.

The relay is the loopback aiosmtpd of tests/smtp_server.py: it counts every
copy it accepted per recipient, so a member mailed twice shows up. The outbox
replaces a member's file, so there the proof is one file per member and the
ledger's and the reports' counts.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gongbao_feed import ledger
from gongbao_feed.config import load_config
from gongbao_feed.errors import StoreError
from gongbao_feed.outbox import eml_name, issue_folder
from gongbao_feed.publish import Newsroom
from gongbao_feed.skeleton import init_folder
from gongbao_feed.store import Store, deliveries_t, issues_t

from .conftest import EXAMPLE_INBOX, FixedClock
from .helpers_cli import run
from .pg import PgServer
from .smtp_server import PASSWORD, SmtpTestServer

PASSWORD_ENV = "GONGBAO_TEST_SMTP_PASSWORD"

# Imports the package (and what a send and the service use) before waiting at
# the gate, so what runs after it is the command alone.
GATED = """\
import os, sys, time
from gongbao_feed.cli import main
import gongbao_feed.publish, gongbao_feed.smtp, gongbao_feed.outbox, gongbao_feed.schedule
gate = os.environ["GONGBAO_TEST_GATE"]
open(gate + ".ready." + str(os.getpid()), "w").close()
while not os.path.exists(gate):
    time.sleep(0.0005)
main(prog_name="gongbao-feed")
"""


# -- the working folder --------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def set_options(folder: Path, table: str, **values: Any) -> None:
    """Set keys of one [table] in the folder's config.toml (replacing or adding them)."""
    path = folder / "config.toml"
    text = path.read_text("utf-8")
    match = re.search(rf"^\[{table}\]\n((?:(?!\[).*\n)*)", text, flags=re.M)
    assert match, f"no [{table}] in {path}"
    body = match.group(1)
    for key, value in values.items():
        line = f"{key} = {toml_value(value)}\n"
        body, n = re.subn(rf"^{key} = .*\n", line.replace("\\", "\\\\"), body, flags=re.M)
        if not n:
            body = line + body
    path.write_text(text[: match.start(1)] + body + text[match.end(1):], "utf-8")


ONE_ARTICLE = 1


def member_addresses(n: int) -> list[str]:
    return [f"m{i:04d}@members.example.org" for i in range(n)]


@dataclass
class Paper:
    """A working folder on one database, with its members."""

    folder: Path
    url: str
    members: list[str]

    @property
    def config(self) -> Path:
        return self.folder / "config.toml"

    def store(self) -> Store:
        return Store(self.url)

    def counts(self) -> dict[str, int]:
        with self.store() as store:
            return ledger.counts(store, 1)


def make_paper(
    workdir: Path, dialect: str, request: pytest.FixtureRequest, members: int,
    *, ingest: bool = True, assemble: bool = True, max_articles: int | None = ONE_ARTICLE,
    url: str | None = None,
) -> Paper:
    """The `workdir` on SQLite or a fresh PostgreSQL database, members imported
    with `members import`, pages ingested and issue 1 assembled (as asked).

    `max_articles` (config [issue]) keeps the digests small: the relay, a
    Python thread in the test process, takes a 10 KB message several times
    faster than the 40 KB of all nine example articles.
    """
    if max_articles is not None:
        set_options(workdir, "issue", max_articles=max_articles)
    if dialect == "postgres":
        url = url or str(request.getfixturevalue("pg_url"))
        set_options(workdir, "database", url=url)
        (workdir / "state" / "gongbao.db").unlink()  # made by `init`, on the default URL
    else:
        url = load_config(workdir / "config.toml").database_url
    emails = member_addresses(members)
    sheet = workdir / "members.csv"
    sheet.write_text(
        "email,name\n" + "".join(f"{e},会员{i}\n" for i, e in enumerate(emails)), "utf-8"
    )
    code, out, err = run(workdir, "members", "import", str(sheet), "--json")
    assert code == 0, err
    assert out == {"imported": members, "merged": 0, "changed": 0, "unchanged": 0,
                   "failed": []}
    if ingest:
        code, _, err = run(workdir, "ingest")
        assert code == 0, err
    if ingest and assemble:
        code, out, err = run(workdir, "assemble", "--json")
        assert code == 0, err
        assert isinstance(out, dict) and out["issue"] == 1
    return Paper(workdir, url, emails)


# -- processes through a gate -----------------------------------------------------------


@dataclass
class Proc:
    """One `gongbao-feed` command in a subprocess, waiting at its gate file until opened."""

    name: str
    popen: subprocess.Popen[bytes]
    gate: Path
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def ready(self) -> bool:
        """At the gate: imported and waiting. Fails if the process died before."""
        if Path(f"{self.gate}.ready.{self.pid}").exists():
            return True
        assert self.popen.poll() is None, f"{self.name} died early:\n{self.stderr()}"
        return False

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise AssertionError(
                f"{self.name} did not finish in {timeout} s\n{self.stderr()}"
            ) from None

    def stdout(self) -> str:
        return self.out.read_text("utf-8", "replace")

    def stderr(self) -> str:
        return self.err.read_text("utf-8", "replace")

    def json(self) -> dict[str, Any]:
        data = json.loads(self.stdout())
        assert isinstance(data, dict)
        return data


class Launcher:
    """Starts `gongbao-feed` commands that import, then wait at a gate; `open`
    lets the ones at a gate go together. Whatever still runs at the end is killed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[Proc] = []
        folder.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str, config: Path, gate: str = "go") -> Proc:
        n = len(self.procs)
        out, err = self.folder / f"{n:02d}-{name}.out", self.folder / f"{n:02d}-{name}.err"
        gate_file = self.folder / gate
        env = {**os.environ, PASSWORD_ENV: PASSWORD, "GONGBAO_TEST_GATE": str(gate_file)}
        with out.open("wb") as o, err.open("wb") as e:
            popen = subprocess.Popen(
                [sys.executable, "-c", GATED, *args, "--config", str(config)],
                stdout=o, stderr=e, env=env,
            )
        proc = Proc(name, popen, gate_file, out, err)
        self.procs.append(proc)
        return proc

    def open(self, gate: str = "go", timeout: float = 60) -> None:
        """Wait until every process of this gate is at it, then open it."""
        gate_file = self.folder / gate
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            if proc.gate != gate_file:
                continue
            while not proc.ready():
                assert time.monotonic() < deadline, f"{proc.name} never reached the gate"
                time.sleep(0.005)
        gate_file.touch()

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.running():
                proc.popen.kill()
                proc.popen.wait(10)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    procs = Launcher(tmp_path / "procs")
    try:
        yield procs
    finally:
        procs.kill_all()


def use_relay(paper: Paper, relay: SmtpTestServer, **overrides: Any) -> None:
    set_options(paper.folder, "smtp", **relay.smtp_settings(**overrides))


def copies(relay: SmtpTestServer) -> Counter[str]:
    return Counter({e: len(v) for e, v in relay.by_recipient().items()})


# -- 1. N senders at once -------------------------------------------------------------------

SENDERS = [
    *[pytest.param("sqlite", "smtp", n, 400, id=f"sqlite-smtp-{n}") for n in (2, 3, 4)],
    *[pytest.param("postgres", "smtp", n, 400, id=f"postgres-smtp-{n}") for n in (2, 3, 4)],
    pytest.param("sqlite", "outbox", 3, 600, id="sqlite-outbox-3"),
    pytest.param("postgres", "outbox", 3, 600, id="postgres-outbox-3"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("dialect", "via", "senders", "members"), SENDERS)
def test_concurrent_senders_reach_every_member_exactly_once(
    workdir: Path, tmp_path: Path, request: pytest.FixtureRequest, launcher: Launcher,
    dialect: str, via: str, senders: int, members: int,
) -> None:
    paper = make_paper(workdir, dialect, request, members)
    relay = SmtpTestServer(tmp_path / "relay") if via == "smtp" else None
    try:
        if relay is not None:
            relay.start()
            use_relay(paper, relay)
        procs = [
            launcher.start(f"send{i}", "send", "--issue", "1", "--via", via, "--json",
                           config=paper.config)
            for i in range(senders)
        ]
        launcher.open()
        codes = [p.wait() for p in procs]
        got = copies(relay) if relay is not None else None
    finally:
        if relay is not None:
            relay.stop()

    assert codes == [0] * senders, "\n".join(p.stderr() for p in procs)
    reports = [p.json() for p in procs]
    sent = [r["sent"] for r in reports]
    print(f"\n{dialect}/{via}: {senders} senders, {members} members, sent per sender {sent}")
    assert all(r["failed"] == [] and r["issue"] == 1 for r in reports)
    assert sum(sent) == members
    assert sum(1 for n in sent if n) >= 2, f"the senders did not share the send: {sent}"
    if got is not None:
        assert got == Counter(dict.fromkeys(paper.members, 1))
    else:
        folder = issue_folder(paper.folder / "outbox", 1)
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(eml_name(e) for e in paper.members)  # no .tmp left either
    assert paper.counts() == {"pending": 0, "sent": members, "failed": 0}


# -- 2. the service's publish and an operator's send --------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_the_services_publish_and_an_operators_send_share_the_issue(
    workdir: Path, tmp_path: Path, request: pytest.FixtureRequest, launcher: Launcher,
    dialect: str,
) -> None:
    """`run --once` makes issue 1 and mails it; `send --issue 1` joins in at once.

    `run --once` only sends an issue it has just made (with nothing new, it
    makes none and sends nothing), so the pages are ingested by it, not
    before. The send is held at its gate until issue 1 is in the store and
    let go that instant: both then send issue 1 at the same time.
    """
    members = 500
    paper = make_paper(workdir, dialect, request, members, ingest=False)
    set_options(paper.folder, "email", transport="smtp")
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(paper, relay)
        service = launcher.start("run-once", "run", "--once", config=paper.config, gate="service")
        send = launcher.start("send", "send", "--issue", "1", "--via", "smtp", "--json",
                              config=paper.config, gate="operator")
        while not send.ready():
            time.sleep(0.005)
        launcher.open("service")
        deadline = time.monotonic() + 60
        with paper.store() as store:
            while store.issue(1) is None:
                assert service.running(), service.stderr()
                assert time.monotonic() < deadline, "run --once made no issue"
                time.sleep(0.002)
        launcher.open("operator")
        codes = (service.wait(), send.wait())
        got = copies(relay)

    assert codes == (0, 0), service.stderr() + send.stderr()
    log = service.stderr()
    published = re.search(r" INFO publish: issue 1 with 1 article;.* sent=(\d+) failed=0\b", log)
    assert published, log
    by_service, by_operator = int(published.group(1)), send.json()["sent"]
    print(f"\n{dialect}: run --once sent {by_service}, send sent {by_operator}, "
          f"{members} members")
    assert send.json()["failed"] == []
    assert by_service + by_operator == members
    assert by_service and by_operator, "the two did not share the send"
    assert got == Counter(dict.fromkeys(paper.members, 1))
    assert paper.counts() == {"pending": 0, "sent": members, "failed": 0}
    with paper.store() as store:
        assert store.last_issue_number() == 1


# -- 3. chaos: senders killed at random and started again ------------------------------------

CONNECTIONS = 2  # per sender: each may leave one copy accepted but not recorded when killed
KILL_WITHIN = 50  # a sender is killed within this many messages accepted after its start
MIN_KILLS = 5


@dataclass
class Slot:
    """One of the senders: the process now in it, and when to kill it."""

    number: int
    proc: Proc
    target: int | None = None  # kill once the relay has accepted this many; None: at its gate


def settle(relay: SmtpTestServer, quiet: float = 0.15) -> None:
    """Wait until the relay accepts nothing more: the message whose last bytes
    reached it just before a kill is counted before anything is compared."""
    seen = -1
    while relay.accepted != seen:
        seen = relay.accepted
        time.sleep(quiet)


def held_by(paper: Paper, pid: int) -> set[str]:
    """The members whose ledger rows are claims of the sender with this pid."""
    d = deliveries_t
    prefix = f"{socket.gethostname()}:{pid}:"
    with paper.store() as store, store.engine.connect() as conn:
        rows = conn.execute(
            d.select().with_only_columns(d.c.email, d.c.state, d.c.claimed_by)
            .where(d.c.issue == 1)
        ).all()
    return {r.email for r in rows if r.state == "pending" and r.claimed_by.startswith(prefix)}


@pytest.mark.slow
def test_senders_killed_at_random_and_restarted_lose_no_one(
    workdir: Path, tmp_path: Path, request: pytest.FixtureRequest, launcher: Launcher,
) -> None:
    """Three senders on PostgreSQL, each SIGKILLed at random and started again.

    At a kill the other senders are paused (SIGSTOP) for the moment it takes
    to read the relay and the ledger, so the dead sender's claims are seen
    before a live one takes them over: the members it holds that the relay
    already accepted are the copies the kill may repeat (the crash window
    ledger.py describes: at most one per SMTP connection). Every duplicate
    at the end must be one of those. The seed is printed (`pytest -s`);
    GONGBAO_CHAOS_SEED=<seed> replays its kill targets.
    """
    members, senders, max_kills = 500, 3, 12
    seed = int(os.environ.get("GONGBAO_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    print(f"\nchaos (seed {seed}): {senders} senders x {CONNECTIONS} connections, "
          f"{members} members, up to {max_kills} kills, PostgreSQL")
    paper = make_paper(workdir, "postgres", request, members)
    set_options(paper.folder, "email", claim_lease_seconds=10)
    unrecorded: Counter[str] = Counter()  # copies accepted but not recorded at a kill
    kills: list[int] = []  # per kill: how many such copies it left
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(paper, relay, connections=CONNECTIONS)

        def start(n: int) -> Slot:
            name = f"sender{n}-{len(launcher.procs)}"
            gate = f"gate-{name}"
            return Slot(n, launcher.start(name, "send", "--issue", "1", "--via", "smtp",
                                          "--json", config=paper.config, gate=gate))

        def kill(slot: Slot) -> None:
            others = [s.proc for s in slots if s is not slot and s.proc.running()]
            for proc in others:
                os.kill(proc.pid, signal.SIGSTOP)
            try:
                slot.proc.popen.kill()
                slot.proc.popen.wait(30)
                settle(relay)
                got = copies(relay)
                new = {e for e in held_by(paper, slot.proc.pid) if got[e] > unrecorded[e]}
            finally:
                for proc in others:
                    os.kill(proc.pid, signal.SIGCONT)
            assert all(got[e] == unrecorded[e] + 1 for e in new), "more than one new copy"
            assert len(new) <= CONNECTIONS, f"{len(new)} copies in flight on {CONNECTIONS}"
            unrecorded.update(new)
            kills.append(len(new))

        slots = [start(n) for n in range(senders)]
        for slot in slots:
            launcher.open(slot.proc.gate.name)
            slot.target = relay.accepted + rng.randint(1, KILL_WITHIN)
        deadline = time.monotonic() + 90
        while any(s.proc.running() for s in slots):
            assert time.monotonic() < deadline, "the chaos did not end"
            for i, slot in enumerate(slots):
                if slot.target is None:
                    if slot.proc.ready():
                        launcher.open(slot.proc.gate.name)
                        slot.target = relay.accepted + rng.randint(1, KILL_WITHIN)
                elif (slot.proc.running() and len(kills) < max_kills
                      and relay.accepted >= slot.target):
                    kill(slot)
                    slots[i] = start(slot.number)
            time.sleep(0.002)
        survivors = [p for p in launcher.procs if p.popen.returncode != -signal.SIGKILL]
        assert all(p.popen.returncode == 0 for p in survivors), "\n".join(
            p.stderr() for p in survivors
        )
        final = launcher.start("final", "send", "--issue", "1", "--via", "smtp", "--json",
                               config=paper.config, gate="final")
        launcher.open("final")
        assert final.wait() == 0, final.stderr()
        assert final.json() == {"issue": 1, "sent": 0, "skipped": members, "failed": []}
        got = copies(relay)

    duplicates = {e: n - 1 for e, n in got.items() if n > 1}
    print(f"  kills: {len(kills)}; copies accepted but unrecorded per kill: {kills}")
    print(f"  duplicates: {sum(duplicates.values())} for {len(duplicates)} members "
          f"(bound: {sum(kills)} unrecorded, {CONNECTIONS} per kill); "
          f"senders started: {len(launcher.procs) - 1}; relay accepted {relay.accepted}")
    assert len(kills) >= MIN_KILLS, "too few kills to call it chaos"
    assert sorted(got) == sorted(paper.members), "a member got nothing"
    assert all(duplicates[e] <= unrecorded[e] for e in duplicates), (
        "a member got a second copy the kills do not explain"
    )
    assert paper.counts() == {"pending": 0, "sent": members, "failed": 0}


# -- 4. two assembles at once -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("dialect", "rounds"), [("sqlite", 5), ("postgres", 1)])
def test_two_assembles_at_once_make_one_issue(
    tmp_path: Path, request: pytest.FixtureRequest, dialect: str, rounds: int,
) -> None:
    """Both see the same new articles; one makes issue 1, the other says so and stops."""
    pg_server: PgServer | None = (
        request.getfixturevalue("pg_server") if dialect == "postgres" else None
    )
    outcomes: Counter[str] = Counter()
    for r in range(rounds):
        folder = tmp_path / f"round{r}"
        init_folder(folder)
        for page in EXAMPLE_INBOX.iterdir():
            if page.is_file():
                shutil.copy(page, folder / "inbox" / page.name)
        url = pg_server.create_database() if pg_server else None
        paper = make_paper(folder, dialect, request, 1, assemble=False, max_articles=None, url=url)
        launcher = Launcher(folder / "procs")
        try:
            procs = [launcher.start(f"assemble{i}", "assemble", config=paper.config)
                     for i in range(2)]
            launcher.open()
            codes = [p.wait() for p in procs]
            with paper.store() as store:
                issues = store.issues()
                unissued = store.unissued_articles()
        finally:
            launcher.kill_all()
            if pg_server and url:
                pg_server.drop_database(url)
        outputs = [p.stdout() + p.stderr() for p in procs]
        assert all("Traceback" not in o for o in outputs), "\n".join(outputs)
        assert codes == [0, 0], "\n".join(outputs)
        made = [o for o in outputs if o.startswith("issue 1 with 9 articles")]
        assert len(made) == 1, "\n".join(outputs)
        (other,) = (o for o in outputs if o is not made[0])
        first = other.splitlines()[0]
        if first == "issue 1 was just made by another run; nothing to assemble":
            outcomes["lost the race"] += 1
        else:  # it began after the issue was made: plainly nothing new
            assert first == "no new articles since issue 1", other
            outcomes["came after"] += 1
        assert [(i.number, len(i.article_ids)) for i in issues] == [(1, 9)]
        assert unissued == []
        assert sorted(p.name for p in (folder / "issues").iterdir()) == ["0001.json"]
    print(f"\n{dialect}: {rounds} rounds of two assembles: {dict(outcomes)}")


def test_an_assemble_that_lost_the_race_says_another_run_made_the_issue(
    workdir: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race above, made certain: B planned from the articles it read before A
    made issue 1; B's add_issue is refused, and B says why instead of the store's words."""
    config = load_config(workdir / "config.toml")
    with Newsroom(config, clock) as a, Newsroom(config, clock) as b:
        a.ingest()
        seen_by_b = b.store.unissued_articles()
        assert a.assemble().issue is not None
        real = b.store.unissued_articles
        reads = iter([seen_by_b])  # B's plan reads the stale list; any later read, the store
        monkeypatch.setattr(b.store, "unissued_articles", lambda: next(reads, None) or real())
        lost = b.assemble()
    assert lost.issue is None
    assert lost.reason == "issue 1 was just made by another run; nothing to assemble"
    assert lost.to_json() == {"issue": None, "articles": [], "reason": lost.reason}
    assert sorted(p.name for p in config.issues_dir.iterdir()) == ["0001.json"]


def test_a_lost_race_says_what_the_other_run_left_waiting(
    workdir: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A made issue 1 of five articles (its issue.max_articles); B, planning all nine
    as issue 2, is refused: it makes nothing and says four wait for the next assemble."""
    set_options(workdir, "issue", max_articles=5)
    config_a = load_config(workdir / "config.toml")
    set_options(workdir, "issue", max_articles=60)
    config_b = load_config(workdir / "config.toml")
    with Newsroom(config_a, clock) as a, Newsroom(config_b, clock) as b:
        a.ingest()
        seen_by_b = b.store.unissued_articles()
        made = a.assemble().issue
        assert made is not None and len(made.article_ids) == 5
        real = b.store.unissued_articles
        reads = iter([seen_by_b])
        monkeypatch.setattr(b.store, "unissued_articles", lambda: next(reads, None) or real())
        lost = b.assemble()
        assert len(b.store.unissued_articles()) == 4
    assert lost.issue is None and lost.plan.waiting == 4
    assert lost.reason == (
        "issue 1 was just made by another run; 4 more articles wait for the next assemble"
    )


def test_an_assemble_refused_for_another_reason_still_fails(
    workdir: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only articles another run has put in an issue count as "made by another run"."""
    config = load_config(workdir / "config.toml")
    with Newsroom(config, clock) as room:
        room.ingest()
        with room.store.transaction() as conn:  # an issue 1 holding none of these articles
            conn.execute(issues_t.insert().values(
                number=1, date=clock().date(), title="第1期", created=clock()))
        monkeypatch.setattr(room.store, "last_issue_number", lambda: 0)
        with pytest.raises(StoreError, match="issue number 1 is not after the last issue"):
            room.assemble()
