"""Several senders of one issue at once, against a floor of bare smtplib loops.

    python bench/workers.py [--members 3000] [--senders 1 2 4] [--rounds 2]
                            [--databases sqlite postgresql] [--profile]

One 10-article issue goes to `--members` members through a discarding
aiosmtpd relay on 127.0.0.1 (its own process, as in bench/smtp.py), plain
SMTP. For each database and each N in `--senders`, the same run measures:

- ours: N processes, each `Newsroom(config).send(via="smtp")` on the same
  issue and the same database, with `[smtp] connections = 1`: they share the
  members through the ledger's claims. The clock starts when all N are
  ready (imports done, nothing opened) and stops when the last one has
  returned, so it holds everything a sender does: opening the store,
  rendering the digest, claiming, making each member's message, sending,
  settling each claim;
- the floor: N processes, each one `smtplib.SMTP` connection (TCP_NODELAY,
  as the transport sets) sending its share of the same messages with
  `sendmail` in a loop. The messages are made before the clock starts, once,
  with the digest's Mailer (only the Date header differs from the send's).

Each figure is the best of `--rounds`, the two taking turns to go first.
Every run starts on a fresh database (SQLite: a new working folder;
PostgreSQL: a new database on a server started for the benchmark as
tests/pg.py does), and checks that the relay took exactly one message per
member. CPU is the client processes' own (all threads; not the relay's, nor
the PostgreSQL server's). Target: at most 1.3x the floor's time at every N.

`--profile` runs one more send per database with N=1 under cProfile (the
SMTP connection's thread too, where messages are made, sent and settled)
and prints where its time went.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import os
import pstats
import shutil
import smtplib
import socket
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.outbox import _articles  # noqa: E402
from bench.smtp import Relay, start_relay  # noqa: E402
from gongbao_feed.config import Config, config_from_dict  # noqa: E402
from gongbao_feed.digest import Mailer  # noqa: E402
from gongbao_feed.mail import Message  # noqa: E402
from gongbao_feed.models import Issue, Member  # noqa: E402
from gongbao_feed.publish import Newsroom  # noqa: E402
from gongbao_feed.skeleton import init_folder  # noqa: E402
from gongbao_feed.store import Store  # noqa: E402
from gongbao_feed.tokens import load_secret  # noqa: E402

# Forked workers inherit the imports, the config and the floor's messages:
# nothing is pickled, and no worker pays for starting Python.
FORK = mp.get_context("fork")
NOW = datetime(2026, 11, 22, 0, 30, tzinfo=UTC)


# -- a fresh paper per run ----------------------------------------------------------------
def make_paper(where: Path, database_url: str | None, relay_port: int, members: int) -> Config:
    """A working folder whose issue 1 waits for `members` members; SMTP to the relay."""
    init_folder(where)
    data: dict[str, Any] = tomllib.loads((where / "config.toml").read_text("utf-8"))
    if database_url:
        data["database"]["url"] = database_url
    data["email"]["transport"] = "smtp"
    data["smtp"].update(
        host="127.0.0.1", port=relay_port, security="none", username="", password_env="",
        ca_file="", connections=1, rate=0, messages_per_connection=members + 1,
    )
    config = config_from_dict(data, root=where)
    with Store(config.database_url) as store:
        day = date(2026, 11, 22)
        arts = _articles(day)
        store.save_articles(arts, NOW)  # type: ignore[arg-type]
        store.add_issue(Issue(1, day, "职工时报 第1期", tuple(a.id for a in arts), NOW))  # type: ignore[attr-defined]
        store.save_members(
            Member(f"member{n:05d}@example.org", f"会员{n}", joined=NOW) for n in range(members)
        )
    return config


def floor_messages(config: Config) -> list[Message]:
    """Every member's message, made once with the digest's Mailer, in claim order."""
    with Newsroom(config, clock=lambda: NOW) as room:
        mailer = Mailer(room.digest(1), config, load_secret(config.state_dir), NOW)
        members = sorted(room.store.iter_members(active_only=True), key=lambda m: m.email)
        return [mailer.message(m) for m in members]


# -- the two kinds of worker ----------------------------------------------------------------
@dataclass(frozen=True)
class Done:
    start: float  # time.monotonic(): one clock for every process on the machine
    end: float
    cpu: float  # this process's CPU seconds, all threads
    sent: int
    problem: str = ""


def _sender(config: Config, barrier: Barrier, out: mp.queues.Queue[Done],
            profile_to: str = "") -> None:
    profilers = _profile_connections() if profile_to else []
    barrier.wait()
    start, cpu = time.monotonic(), time.process_time()
    if profile_to:
        profilers.append(cProfile.Profile())
        profilers[-1].enable()
    problem = ""
    try:
        with Newsroom(config) as room:
            report = room.send(via="smtp")
        sent = report.sent
        if report.failed or report.error:
            problem = f"{len(report.failed)} failed, error {report.error}"
    except Exception as exc:
        sent, problem = 0, repr(exc)
    if profile_to:
        profilers[-1].disable()
        stats = pstats.Stats(profilers[0])
        for p in profilers[1:]:
            stats.add(p)
        stats.dump_stats(profile_to)
    out.put(Done(start, time.monotonic(), time.process_time() - cpu, sent, problem))


def _profile_connections() -> list[cProfile.Profile]:
    """Profile each SMTP connection's thread too: it makes, sends and settles every message."""
    from gongbao_feed.smtp import SmtpTransport

    profilers: list[cProfile.Profile] = []
    work = SmtpTransport._work

    def profiled(self: SmtpTransport, run: Any, link: Any) -> None:
        profiler = cProfile.Profile()
        profilers.insert(0, profiler)
        profiler.runcall(work, self, run, link)

    SmtpTransport._work = profiled  # type: ignore[method-assign]
    return profilers


