"""This machine, as the ledger and the outbox need to know it: its name, and
whether a process on it is still running (a sender that died leaves claims and
temporary files behind that only its own host can tell are orphaned)."""

from __future__ import annotations

import os
import socket


def name() -> str:
    return socket.gethostname()


def pid_running(pid: int) -> bool:
    """Is process `pid` alive on this host? A pid reused by another process
    reads as alive: callers then wait (a lease, a later sweep), never delete."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
