"""Requests per second and p99 latency of `gongbao-feed serve` for polling feed readers.

    python bench/serve.py [--requests 2000] [--connections 8]

Makes a working folder with a 50-item feed.xml, starts `gongbao-feed serve`
in its own process (uvicorn, log level WARNING, no access log), and from a
second process sends conditional GETs of /feed.xml (If-None-Match with the
current ETag, Accept-Encoding: gzip, as a feed reader polls) over N
keep-alive connections, each request after the previous answer. Then the
same number of full GETs (200, gzip body) for comparison. Prints requests
per second and p50/p99 latency; the target is at least 1,000 conditional
requests per second on a 2-core machine. It also prints the server's CPU
time per request (from /proc), which other work on a busy machine cannot
inflate. Only 127.0.0.1 is contacted and every loop is bounded in count
and time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HOST = "127.0.0.1"
HAN = "工会职工劳动技能竞赛服务中心区市企业岗位安全生产培训组织活动开展推动建设发展关爱帮扶"


def feed_xml(items: int = 50) -> str:
    """A feed about the size of the real one: 50 items with Chinese summaries."""
    rng = random.Random(8)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>',
           "<title>职工时报</title><link>https://news.example.org/</link>"]
    for n in range(items):
        title = "".join(rng.choice(HAN) for _ in range(16))
        body = "".join(rng.choice(HAN) for _ in range(600))
        out.append(f"<item><title>{title}</title><link>https://news.example.org/articles/{n}.html"
                   f"</link><description>{body}</description></item>")
    out.append("</channel></rss>\n")
    return "".join(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc): a figure other load cannot inflate."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, port: int, etag: str, requests: int, connections: int) -> dict:
    before = cpu_seconds(pid)
    result = run_client(port, etag, requests, connections)
    after = cpu_seconds(pid)
    if before is not None and after is not None:
        result["cpu_us"] = (after - before) / result["requests"] * 1e6
    return result


def wait_for(port: int, proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start listening")


# -- the client (runs in its own process) ------------------------------------------


async def _connection(port: int, request: bytes, count: int, times: list[float],
                      statuses: Counter[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            times.append(time.perf_counter() - start)
            statuses[int(head[9:12])] += 1
    finally:
        writer.close()


async def _load(port: int, path: str, etag: str, requests: int, connections: int) -> dict:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Accept-Encoding: gzip",
             "User-Agent: gongbao-bench"]
    if etag:
        lines.append(f"If-None-Match: {etag}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    times: list[float] = []
    statuses: Counter[int] = Counter()
    share = [requests // connections + (i < requests % connections) for i in range(connections)]
    began = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(_connection(port, request, n, times, statuses) for n in share)), 120
    )
    elapsed = time.perf_counter() - began
    times.sort()
    return {
        "requests": len(times),
        "seconds": elapsed,
        "rps": len(times) / elapsed,
        "p50_ms": times[len(times) // 2] * 1000,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        "statuses": dict(statuses),
    }


def client_main(argv: list[str]) -> None:
    port, path, etag, requests, connections = argv
    result = asyncio.run(_load(int(port), path, etag, int(requests), int(connections)))
    print(json.dumps(result))


def run_client(port: int, etag: str, requests: int, connections: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--client", str(port), "/feed.xml", etag, str(requests),
         str(connections)],
        capture_output=True, text=True, timeout=180, check=True,
    )
    return json.loads(out.stdout)


# -- the driver --------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    from gongbao_feed.skeleton import init_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "paper"
        init_folder(folder)
        config = folder / "config.toml"
        config.write_text(config.read_text("utf-8").replace('level = "INFO"', 'level = "WARNING"'),
                          "utf-8")
        feed = feed_xml().encode()
        (folder / "public" / "feed.xml").write_bytes(feed)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-c", "from gongbao_feed.cli import main; main()", "serve",
             "--config", str(config), "--host", HOST, "--port", str(port)],
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(port, server)
            import http.client

            conn = http.client.HTTPConnection(HOST, port, timeout=10)
            conn.request("GET", "/feed.xml", headers={"Accept-Encoding": "gzip"})
            first = conn.getresponse()
            packed = len(first.read())
            etag = first.getheader("ETag") or ""
            conn.close()
            run_client(port, etag, 200, args.connections)  # warm up
            cond = measured(server.pid, port, etag, args.requests, args.connections)
            full = measured(server.pid, port, "", args.requests, args.connections)
        finally:
            server.terminate()
            server.wait(timeout=15)

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
    print(f"server: gongbao-feed serve (uvicorn, {loop} + {http_impl}), one process")
    print(f"feed.xml: {len(feed):,} bytes, {packed:,} gzipped")
    for label, r in (("conditional GETs (304)", cond), ("full GETs (200, gzip)", full)):
        print(f"{label}: {r['requests']} over {args.connections} connections in "
              f"{r['seconds']:.2f} s: {r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
              f"p99 {r['p99_ms']:.2f} ms, statuses {r['statuses']}")
        if "cpu_us" in r:
            print(f"    server CPU {r['cpu_us']:.0f} us/request, "
                  f"so one core serves up to {1e6 / max(r['cpu_us'], 1):,.0f} req/s")
    verdict = "met" if cond["rps"] >= 1000 and set(cond["statuses"]) == {"304"} else "NOT met"
    print(f"target >= 1,000 conditional req/s: {verdict}")


if __name__ == "__main__":
    main()