def _floor(port: int, share: Sequence[Message], barrier: Barrier,
           out: mp.queues.Queue[Done]) -> None:
    barrier.wait()
    start, cpu = time.monotonic(), time.process_time()
    problem = ""
    sent = 0
    try:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
        assert smtp.sock is not None
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for m in share:
            smtp.sendmail(m.sender, list(m.recipients), m.data)
            sent += 1
        smtp.quit()
    except Exception as exc:
        problem = repr(exc)
    out.put(Done(start, time.monotonic(), time.process_time() - cpu, sent, problem))


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float
    spread: float  # from the first worker done to the last: the share of the run left uneven


def run_workers(n: int, target: Callable[..., None], args_for: Callable[[int], tuple[Any, ...]],
                relay: Relay, expected: int, what: str) -> Timing:
    """Start n forked workers that begin together; wall time from first start to last end."""
    barrier = FORK.Barrier(n)
    out: mp.queues.Queue[Done] = FORK.Queue()
    before = relay.accepted()
    procs = [FORK.Process(target=target, args=(*args_for(i), barrier, out)) for i in range(n)]
    for p in procs:
        p.start()
    done = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(30)
    problems = [d.problem for d in done if d.problem]
    sent = sum(d.sent for d in done)
    accepted = relay.accepted() - before
    if problems or sent != expected or accepted != expected:
        raise SystemExit(f"{what}, {n} workers: {sent} sent, the relay accepted {accepted}, "
                         f"{expected} expected; {problems}")
    ends = [d.end for d in done]
    return Timing(max(ends) - min(d.start for d in done), sum(d.cpu for d in done),
                  max(ends) - min(ends))


def run_senders(config: Config, n: int, relay: Relay, expected: int) -> Timing:
    return run_workers(n, _sender, lambda i: (config,), relay, expected, "senders")


def run_floor(messages: Sequence[Message], n: int, relay: Relay) -> Timing:
    return run_workers(n, _floor, lambda i: (relay.port, messages[i::n]), relay,
                       len(messages), "floor")


