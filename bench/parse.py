"""Pages per second for the page reader, against reading the same files.

    python bench/parse.py [--pages 1000]

Writes N generated pages (several articles each, column breaks, credits,
GB18030 and UTF-8) to a temporary folder, then times
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


def sentence(rng: random.Random) -> str:
    return "".join(rng.choice(HAN) for _ in range(rng.randint(15, 60))) + rng.choice("。。！")


def page(rng: random.Random) -> str:
    blocks: list[str] = []
    for _ in range(rng.randint(3, 7)):
        blocks += ["".join(rng.choice(HAN) for _ in range(rng.randint(8, 20)))
                   for _ in range(rng.randint(1, 3))]
        lead = f"本报讯（记者 {rng.choice(NAMES)} 通讯员 {rng.choice(NAMES)}）"
        paras = ["".join(sentence(rng) for _ in range(rng.randint(2, 5)))
                 for _ in range(rng.randint(2, 6))]
        paras[0] = lead + paras[0]
        for p in paras:
            if rng.random() < 0.3:
                cut = rng.randint(1, len(p) - 2)
                blocks += [p[:cut], p[cut:]]
            else:
                blocks.append(p)
        if rng.random() < 0.4:
            blocks.append(f"图为{sentence(rng)}本报记者 {rng.choice(NAMES)} 摄")
    return "\n\n".join(blocks) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(20261126)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.pages):
            path = Path(tmp) / f"2026-11-20-{i:04d}.txt"
            text = page(rng)
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
    print(f"{args.pages} pages, {size / 1e6:.1f} MB, {lines} lines, {articles} articles")
    print(f"floor  (read + decode + split lines): {args.pages / f_t:10.0f} pages/s")
    print(f"reader (read + decode + articles):    {args.pages / r_t:10.0f} pages/s")
    print(f"ratio reader/floor time: {r_t / f_t:.1f}x   target: >= 1000 pages/s "
          f"({'met' if args.pages / r_t >= 1000 else 'NOT met'})")


if __name__ == "__main__":
    main()
