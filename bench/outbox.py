"""Benchmark: one issue of 10 articles sent to the outbox, 5,000 and 20,000 members.

    .venv/bin/python bench/outbox.py                 # both sizes, ~8 minutes
    .venv/bin/python bench/outbox.py --members 2000  # a quick look
    .venv/bin/python bench/outbox.py --dkim          # every copy DKIM-signed
    .venv/bin/python bench/outbox.py --rounds 1      # one run a size, not the best of 3

Each size runs `--rounds` times (default 3), each time in a fresh process in
a new temporary working folder (made by `init`), so its peak memory is its
own; the send and its floor are timed in the same round, one after the
other. The figures are the best send and the best floor of the rounds, and
each round's own ratio: fsync on a shared machine changes speed from one
minute to the next (the same floor took 3.5 s and 5.5 s ten minutes apart),
and one round's ratio can land anywhere in that. It reports:

- seconds (wall clock, and the process's CPU time) and messages per second
  for `Newsroom.send()` (render, inline once, then per member: ledger
  look-ups, the message, the file, the ledger rows);
- peak resident memory during the send (Linux VmHWM, reset just before it),
  which must not grow with the member count: messages are streamed;
- the floor: the same .eml bytes written again with the same atomic scheme
  (files.atomic_write: temporary file, fsync, rename) in a bare loop, one
  after another, and the ratio of the send to it.

With `--dkim` a 2048-bit key is made in the temporary folder and [dkim] set,
so every copy is signed as a real send signs it; the floor writes the same
signed bytes.

Figures go to stdout and to bench/out/outbox.json (outbox-dkim.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

_SENTENCES = (
    "今年以来，市总工会围绕职工群众最关心的问题，推出技能培训、困难帮扶和法律援助等服务。",
    "在滨江物流园，新建的户外劳动者驿站备有热水、微波炉和充电桩，快递员歇脚时能吃上热饭。",
    "“以前下雨只能躲在屋檐下，现在有了自己的‘家’。”外卖骑手小陈笑着说。",
    "区总工会负责人表示，下一步将把驿站建设纳入年度重点工作，推动服务向社区和园区延伸。",
    "据统计，全市已建成服务站点二百余个，累计服务职工超过十五万人次。",
)


def _articles(day: date) -> list[object]:
    from gongbao_feed.models import Article, Byline, article_id

    arts = []
    for n in range(1, 11):
        title = f"第{n}篇：职工服务再升级"
        paragraphs = tuple(
            "".join(_SENTENCES[(n + p + s) % 5] for s in range(3)) for p in range(5)
        )
        arts.append(Article(
            id=article_id(day, title), date=day, title=title, kicker="聚焦民生",
            subtitle="覆盖全市百万职工", dateline="本报讯",
            byline=Byline(reporters=("林晓",), correspondents=("郑凯",)),
            paragraphs=paragraphs, source="bench.txt", position=n,
        ))
    return arts


def _peak_reset() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) so the send's own peak can be read."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(members: int, where: Path, dkim: bool = False) -> dict[str, float]:
    """Run one size in this process; return its figures."""
    from gongbao_feed.config import load_config
    from gongbao_feed.files import atomic_write
    from gongbao_feed.models import Issue, Member
    from gongbao_feed.publish import Newsroom
    from gongbao_feed.skeleton import init_folder

    init_folder(where)
    if dkim:
        from gongbao_feed.signing import generate_key, private_pem, write_key

        write_key(where / "dkim.key", private_pem(generate_key()))
        with (where / "config.toml").open("a", encoding="utf-8") as cfg:
            cfg.write('\n[dkim]\ndomain = "news.example.org"\nselector = "bench"\n'
                      'private_key_file = "dkim.key"\n')
    now = datetime(2026, 11, 22, 0, 30, tzinfo=UTC)
    with Newsroom(load_config(where / "config.toml"), clock=lambda: now) as room:
        day = date(2026, 11, 22)
        arts = _articles(day)
        room.store.save_articles(arts, now)  # type: ignore[arg-type]
        room.store.add_issue(Issue(1, day, "职工时报 第1期", tuple(a.id for a in arts), now))  # type: ignore[attr-defined]
        room.store.save_members(
            Member(f"member{n:05d}@example.org", f"会员{n}", joined=now) for n in range(members)
        )

        _peak_reset()
        rss_before = _peak_mib()
        start, cpu_start = time.perf_counter(), time.process_time()
        report = room.send()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        peak = _peak_mib()
        assert report.sent == members and not report.failed, report.to_json()

    sent = sorted((room.config.outbox_dir / "0001").iterdir())
    floor_dir = where / "floor"
    floor_dir.mkdir()
    floor = 0.0
    total_bytes = 0
    floor_cpu_start = time.process_time()
    for path in sent:
        data = path.read_bytes()
        total_bytes += len(data)
        t = time.perf_counter()
        atomic_write(floor_dir / path.name, data, mode=0o600)
        floor += time.perf_counter() - t
    floor_cpu = time.process_time() - floor_cpu_start
    return {
        "members": members,
        "dkim": dkim,
        "seconds": round(seconds, 2),
        "messages_per_second": round(members / seconds, 1),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mib": round(peak, 1),
        "rss_before_send_mib": round(rss_before, 1),
        "mean_message_kb": round(total_bytes / members / 1000, 1),
        "floor_seconds": round(floor, 2),
        "floor_cpu_seconds": round(floor_cpu, 2),
        "ratio_to_floor": round(seconds / floor, 2),
    }


def _round(members: int, dkim: bool) -> dict[str, float]:
    """One send and its floor in a fresh process and folder."""
    where = Path(tempfile.mkdtemp(prefix=f"gongbao-bench-{members}-"))
    try:
        env = {**os.environ, "GONGBAO_SECRET": "bench-only-key"}
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(members), "--where", str(where / "paper"),
             *(["--dkim"] if dkim else [])],
            capture_output=True, text=True, check=True, env=env,
        ).stdout
    finally:
        shutil.rmtree(where, ignore_errors=True)
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--dkim", action="store_true", help="sign every copy (DKIM)")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs a size")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--where", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.where, args.dkim)))
        return
    results = []
    for n in args.members:
        rounds = [_round(n, args.dkim) for _ in range(args.rounds)]
        best = min(rounds, key=lambda r: r["seconds"])
        floor = min(r["floor_seconds"] for r in rounds)
        r = {
            **best,
            "floor_seconds": floor,
            "ratio_to_floor": round(best["seconds"] / floor, 2),
            "round_ratios": [r["ratio_to_floor"] for r in rounds],
            "peak_rss_mib": max(r["peak_rss_mib"] for r in rounds),
        }
        results.append(r)
        print(
            f"{n:>6} members: {r['seconds']:7.1f} s ({r['cpu_seconds']:.1f} s CPU), "
            f"{r['messages_per_second']:6.1f} msg/s, "
            f"peak RSS {r['peak_rss_mib']:6.1f} MiB, {r['mean_message_kb']} kB a message; "
            f"floor {r['floor_seconds']:.1f} s, ratio {r['ratio_to_floor']:.2f}× "
            f"(best of {args.rounds}; each round: "
            + ", ".join(f"{x:.2f}×" for x in r["round_ratios"]) + ")",
            flush=True,
        )
    OUT.mkdir(exist_ok=True)
    name = "outbox-dkim.json" if args.dkim else "outbox.json"
    (OUT / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