# -- the databases ------------------------------------------------------------------------
class Databases:
    """Hands out a fresh database URL per run; None means the folder's SQLite file."""

    def __init__(self) -> None:
        self._pg: Any = None

    def available(self, kind: str) -> bool:
        """Start the PostgreSQL server if asked for; False (and why) if there is none."""
        if kind != "postgresql" or self._pg is not None:
            return True
        from tests.pg import PgServer, PgUnavailable

        try:
            self._pg = PgServer.start()
        except PgUnavailable as exc:
            print(f"postgresql skipped: {exc}")
            return False
        return True

    def url(self, kind: str) -> str | None:
        if kind == "sqlite":
            return None
        return str(self._pg.create_database("bench"))

    def close(self) -> None:
        if self._pg is not None:
            self._pg.stop()


def profile_one(config: Config, relay: Relay, expected: int, top: int = 25) -> str:
    with tempfile.NamedTemporaryFile(suffix=".prof") as fh:
        barrier = FORK.Barrier(1)
        out: mp.queues.Queue[Done] = FORK.Queue()
        p = FORK.Process(target=_sender, args=(config, barrier, out, fh.name))
        p.start()
        done = out.get(timeout=600)
        p.join(30)
        if done.problem or done.sent != expected:
            raise SystemExit(f"profiled send: {done}")
        text = io.StringIO()
        stats = pstats.Stats(fh.name, stream=text)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        return f"{expected / (done.end - done.start):.0f} msg/s under cProfile\n{text.getvalue()}"


# -- the table ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument("--rounds", type=int, default=2, help="best of this many runs each")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one send per database (N=1) with cProfile")
    args = parser.parse_args(argv)
    # One signing key for every paper: the floor's bytes are the send's but for the Date.
    os.environ.setdefault("GONGBAO_SECRET", "bench-only-key")

    tmp = Path(tempfile.mkdtemp(prefix="gongbao-bench-workers-"))
    relay = start_relay(False, tmp / "relay")
    dbs = Databases()
    runs = 0

    def fresh(kind: str) -> Config:
        nonlocal runs
        runs += 1
        return make_paper(tmp / f"paper{runs}", dbs.url(kind), relay.port, args.members)

    try:
        kinds = [k for k in args.databases if dbs.available(k)]
        messages = floor_messages(fresh("sqlite"))
        size = sum(len(m.data) for m in messages) / len(messages)
        print(f"one issue to {args.members} members, {size / 1024:.1f} KiB a message, plain SMTP "
              f"to a discarding aiosmtpd on 127.0.0.1 (own process); 1 connection per sender "
              f"and per floor loop; best of {args.rounds}; {mp.cpu_count()} CPUs")
        print()
        header = (f"{'database':<12}{'N':>3}{'msg/s':>9}{'floor msg/s':>13}{'ratio':>8}"
                  f"{'CPU µs/msg':>12}{'floor CPU':>11}{'uneven end':>12}")
        print(header)
        print("-" * len(header))
        for kind in kinds:
            for n in args.senders:
                ours, floors = [], []
                for r in range(args.rounds):
                    config = fresh(kind)
                    if r % 2:
                        ours.append(run_senders(config, n, relay, args.members))
                        floors.append(run_floor(messages, n, relay))
                    else:
                        floors.append(run_floor(messages, n, relay))
                        ours.append(run_senders(config, n, relay, args.members))
                best = min(ours, key=lambda t: t.wall)
                wall, floor = best.wall, min(t.wall for t in floors)
                cpu, fcpu = min(t.cpu for t in ours), min(t.cpu for t in floors)
                m = args.members
                print(f"{kind:<12}{n:>3}{m / wall:>9.0f}{m / floor:>13.0f}{wall / floor:>7.2f}x"
                      f"{cpu / m * 1e6:>12.0f}{fcpu / m * 1e6:>11.0f}{best.spread:>11.2f}s",
                      flush=True)
        if args.profile:
            for kind in kinds:
                print(f"\n== {kind}, 1 sender ==")
                print(profile_one(fresh(kind), relay, args.members))
    finally:
        relay.close()
        dbs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nratio = our time / floor time (target: at most 1.30x at every N); CPU: the client "
          "processes' CPU time per message (not the relay's, nor PostgreSQL's); uneven end: "
          "from the first sender done to the last (best run)")


if __name__ == "__main__":
    main()
