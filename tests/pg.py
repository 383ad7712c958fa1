"""A throwaway PostgreSQL server for the tests, started from Debian's binaries.

`PgServer.start()` runs `initdb` into a fresh folder under /tmp and `pg_ctl
start` on it: TCP on 127.0.0.1 only (a free port), its unix socket in that
folder, password authentication with a random password (other users of the
machine cannot log in), and durability switched off (fsync, full page
writes): the data is thrown away with the folder. PostgreSQL refuses to run
as root, and tests and CI run as root: then the commands run as the
`postgres` system user (made by the Debian package) through `runuser`, and
the folder belongs to that user.

The cluster collates text with ICU's zh-CN rules, as a paper's production
database may: anything that orders text and counts on byte order shows up
as a test failure here instead of as a different order in production.

Each pytest-xdist worker starts its own server (own folder, own port), so
nothing is shared between processes; each test gets its own database
(`create_database`). The folder names the process that started the server;
a server whose process is gone (killed before its clean-up ran) is stopped
and its folder removed by the next start.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from glob import glob
from pathlib import Path

from gongbao_feed.host import pid_running

INSTALL_HINT = (
    "the PostgreSQL server is not installed: apt-get install postgresql "
    "(or `make system-deps`)"
)
DRIVER_HINT = "the psycopg driver is not installed: pip install -e '.[postgres]'"

# The system user Debian's package makes; PostgreSQL will not run as root.
SERVICE_USER = "postgres"
SUPERUSER = "postgres"
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
FOLDER_PREFIX = "gongbao-pg-"
OWNER_FILE = "started-by.pid"


class PgUnavailable(Exception):
    """No PostgreSQL to start here; the message says what to install."""


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl: $GONGBAO_PG_BINDIR, Debian's newest
    /usr/lib/postgresql/N/bin, or initdb on the PATH."""
    override = os.environ.get("GONGBAO_PG_BINDIR")
    if override:
        bindir = Path(override)
        if not (bindir / "initdb").is_file():
            raise PgUnavailable(f"GONGBAO_PG_BINDIR={override} has no initdb")
        return bindir
    found = [Path(p).parent for p in glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [b for b in found if (b / "pg_ctl").is_file() and b.parent.name.isdigit()]
    if found:
        return max(found, key=lambda b: int(b.parent.name))
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise PgUnavailable(INSTALL_HINT)


def _driver_check() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PgUnavailable(DRIVER_HINT) from None


def sweep_orphans(bindir: Path) -> None:
    """Stop the servers (and remove the folders) of test processes that died
    without stopping theirs; a folder is only touched when its starter is gone."""
    for root in Path("/tmp").glob(f"{FOLDER_PREFIX}*"):
        try:
            owner = int((root / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or being made right now
        if owner == os.getpid() or pid_running(owner):
            continue
        PgServer(root, bindir, 0, "").stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "initdb"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)", out)
    return int(match.group(1)) if match else 0


@dataclass
class PgServer:
    root: Path
    bindir: Path
    port: int
    password: str
    seconds_to_start: float = 0.0
    _databases: int = 0

    # -- starting and stopping --------------------------------------------
    @classmethod
    def start(cls, attempts: int = 5) -> PgServer:
        """initdb + pg_ctl start; raises PgUnavailable when there is nothing to start."""
        _driver_check()
        bindir = find_bindir()
        as_root = os.geteuid() == 0
        if as_root:
            try:
                pwd.getpwnam(SERVICE_USER)
            except KeyError:
                raise PgUnavailable(
                    f"running as root and there is no {SERVICE_USER!r} user to run "
                    f"PostgreSQL as: {INSTALL_HINT}"
                ) from None
            if not shutil.which("runuser"):
                raise PgUnavailable("running as root and runuser (util-linux) is missing")
        began = time.monotonic()
        sweep_orphans(bindir)
        # Not under pytest's tmp_path: that folder is root's, mode 0700, and the
        # server (another user) must reach its data folder and socket. Short,
        # too: a unix socket path is at most 107 bytes.
        root = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir="/tmp"))
        (root / OWNER_FILE).write_text(f"{os.getpid()}\n")
        server = cls(root, bindir, 0, secrets.token_urlsafe(24))
        try:
            server._initdb()
            for attempt in range(attempts):
                server.port = _free_port()
                server._configure()
                if server._pg_ctl_start():
                    break
                if attempt == attempts - 1 or "already in use" not in server.log():
                    raise RuntimeError(
                        f"PostgreSQL did not start (port {server.port}):\n{server.log()[-3000:]}"
                    )
                # Another process took the port between the probe and the bind.
        except BaseException:
            server.stop()
            raise
        server.seconds_to_start = time.monotonic() - began
        return server

    def stop(self) -> None:
        """Stop the server (if it runs) and remove its folder."""
        if (self.root / "data" / "postmaster.pid").exists():
            done = self._run(
                ["pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "30", "stop"],
                check=False,
            )
            if done.returncode != 0:
                self._kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill(self) -> None:
        pid_file = self.root / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 9)

    def _prefix(self) -> list[str]:
        return ["runuser", "-u", SERVICE_USER, "--"] if os.geteuid() == 0 else []

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*self._prefix(), str(self.bindir / argv[0]), *argv[1:]]
        done = subprocess.run(
            cmd, cwd=self.root, capture_output=True, text=True, timeout=START_TIMEOUT + 30,
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            postgres = pwd.getpwnam(SERVICE_USER)
            for path in (self.root, pwfile):
                os.chown(path, postgres.pw_uid, postgres.pw_gid)
        base = [
            "initdb", "-D", str(self.root / "data"), "-U", SUPERUSER,
            "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
            "--locale=C.UTF-8", "--no-sync",
        ]
        # ICU collation (PostgreSQL 15+), as a real database may have; without
        # ICU, the plain C.UTF-8 cluster.
        if _version(self.bindir) >= 15:
            done = self._run([*base, "--locale-provider=icu", "--icu-locale=zh-CN"], check=False)
            if done.returncode == 0:
                pwfile.unlink()
                return
            shutil.rmtree(self.root / "data", ignore_errors=True)
        self._run(base)
        pwfile.unlink()

    def _configure(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "'32MB'",
            "max_connections": "100",
            "logging_collector": "off",
        }
        conf = self.root / "data" / "postgresql.auto.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))

    def _pg_ctl_start(self) -> bool:
        log = self.root / "server.log"
        done = self._run(
            ["pg_ctl", "-D", str(self.root / "data"), "-l", str(log),
             "-w", "-t", str(START_TIMEOUT), "start"],
            check=False,
        )
        return done.returncode == 0

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- databases ----------------------------------------------------------
    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password,
            dbname="postgres", autocommit=True, connect_timeout=10,
        )

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its SQLAlchemy URL."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}_{secrets.token_hex(3)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
