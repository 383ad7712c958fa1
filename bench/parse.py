"""Pages per second for the page reader, against reading the same files.

    python bench/parse.py [--pages 1000]

Writes N generated pages (three to seven articles each, mixing lead stories,
briefs, photo news, commentaries and leadless features, with column breaks,
credits, GB18030 and UTF-8) to a temporary folder, then times
  floor:  read each file, decode it, split it into lines;
  reader: read each file and turn it into articles (gongbao_feed.ingest.read_file).
Prints both rates and their ratio. Target: at least 1,000 pages/s.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date
from pathlib import Path

from gongbao_feed.ingest import read_file
from gongbao_feed.pages import decode_page

HAN = "工会职工劳动技能竞赛服务中心区市企业岗位安全生产培训组织活动开展推动建设发展关爱帮扶"
NAMES = ["张明", "李红梅", "王强", "赵小川", "陈思远", "刘芳", "周建国", "吴雪"]
OPENERS = ["近日，", "日前，", "9月5日，", "清晨，"]


def clause(rng: random.Random) -> str:
    return "".join(rng.choice(HAN) for _ in range(rng.randint(6, 20)))


def sentence(rng: random.Random) -> str:
    return "，".join(clause(rng) for _ in range(rng.randint(1, 3))) + rng.choice("。。！")


def head(rng: random.Random, lines: int = 1) -> list[str]:
    return ["".join(rng.choice(HAN) for _ in range(rng.randint(8, 20))) for _ in range(lines)]


def body(rng: random.Random, n: int) -> list[str]:
    return ["".join(sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(n)]


def article(rng: random.Random) -> list[str]:
    """One article of a kind a real page mixes: lead story, brief, photo news,
    commentary, leadless feature; lines in blank-line layout."""
    name, other = rng.sample(NAMES, 2)
    kind = rng.choice(["lead", "lead", "brief", "photo", "commentary", "feature"])
    if kind == "lead":
        paras = body(rng, rng.randint(2, 6))
        paras[0] = f"本报讯（记者 {name} 通讯员 {other}）" + paras[0]
        blocks = head(rng, rng.randint(1, 3)) + paras
        if rng.random() < 0.4:
            blocks.append(f"图为{sentence(rng)}本报记者 {name} 摄")
        return blocks
    if kind == "brief":
        return [*head(rng), rng.choice(OPENERS) + body(rng, 1)[0] + f"（记者{name} 通讯员{other}）"]
    if kind == "photo":
        credit = f"本报记者 {name} 本报通讯员 {other} 摄"
        return [*head(rng), rng.choice(OPENERS) + sentence(rng) + credit]
    if kind == "commentary":
        return [head(rng)[0] + "？", f"本报评论员 {name}", *body(rng, rng.randint(2, 4))]
    paras = body(rng, rng.randint(2, 5))
    paras[0] = rng.choice(OPENERS) + paras[0]
    return [*head(rng), "——" + head(rng)[0], *paras]


def page(rng: random.Random) -> tuple[str, int]:
    """A page's text and how many articles it holds."""
    blocks: list[str] = []
    count = rng.randint(3, 7)
    for _ in range(count):
        for p in article(rng):
            # A column break inside a long paragraph, after its first clause: a short
            # unpunctuated piece after a finished paragraph would be a headline.
            first = p.find("，")
            if len(p) > 60 and "摄" not in p and 0 < first < len(p) - 30 and rng.random() < 0.3:
                cut = rng.randint(first + 1, len(p) - 20)
                blocks += [p[:cut], p[cut:]]
            else:
                blocks.append(p)
    return "\n\n".join(blocks) + "\n", count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(20261126)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        made = 0
        for i in range(args.pages):
            path = Path(tmp) / f"2026-11-20-{i:04d}.txt"
            text, count = page(rng)
            made += count
            path.write_bytes(text.encode("gb18030" if i % 4 == 0 else "utf-8"))
            files.append(path)
        size = sum(p.stat().st_size for p in files)

        def floor() -> int:
            return sum(len(decode_page(p.read_bytes()).splitlines()) for p in files)

        def reader() -> int:
            return sum(len(read_file(p, date(2026, 11, 20)).articles) for p in files)

        floor(), reader()  # warm the page cache and imports
        best = {}
        for name, fn in (("floor", floor), ("reader", reader)):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                count = fn()
                times.append(time.perf_counter() - t0)
            best[name] = (min(times), count)
    f_t, lines = best["floor"]
    r_t, articles = best["reader"]
    print(f"{args.pages} pages, {size / 1e6:.1f} MB, {lines} lines, "
          f"{articles} articles read of {made} written")
    print(f"floor  (read + decode + split lines): {args.pages / f_t:10.0f} pages/s")
    print(f"reader (read + decode + articles):    {args.pages / r_t:10.0f} pages/s")
    print(f"ratio reader/floor time: {r_t / f_t:.1f}x   target: >= 1000 pages/s "
          f"({'met' if args.pages / r_t >= 1000 else 'NOT met'})")


if __name__ == "__main__":
    main()
