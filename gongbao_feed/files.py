"""Atomic file writes: readers never see half a feed or half a message."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(
    path: Path, data: bytes | str, *, mode: int | None = None, durable: bool = True
) -> bool:
    """Write `data` to `path` through a temporary file and a rename.

    Returns False, touching nothing, when the file already holds exactly
    these bytes: a render with nothing changed leaves every file (and its
    mtime, which web caches key on) as it was. `durable=False` skips the
    fsync for files that can be rebuilt (the public folder): the rename still
    keeps readers from ever seeing half a file, and a first render of a large
    archive takes a second instead of one disk flush per page.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
