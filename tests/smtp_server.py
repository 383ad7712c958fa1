"""A real SMTP relay on 127.0.0.1 for tests and the benchmark: aiosmtpd.

It speaks STARTTLS with a certificate made at test time (a private CA and a
leaf for 127.0.0.1/localhost, so the client trusts it through `ca_file`
exactly as it would a private relay), requires AUTH LOGIN/PLAIN with a test
password, and can misbehave on purpose:

    busy_connects   answer 421 at connect to the first N connections
    soft_fail_once  answer 451 to these recipients on their first RCPT
    soft_fail       answer 451 to these recipients, always
    hard_fail       answer 550 to these recipients, always
    drop_in_data    cut the connection in the middle of DATA, the first
                    time a message for one of these recipients arrives
    close_after     close a connection after this many messages

It records every accepted message: envelope sender, recipients and the
bytes as received (dot-stuffing undone, nothing added), or, with
`record=False`, only counts them (the benchmark's discarding relay).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

USERNAME = "relay-user"
PASSWORD = "test-relay-secret-7f3a"


@dataclass(frozen=True)
class Received:
    """One message the relay accepted."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass
class Faults:
    busy_connects: int = 0
    soft_fail_once: frozenset[str] = frozenset()
    soft_fail: frozenset[str] = frozenset()
    hard_fail: frozenset[str] = frozenset()
    drop_in_data: frozenset[str] = frozenset()
    close_after: int = 0


@dataclass
class _State:
    faults: Faults
    record: bool
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    connections: int = 0
    soft_failed: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)
    refusals: list[tuple[str, int]] = field(default_factory=list)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 and localhost.

    Returns (ca.pem, server.pem, server.key); EC keys keep it fast.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gongbao test relay CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, cert_pem, key_pem


class _Handler:
    def __init__(self, state: _State) -> None:
        self.state = state

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        st = self.state
        with st.lock:
            if address in st.faults.hard_fail:
                st.refusals.append((address, 550))
                return f"550 5.1.1 <{address}>: mailbox unavailable (test)"
            if address in st.faults.soft_fail or (
                address in st.faults.soft_fail_once and address not in st.soft_failed
            ):
                st.soft_failed.add(address)
                st.refusals.append((address, 451))
                return f"451 4.3.0 <{address}>: try again later (test)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        st = self.state
        with st.lock:
            st.accepted += 1
            number = st.accepted
            if st.record:
                st.received.append(
                    Received(
                        str(envelope.mail_from),
                        tuple(envelope.rcpt_tos),
                        bytes(envelope.original_content or b""),
                    )
                )
        count = getattr(session, "gongbao_count", 0) + 1
        session.gongbao_count = count  # type: ignore[attr-defined]
        if st.faults.close_after and count >= st.faults.close_after:
            server.loop.call_soon(_close, server)
        return f"250 2.0.0 Ok: queued as T{number:06d}"


def _close(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class _QuietSession(Session):
    """aiosmtpd 1.4 sets its own deprecated `login_data` on every AUTH; keep it quiet."""

    @property  # type: ignore[override]
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _FaultySMTP(SMTP):
    """aiosmtpd's server, able to cut a connection in the middle of DATA."""

    state: _State

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    async def smtp_DATA(self, arg: str) -> None:
        st = self.state
        victim = None
        if self.envelope.rcpt_tos and not arg:
            with st.lock:
                for rcpt in self.envelope.rcpt_tos:
                    if rcpt in st.faults.drop_in_data and rcpt not in st.dropped:
                        st.dropped.add(rcpt)
                        victim = rcpt
                        break
        if victim is None:
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readline()  # the first line of the message, then gone
        assert self.transport is not None
        self.transport.abort()
        await asyncio.sleep(0)  # let connection_lost run before the next line is read


class _Busy(asyncio.Protocol):
    """A connection the relay turns away at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(b"421 4.3.2 too busy, try again later (test)\r\n")
        transport.close()


class SmtpTestServer:
    """aiosmtpd on 127.0.0.1 and a free port, in its own thread.

    Use as a context manager. `tls=True` offers STARTTLS (and requires it),
    `implicit_tls=True` speaks TLS from the first byte instead; `auth=True`
    requires AUTH with USERNAME/PASSWORD (only over TLS, like a real relay).
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        tls: bool = True,
        implicit_tls: bool = False,
        auth: bool = True,
        faults: Faults | None = None,
        record: bool = True,
        port: int = 0,
    ) -> None:
        if (tls or implicit_tls) and folder is None:
            raise ValueError("a folder for the certificates is needed with TLS")
        self.tls = tls and not implicit_tls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.state = _State(faults or Faults(), record)
        self.ca_file: Path | None = None
        self._tls_context: ssl.SSLContext | None = None
        if tls or implicit_tls:
            assert folder is not None
            self.ca_file, cert, key = make_certificates(folder)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
            self._tls_context = ctx
        self.host = "127.0.0.1"
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # -- what the relay saw ---------------------------------------------------
    @property
    def received(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.received)

    @property
    def accepted(self) -> int:
        with self.state.lock:
            return self.state.accepted

    @property
    def connections(self) -> int:
        with self.state.lock:
            return self.state.connections

    @property
    def refusals(self) -> list[tuple[str, int]]:
        with self.state.lock:
            return list(self.state.refusals)

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for msg in self.received:
            for rcpt in msg.recipients:
                out.setdefault(rcpt, []).append(msg)
        return out

    def smtp_settings(self, **overrides: Any) -> dict[str, Any]:
        """An [smtp] table pointing at this relay (password from GONGBAO_TEST_SMTP_PASSWORD)."""
        settings: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "security": "tls" if self.implicit_tls else "starttls" if self.tls else "none",
            "username": USERNAME if self.auth else "",
            "password_env": "GONGBAO_TEST_SMTP_PASSWORD",
            "ca_file": str(self.ca_file) if self.ca_file else "",
        }
        settings.update(overrides)
        return settings

    # -- running ----------------------------------------------------------------
    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == USERNAME
            and data.password.decode() == PASSWORD
        )
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535

    def _protocol(self) -> asyncio.Protocol:
        st = self.state
        with st.lock:
            st.connections += 1
            busy = st.connections <= st.faults.busy_connects
        if busy:
            return _Busy()
        smtp = _FaultySMTP(
            _Handler(st),
            hostname="relay.test",
            tls_context=self._tls_context if self.tls else None,
            require_starttls=self.tls,
            auth_required=self.auth,
            auth_require_tls=self.tls,  # over implicit TLS aiosmtpd cannot tell; it is TLS
            enable_SMTPUTF8=True,
            authenticator=self._authenticate if self.auth else None,
            timeout=60,
            loop=self._loop,
        )
        smtp.state = st
        return smtp

    def start(self) -> SmtpTestServer:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                self._loop.create_server(
                    self._protocol, self.host, self.port, family=socket.AF_INET,
                    ssl=self._tls_context if self.implicit_tls else None,
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the test SMTP server did not start")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._thread = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def addresses(n: int, domain: str = "members.test") -> list[str]:
    return [f"m{i:05d}@{domain}" for i in range(n)]
