"""A real uvicorn server on loopback in a thread; a raw-socket GET that keeps the path as sent."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import uvicorn

from gongbao_feed.outbox import eml_name, issue_folder


def loopback_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1: its address is known before the app exists."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def base_url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def running(
    app: Any, sock: socket.socket | None = None, options: dict[str, Any] | None = None
) -> Iterator[str]:
    """Serve `app` on `sock` (default: a free loopback port); yield its base URL, no slash.

    `options`: more uvicorn.Config arguments (host and port are the socket's).
    """
    sock = sock or loopback_socket()
    extra = {k: v for k, v in (options or {}).items() if k not in ("host", "port")}
    extra.setdefault("log_level", "warning")
    extra.setdefault("access_log", False)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **extra))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def raw_request(base: str, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send `target` byte for byte (no client normalises dots or escapes); status and body."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


def digest_unsubscribe_link(outbox: Path, issue: int, email: str) -> str:
    """The web link in the List-Unsubscribe header of the digest the outbox holds for `email`."""
    path = issue_folder(outbox, issue) / eml_name(email)
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    found = re.search(r"<(https?://[^>]+)>", str(message["List-Unsubscribe"]))
    assert found, message["List-Unsubscribe"]
    return found.group(1)
