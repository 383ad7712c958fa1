"""The bounce mailbox: its messages read one at a time, and each processed one moved aside.

Two kinds behind one interface (`BounceSource`):

- `MaildirSource`: a Maildir folder the MTA delivers the bounce domain to
  (stdlib `mailbox.Maildir`). A processed message is renamed into the
  Maildir++ subfolder `.processed/cur/` with the Seen flag: one rename, so it
  is never in both places nor in neither, and never deleted.
- `ImapSource`: a folder on an IMAP server over TLS (imaplib, the system's
  trusted certificates, the password from the environment). Messages are
  read with BODY.PEEK[] (they stay unseen), and a processed one is moved
  with UID MOVE (RFC 6851) into `bounces.imap_processed_folder`, or, on a
  server without MOVE, copied there first and only then flagged \\Deleted
  and expunged by UID (RFC 4315).

What is not processed (an unrecognised message) is not touched.
`MemoryImap` is the IMAP server's test double: an object with imaplib's
method names and reply shapes, injected as `ImapSource(connect=…)`.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .config import Config
from .errors import BounceError
from .i18n import _

#: The Maildir++ subfolder processed messages go to (a folder `.processed`).
PROCESSED = "processed"


@dataclass(frozen=True)
class Incoming:
    """One message: `key` to move it by, `name` to report it by, its bytes."""

    key: str
    name: str
    data: bytes


class BounceSource(Protocol):
    """Where bounces are read from; `done` moves a processed message aside."""

    description: str

    def messages(self) -> Iterator[Incoming]: ...

    def done(self, key: str) -> None: ...

    def close(self) -> None: ...


class MaildirSource:
    """A Maildir folder (new/, cur/, tmp/)."""

    def __init__(self, path: Path, key_name: str = "bounces.maildir") -> None:
        self.path = path
        self.description = str(path)
        if not all((path / sub).is_dir() for sub in ("new", "cur", "tmp")):
            raise BounceError(
                _("{key}: {path} is not a Maildir (it needs new/, cur/ and tmp/)").format(
                    key=key_name, path=path),
                hint=_("have the mail server deliver the bounce address there "
                       "(Postfix: home_mailbox = Maildir/), or set [bounces] maildir or "
                       "imap_host"),
            )
        self.box = mailbox.Maildir(path, factory=None, create=False)
        self._files: dict[str, Path] = {}

    def messages(self) -> Iterator[Incoming]:
        self._files = self._scan()
        for key in sorted(self._files):
            try:
                data = self.box.get_bytes(key)
            except (KeyError, FileNotFoundError):  # gone meanwhile (another reader)
                continue
            yield Incoming(key, self._files[key].relative_to(self.path).as_posix(), data)

    def _scan(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for sub in ("new", "cur"):
            for entry in os.scandir(self.path / sub):
                if entry.is_file() and not entry.name.startswith("."):
                    files[entry.name.split(self.box.colon, 1)[0]] = Path(entry.path)
        return files

    def done(self, key: str) -> None:
        """Rename the message into .processed/cur/, its flags kept and S added."""
        source = self._files.pop(key)
        folder = self.path / f".{PROCESSED}"
        if not (folder / "cur").is_dir():
            self.box.add_folder(PROCESSED)
        info = source.name.split(self.box.colon, 1)[1] if self.box.colon in source.name else ""
        flags = set(info[2:]) if info.startswith("2,") else set()
        name = f"{key}{self.box.colon}2,{''.join(sorted(flags | {'S'}))}"
        os.replace(source, folder / "cur" / name)

    def close(self) -> None:
        self.box.close()


class ImapConnection(Protocol):
    """What ImapSource uses of imaplib.IMAP4 (and MemoryImap provides)."""

    capabilities: tuple[str, ...]

    def login(self, user: str, password: str) -> tuple[str, list[Any]]: ...

    def select(self, mailbox: str = ..., readonly: bool = ...) -> tuple[str, list[Any]]: ...

    def create(self, mailbox: str) -> tuple[str, list[Any]]: ...

    def uid(self, command: str, *args: str) -> tuple[str, list[Any]]: ...

    def logout(self) -> tuple[str, list[Any]]: ...


class ImapSource:
    """One folder on an IMAP server; `connect` makes the connection (tests inject
    a MemoryImap), by default IMAP4_SSL with the system's trusted certificates."""

    def __init__(
        self, config: Config, connect: Callable[[], ImapConnection] | None = None
    ) -> None:
        b = config.bounces
        self.folder = b.imap_folder
        self.processed = b.imap_processed_folder
        self.description = f"imaps://{b.imap_user}@{b.imap_host}/{b.imap_folder}"
        password = config.imap_password()
        if not password:
            raise BounceError(
                _("bounces.imap_password_env: the environment variable {name} is not set")
                .format(name=b.imap_password_env or "?"),
                hint=_("put the bounce mailbox's password in that variable (the service's "
                       "environment file), never in config.toml"),
            )
        if not b.imap_user:
            raise BounceError(_("bounces.imap_user: empty; expected the mailbox's login name"))
        connect = connect or (lambda: imaplib.IMAP4_SSL(
            b.imap_host, b.imap_port, ssl_context=ssl.create_default_context(), timeout=60))
        try:
            self.conn = connect()
            self._ok(self.conn.login(b.imap_user, password), "LOGIN")
            self._ok(self.conn.select(_quote(self.folder)), "SELECT")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise BounceError(
                _("cannot read the bounce mailbox {where}: {reason}").format(
                    where=self.description, reason=exc),
                hint=_("check bounces.imap_host, imap_user, imap_folder and the password"),
            ) from None
        self.conn.create(_quote(self.processed))  # NO when it exists: that is fine

    def messages(self) -> Iterator[Incoming]:
        typ, data = self.conn.uid("SEARCH", "ALL")
        self._ok((typ, data), "UID SEARCH")
        uids = (data[0] or b"").split() if data else []
        for uid in uids:
            typ, fetched = self.conn.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
            body = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if typ != "OK" or not isinstance(body, bytes):
                continue  # expunged meanwhile
            yield Incoming(uid.decode(), f"{self.folder} UID {uid.decode()}", body)

    def done(self, key: str) -> None:
        """Move the message into the processed folder; never deleted before it is copied."""
        caps = {c.upper() for c in self.conn.capabilities}
        if "MOVE" in caps:
            self._ok(self.conn.uid("MOVE", key, _quote(self.processed)), "UID MOVE")
            return
        self._ok(self.conn.uid("COPY", key, _quote(self.processed)), "UID COPY")
        self._ok(self.conn.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE")
        if "UIDPLUS" in caps:
            self._ok(self.conn.uid("EXPUNGE", key), "UID EXPUNGE")

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.conn.logout()

    def _ok(self, reply: tuple[str, list[Any]], command: str) -> None:
        typ, data = reply
        if typ != "OK":
            said = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise BounceError(
                _("the IMAP server refused {command} on {where}: {reply}").format(
                    command=command, where=self.description, reply=said or typ),
                hint=_("check bounces.imap_folder and imap_processed_folder"),
            )


def _quote(name: str) -> str:
    """A mailbox name as an IMAP quoted string (RFC 3501 §9)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def open_source(config: Config, maildir: Path | None = None) -> BounceSource:
    """`maildir` if given, else IMAP when bounces.imap_host is set, else bounces.maildir."""
    if maildir is not None:
        return MaildirSource(maildir, key_name="--maildir")
    if config.bounces.imap_host:
        return ImapSource(config)
    return MaildirSource(config.bounce_maildir)


# -- the IMAP server's test double -------------------------------------------------


@dataclass
class _Stored:
    uid: int
    data: bytes
    flags: set[str] = field(default_factory=set)


class MemoryImap:
    """An IMAP server's folders in memory, spoken to as imaplib.IMAP4 is.

    Just the commands ImapSource sends, with imaplib's reply shapes
    (`("OK", [...])`), the password checked, and every command kept in `log`.
    `capabilities` decides whether MOVE is offered, so both ways of moving a
    message are exercised. Inject it: `ImapSource(config, connect=lambda: imap)`.
    """

    def __init__(self, user: str, password: str,
                 capabilities: tuple[str, ...] = ("IMAP4REV1", "MOVE", "UIDPLUS")) -> None:
        self.user, self.password = user, password
        self.capabilities = capabilities
        self.folders: dict[str, list[_Stored]] = {"INBOX": []}
        self.log: list[str] = []
        self._next_uid = 1
        self._selected: str | None = None
        self._logged_in = False

    def add(self, folder: str, data: bytes) -> int:
        """Deliver a message into `folder` (made if missing); its UID."""
        uid = self._next_uid
        self._next_uid += 1
        self.folders.setdefault(folder, []).append(_Stored(uid, data))
        return uid

    def login(self, user: str, password: str) -> tuple[str, list[Any]]:
        self.log.append(f"LOGIN {user}")
        if (user, password) != (self.user, self.password):
            raise imaplib.IMAP4.error("b'[AUTHENTICATIONFAILED] Authentication failed.'")
        self._logged_in = True
        return "OK", [b"Logged in"]

    def select(self, mailbox: str = "INBOX", readonly: bool = False) -> tuple[str, list[Any]]:
        name = _unquote(mailbox)
        self.log.append(f"SELECT {name}")
        if not self._logged_in or name not in self.folders:
            return "NO", [b"Mailbox doesn't exist"]
        self._selected = name
        return "OK", [str(len(self.folders[name])).encode()]

    def create(self, mailbox: str) -> tuple[str, list[Any]]:
        name = _unquote(mailbox)
        self.log.append(f"CREATE {name}")
        if name in self.folders:
            return "NO", [b"[ALREADYEXISTS] Mailbox already exists"]
        self.folders[name] = []
        return "OK", [b"Create completed"]

    def uid(self, command: str, *args: str) -> tuple[str, list[Any]]:
        command = command.upper()
        self.log.append(" ".join(("UID", command, *args)))
        if self._selected is None:
            raise imaplib.IMAP4.error("command UID illegal in state AUTH")
        here = self.folders[self._selected]
        if command == "SEARCH":
            return "OK", [" ".join(str(m.uid) for m in here).encode()]
        found = next((m for m in here if str(m.uid) == args[0]), None)
        if command == "FETCH":
            if found is None:
                return "OK", [None]
            if "PEEK" not in args[1]:
                found.flags.add(r"\Seen")
            head = f"1 (UID {found.uid} BODY[] {{{len(found.data)}}}".encode()
            return "OK", [(head, found.data), b")"]
        if found is None:
            return "NO", [b"No such message"]
        if command in ("COPY", "MOVE"):
            target = _unquote(args[1])
            if target not in self.folders:
                return "NO", [b"[TRYCREATE] Mailbox doesn't exist"]
            if command == "MOVE" and "MOVE" not in self.capabilities:
                return "BAD", [b"Unknown command"]
            self.add(target, found.data)
            if command == "MOVE":
                here.remove(found)
            return "OK", [b"Done"]
        if command == "STORE":
            found.flags.update(args[2].strip("()").split())
            return "OK", [None]
        if command == "EXPUNGE":
            if r"\Deleted" in found.flags:
                here.remove(found)
            return "OK", [None]
        return "BAD", [f"Unknown command {command}".encode()]

    def logout(self) -> tuple[str, list[Any]]:
        self.log.append("LOGOUT")
        self._logged_in = False
        return "BYE", [b"Logging out"]
