"""How close the SMTP transport comes to the floor: a bare smtplib loop.

    python bench/smtp.py [--messages 10000] [--rounds 2] [--size-kb 24] [--no-starttls] [--dkim]

A discarding aiosmtpd relay runs on 127.0.0.1 in a separate process (so it
does not share the client's GIL). For 1 and 4 connections the same
messages go out twice in the same run: once through SmtpTransport, once
through the floor — one thread per connection, each a plain
`smtplib.SMTP.sendmail` loop over its share of the same bytes. Both set
TCP_NODELAY and keep each connection for the whole run, so the ratio is
the transport's own cost (threads, queue, outcomes, reports). Target: at
most 1.2x the floor's time. Each figure is the best of `--rounds` runs,
the two senders taking turns to go first, so a busy machine skews neither.

With `--dkim` a 2048-bit key is made in a temporary folder and our side
signs each message as a send does: one message ahead of the transport, on
the send loop's second thread (`deliver.made_ahead`), so the ratio includes
signing; the floor sends the same signed bytes, signed before the clock.

With STARTTLS (on by default) a last row measures the floor again without
TCP_NODELAY on a few hundred messages, to show what Nagle's algorithm
costs a reused TLS connection.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import smtplib
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gongbao_feed.config import SmtpConfig
from gongbao_feed.deliver import Message, Outcome, made_ahead
from gongbao_feed.models import Member
from gongbao_feed.signing import is_relaxed_canonical
from gongbao_feed.smtp import SmtpTransport
from tests.smtp_server import PASSWORD, USERNAME, SmtpTestServer

SENDER = "digest@news.example.org"


# -- the relay, in its own process ------------------------------------------------------
def _serve(tls: bool, folder: str, pipe: Connection) -> None:
    server = SmtpTestServer(Path(folder), tls=tls, auth=tls, record=False).start()
    pipe.send((server.port, str(server.ca_file or "")))
    while pipe.recv() == "count":
        pipe.send(server.accepted)
    server.stop()


@dataclass
class Relay:
    port: int
    ca_file: str
    pipe: Connection
    process: mp.process.BaseProcess

    def accepted(self) -> int:
        self.pipe.send("count")
        return int(self.pipe.recv())

    def close(self) -> None:
        self.pipe.send("stop")
        self.process.join(10)


def start_relay(tls: bool, folder: Path) -> Relay:
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(tls, str(folder), theirs), daemon=True)
    process.start()
    port, ca_file = ours.recv()
    return Relay(port, ca_file, ours, process)


# -- the messages -----------------------------------------------------------------------
def digest_bytes(size_kb: int) -> bytes:
    """A digest-shaped message: text and HTML, Chinese, base64, CRLF."""
    para = "本报讯 市总工会今天召开职工代表座谈会，听取一线职工对技能培训和劳动保护的意见。"
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = f"职工时报 <{SENDER}>"
    msg["To"] = "member@members.test"
    msg["Subject"] = "职工时报 第128期 · 2026-11-22"
    msg["Message-ID"] = "<bench.128@news.example.org>"
    n = max(1, size_kb * 1024 // (len(para.encode()) * 2 * 4 // 3 + 20))
    msg.set_content("\n\n".join([para] * n))
    msg.add_alternative(
        "<html><body>" + "".join(f"<p>{para}</p>" for _ in range(n)) + "</body></html>",
        subtype="html",
    )
    return msg.as_bytes()


def messages(count: int, data: bytes) -> list[Message]:
    return [
        Message(128, f"m{i:05d}@members.test", SENDER, (f"m{i:05d}@members.test",),
                f"<bench.{i}@news.example.org>", data)
        for i in range(count)
    ]


# -- the two senders ----------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # the client process's CPU seconds, all threads


def run_transport(
    relay: Relay, tls: bool, conns: int, msgs: list[Message], signer: Any = None
) -> Timing:
    settings = SmtpConfig(
        host="127.0.0.1",
        port=relay.port,
        security="starttls" if tls else "none",
        username=USERNAME if tls else "",
        ca_file=relay.ca_file,
        connections=conns,
        messages_per_connection=len(msgs),
    )
    transport = SmtpTransport(
        settings, PASSWORD if tls else None, ca_file=Path(relay.ca_file) if tls else None
    )
    done: list[Outcome] = []
    start, cpu = time.perf_counter(), time.process_time()
    stream: Iterable[Message] = msgs
    if signer is not None:
        # Signed one by one, one message ahead of the transport, as a send's loop
        # makes (and signs) each member's copy: deliver.made_ahead, the same code.
        # As the Mailer signs: the fields every copy shares hashed once
        # (Signer.copies), each copy's own (To, Message-ID) and body per copy, the
        # body's canonical form checked once (every copy has the same frame).
        by_email = {m.email: m for m in msgs}
        unsigned = msgs[0].data[msgs[0].data.index(b"From: "):]
        fields, body = unsigned.split(b"\r\n\r\n", 1)
        own_field = re.compile(rb"(?m)^(?:To|Message-ID):.*\r\n(?:[ \t].*\r\n)*")
        own = b"".join(own_field.findall(fields + b"\r\n"))
        copies = signer.copies(own_field.sub(b"", fields + b"\r\n"), 1_795_000_000)
        canonical = is_relaxed_canonical(body)

        def signed(member: Member) -> Message:
            m = by_email[member.email]
            data = m.data[m.data.index(b"From: "):]
            return replace(m, data=copies.signature(own, [body], canonical_body=canonical) + data)

        members = [Member(email=m.email) for m in msgs]
        stream = (made for _member, made in made_ahead(members, lambda _e: True, signed)
                  if isinstance(made, Message))
    transport.deliver(stream, done.append, threading.Event())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    failed = [o for o in done if o.state != "sent"]
    if len(done) != len(msgs) or failed:
        raise SystemExit(f"transport: {len(done)} reported, {len(failed)} not sent")
    return Timing(elapsed, cpu)


def run_floor(
    relay: Relay, tls: bool, conns: int, msgs: Sequence[Message], nodelay: bool = True
) -> Timing:
    context = ssl.create_default_context(cafile=relay.ca_file) if tls else None
    errors: list[BaseException] = []

    def loop(share: Sequence[Message]) -> None:
        try:
            smtp = smtplib.SMTP("127.0.0.1", relay.port, timeout=30)
            if nodelay:
                assert smtp.sock is not None
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                smtp.starttls(context=context)
                smtp.login(USERNAME, PASSWORD)
            for m in share:
                smtp.sendmail(m.sender, list(m.recipients), m.data)
            smtp.quit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(msgs[i::conns],)) for i in range(conns)]
    start, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if errors:
        raise SystemExit(f"floor: {errors[0]!r}")
    return Timing(elapsed, cpu)


# -- the table --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size-kb", type=int, default=24)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=2, help="best of this many runs each")
    parser.add_argument("--no-starttls", action="store_true", help="measure plain SMTP only")
    parser.add_argument("--nagle-messages", type=int, default=200)
    parser.add_argument("--dkim", action="store_true", help="sign each message (DKIM)")
    args = parser.parse_args(argv)

    data = digest_bytes(args.size_kb)
    signer = None
    if args.dkim:
        from gongbao_feed.signing import Signer, generate_key, load_key, private_pem, write_key

        with tempfile.TemporaryDirectory() as keys:
            path = Path(keys) / "dkim.key"
            write_key(path, private_pem(generate_key()))
            signer = Signer("news.example.org", "bench", load_key(path.read_bytes(), str(path)))
        data = signer.sign(data, 1_795_000_000)  # what the floor sends: the same signed bytes
    msgs = messages(args.messages, data)
    print(f"{args.messages} messages{' (DKIM-signed)' if signer else ''} of "
          f"{len(data) / 1024:.1f} KiB to a discarding aiosmtpd "
          f"on 127.0.0.1 (separate process); {mp.cpu_count()} CPUs")
    print()
    header = (f"{'security':<10}{'conns':>6}{'floor msg/s':>13}{'ours msg/s':>12}{'ratio':>8}"
              f"{'floor CPU µs/msg':>18}{'ours CPU µs/msg':>17}{'ratio':>8}")
    print(header)
    print("-" * len(header))
    modes = [False] if args.no_starttls else [False, True]
    with tempfile.TemporaryDirectory() as tmp:
        for tls in modes:
            relay = start_relay(tls, Path(tmp) / ("tls" if tls else "plain"))
            try:
                for conns in args.connections:
                    floors, ourses = [], []
                    for r in range(args.rounds):
                        before = relay.accepted()
                        if r % 2:
                            ourses.append(run_transport(relay, tls, conns, msgs, signer))
                            floors.append(run_floor(relay, tls, conns, msgs))
                        else:
                            floors.append(run_floor(relay, tls, conns, msgs))
                            ourses.append(run_transport(relay, tls, conns, msgs, signer))
                        got = relay.accepted() - before
                        if got != 2 * len(msgs):
                            raise SystemExit(f"the relay accepted {got}, not {2 * len(msgs)}")
                    floor, ours = min(f.wall for f in floors), min(o.wall for o in ourses)
                    fcpu, ocpu = min(f.cpu for f in floors), min(o.cpu for o in ourses)
                    n = len(msgs)
                    print(f"{'starttls' if tls else 'none':<10}{conns:>6}{n / floor:>13.0f}"
                          f"{n / ours:>12.0f}{ours / floor:>7.2f}x"
                          f"{fcpu / n * 1e6:>18.0f}{ocpu / n * 1e6:>17.0f}{ocpu / fcpu:>7.2f}x",
                          flush=True)
                if tls and args.nagle_messages:
                    few = msgs[: args.nagle_messages]
                    slow = run_floor(relay, tls, 1, few, nodelay=False).wall
                    fast = run_floor(relay, tls, 1, few, nodelay=True).wall
                    print(f"\nstarttls, 1 connection, bare smtplib on {len(few)} messages: "
                          f"{len(few) / slow:.0f} msg/s without TCP_NODELAY, "
                          f"{len(few) / fast:.0f} msg/s with it")
            finally:
                relay.close()
    print("\nratio = our time / floor time (target: at most 1.20x); CPU: the client "
          "process's CPU time per message, a check that holds on a busy machine too")


if __name__ == "__main__":
    main()
