"""The SMTP transport: the digests go out through a relay, exactly once.

Built on the standard library's smtplib. Each of `smtp.connections`
threads holds one connection, reused for many messages and opened again
when the relay closes it or after `smtp.messages_per_connection`. The
pre-serialised bytes are sent as they are.

Each message ends in exactly one report:

    2xx to DATA                 SENT, with the relay's reply text
    4xx, or connection lost     tried again after a growing, jittered pause,
                                FAILED (temporary) after `smtp.max_attempts`
    5xx                         FAILED (permanent) at once
    stopped before its turn     PENDING (never tried) or FAILED (temporary,
                                with the last reply) when it was waiting
                                to be tried again

A connection reports a message after the relay answered DATA, once the
next message's MAIL, RCPT, DATA and body have gone: the ledger records it
while the relay reads that body, and the next message's final dot (the
moment the relay takes it, RFC 5321 §4.1.1.4) is sent only when the record
is written. So a crash between the relay's 2xx and the ledger write can
still repeat at most one message per connection, and the ledger's round
trip is off the send's path. (So can a connection
lost after the final dot and before the reply, which SMTP cannot tell from
a message not taken: RFC 1047. The copy repeated keeps its Message-ID.) A
message for several recipients is SENT when the relay took it for any of
them; the detail names the ones refused. If the record fails (the
database went away), the next message's dot is never sent: the connection
is closed, the relay drops the unfinished message, and the send stops.

Problems no retry will fix — the login refused, a certificate that does
not verify, a relay that cannot be reached — stop the whole send with a
DeliveryError that names the setting to check.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import random
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config, SmtpConfig, is_loopback
from .errors import DeliveryError
from .i18n import _
from .mail import Message
from .models import DeliveryState
from .transport import Outcome, Report

#: How often a waiting connection looks at the stop event, in seconds.
_POLL = 0.2


class _Wait(enum.Enum):
    """What _Run._take says when there is nothing to take yet, but there will be."""

    WAIT = enum.auto()


_WAIT = _Wait.WAIT


class _NoDelay:
    """Turn off Nagle's algorithm: a reused STARTTLS connection otherwise
    waits on delayed ACKs and falls from hundreds to tens of messages a second."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


class _SMTP(_NoDelay, smtplib.SMTP):
    pass


class _SMTP_SSL(_NoDelay, smtplib.SMTP_SSL):
    pass


class _Retry(Exception):
    """A connection problem worth trying again (421 at connect, refused, reset).

    `network` marks the ones below SMTP (refused, unreachable, timed out,
    closed): at the start of a send they are reported at once, since the
    settings are the likelier cause; during a send they are retried.
    """

    def __init__(self, message: str, hint: str, network: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.network = network


@dataclass
class _Link:
    """One open connection and how many transactions it has carried."""

    smtp: smtplib.SMTP
    used: int = 0


@dataclass
class _Job:
    message: Message
    attempts: int = 0
    last: Outcome | None = None
    free_retry_used: bool = False


@dataclass(order=True)
class _Waiting:
    due: float
    seq: int
    job: _Job = field(compare=False)


@dataclass(frozen=True)
class _Answer:
    """What one transaction came to, before it is judged."""

    code: int | None
    text: str
    stage: str
    dropped: bool = False  # the connection is gone
    refused: tuple[str, ...] = ()  # recipients refused while others were accepted

    @property
    def sent(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code is not None and 500 <= self.code < 600


class _Abandoned(Exception):
    """A message left without its final dot: the report of the one before failed
    (`cause`), or the send was stopped while it waited. The relay has not taken it."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__(str(cause or "stopped"))
        self.cause = cause


class _Behind:
    """One connection's last report, held until the next message's body is sent.

    `report` hands an outcome over: the one held before is recorded first,
    and this one waits. `before_dot` records it when the next message's
    body has gone, so the record is written while the relay still reads
    that body (its own work, in its own process), and raises _Abandoned if
    recording failed or the send was stopped meanwhile. No more than one
    message of a connection is ever taken by the relay and not yet recorded.
    """

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._held: Outcome | None = None

    def report(self, outcome: Outcome) -> None:
        held, self._held = self._held, outcome
        if held is not None:
            self._run.report(held)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._run.report(held)

    def before_dot(self) -> None:
        try:
            self.flush()
        except BaseException as exc:
            raise _Abandoned(exc) from exc
        if self._run.over():
            raise _Abandoned()


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split("\n")).strip()


class SmtpTransport:
    """Delivers through an SMTP relay; see the module docstring for outcomes."""

    name = "smtp"
    #: A second delivery is a second message in the member's inbox.
    redelivery_replaces = False

    def __init__(
        self,
        settings: SmtpConfig,
        password: str | None = None,
        *,
        ca_file: Path | None = None,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._rng = rng or random.Random()
        self._password = password or ""
        self._local_hostname: str | None = None
        s = settings
        if s.security == "none" and not is_loopback(s.host):
            raise DeliveryError(
                _('smtp.security = "none" would send mail and password in clear text to {host}')
                .format(host=s.host),
                hint=_('use security = "starttls" (usually port 587) or "tls" (port 465); '
                       '"none" is allowed only to a loopback address such as 127.0.0.1'),
            )
        if s.username and not self._password:
            raise DeliveryError(
                _("smtp.password_env: the environment variable {variable} holding the "
                  "password for smtp.username {username!r} is not set").format(
                    variable=s.password_env or _("(none)"), username=s.username),
                hint=_("export {variable}=... before sending, or set smtp.password_env to the "
                       "variable that holds it").format(
                    variable=s.password_env or "GONGBAO_SMTP_PASSWORD"),
            )
        self._tls: ssl.SSLContext | None = None
        if s.security != "none":
            if ca_file is not None and not ca_file.is_file():
                raise DeliveryError(
                    _("smtp.ca_file: no such file: {path}").format(path=ca_file),
                    hint=_("point smtp.ca_file at the relay's CA certificate (PEM), "
                           "or leave it empty to trust the system's certificates"),
                )
            try:
                self._tls = ssl.create_default_context(
                    cafile=str(ca_file) if ca_file is not None else None
                )
            except (ssl.SSLError, OSError) as exc:
                raise DeliveryError(
                    _("smtp.ca_file: {path} is not a PEM certificate: {reason}").format(
                        path=ca_file, reason=exc),
                    hint=_("point smtp.ca_file at the relay's CA certificate in PEM form"),
                ) from None

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> SmtpTransport:
        """The transport `[smtp]` describes; ca_file is relative to the config file."""
        ca = config.smtp.ca_file
        ca_file = (config.root / ca).resolve() if ca else None
        return cls(config.smtp, config.smtp_password(), ca_file=ca_file, **kwargs)

    # -- the Transport protocol ---------------------------------------------------
    def deliver(self, messages: Iterable[Message], report: Report, stop: threading.Event) -> None:
        """Send every message over up to `smtp.connections` connections.

        Returns when all are reported or `stop` is set (each connection
        reports what the relay took, and leaves a message whose final dot it
        held back unfinished, reported pending). Raises
        DeliveryError for a problem that no retry fixes. The first
        connection is opened before the first message is taken, so a wrong
        password or certificate fails the send with nothing taken or sent.
        """
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        run = _Run(iter(messages), report, stop, self.settings.rate)
        first = self._connect(run, first=True)
        if first is None:
            return
        workers = [
            threading.Thread(
                target=self._work, args=(run, first if i == 0 else None),
                name=f"smtp-{i + 1}", daemon=True,
            )
            for i in range(self.settings.connections)
        ]
        for w in workers:
            w.start()
        try:
            for w in workers:
                while w.is_alive():
                    w.join(_POLL)
        except KeyboardInterrupt:
            stop.set()  # a library caller without signal handlers: finish in-flight, then out
            for w in workers:
                w.join()
            run.report_leftovers()
            raise
        run.report_leftovers()
        if run.error is not None:
            raise run.error

    # -- one connection -------------------------------------------------------------
    def _work(self, run: _Run, link: _Link | None) -> None:
        # The last report is held until the next body is out (see _Behind), and
        # recorded first wherever the connection could otherwise wait with it:
        # a pace slot, a retry's pause, QUIT, a reconnect's pauses, the end.
        behind = _Behind(run)
        try:
            while run.pace(before_wait=behind.flush):
                job = run.next_job(before_wait=behind.flush)
                if job is None:
                    break
                try:
                    if link is None or link.used >= self.settings.messages_per_connection:
                        try:
                            behind.flush()
                            if link is not None:
                                self._close(link, polite=True)
                                link = None
                            link = self._connect(run)
                        except BaseException:
                            run.put_back(job)  # never tried: reported pending at the end
                            raise
                        if link is None:  # stopped while waiting to reconnect
                            run.put_back(job)
                            break
                    link = self._try(link, job, run, behind)
                finally:
                    run.job_done()
        except BaseException as exc:
            run.fail(exc)
        finally:
            try:
                behind.flush()
            except BaseException as exc:
                run.fail(exc)
            if link is not None:
                self._close(link, polite=True)

    def _try(self, link: _Link, job: _Job, run: _Run, behind: _Behind) -> _Link | None:
        """One transaction for one message; report it or queue it again.

        A message whose final dot was held back (see _Behind) is left for the
        leftovers report, never tried; if recording the one before failed,
        that error is raised."""
        msg = job.message
        reused = link.used > 0
        link.used += 1
        try:
            answer = self._transact(link.smtp, msg, behind.before_dot)
        except _Abandoned as exc:
            self._close(link)  # mid-DATA: only closing ends it, and the relay drops it
            if exc.cause is None:  # stopped
                run.put_back(job)
                return None
            run.fail(exc.cause)  # first, so no other connection takes the job up
            run.put_back(job)
            raise exc.cause from None
        if answer.dropped:
            self._close(link)
            if reused and answer.stage == "MAIL FROM" and not job.free_retry_used:
                # The relay had closed an idle or used-up connection: not the message's fault.
                job.free_retry_used = True
                run.retry(job, 0.0)
                return None
        job.attempts += 1
        detail = f"{answer.stage}: {answer.text}" if not answer.sent else answer.text
        tries = job.attempts
        if answer.sent:
            if answer.refused:
                detail += " (refused: " + "; ".join(answer.refused) + ")"
            behind.report(Outcome(msg, DeliveryState.SENT, False, answer.code, detail, tries))
        elif answer.permanent:
            behind.report(Outcome(msg, DeliveryState.FAILED, True, answer.code, detail, tries))
        else:
            failed = Outcome(msg, DeliveryState.FAILED, False, answer.code, detail, tries)
            if job.attempts >= self.settings.max_attempts:
                behind.report(failed)
            else:
                job.last = failed
                run.retry(job, self._pause(job.attempts))
        return None if answer.dropped else link

    def _transact(self, smtp: smtplib.SMTP, msg: Message,
                  before_dot: Callable[[], None]) -> _Answer:
        """MAIL, RCPT for each recipient, DATA; never raises for the relay's answers.

        `before_dot` runs between the body and its final dot (see _Behind)."""
        stage = "MAIL FROM"
        try:
            options: list[str] = []
            if not (msg.sender.isascii() and all(r.isascii() for r in msg.recipients)):
                options.append("SMTPUTF8")
            if not msg.data.isascii() and smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            code, reply = smtp.mail(msg.sender, options)
            if code != 250:
                return self._after_refusal(smtp, code, reply, stage)
            refused: dict[str, tuple[int, str]] = {}
            for rcpt in msg.recipients:
                stage = f"RCPT TO <{rcpt}>"
                code, reply = smtp.rcpt(rcpt)
                if code == 421:
                    return self._after_refusal(smtp, code, reply, stage)
                if code not in (250, 251):
                    refused[rcpt] = (code, _text(reply))
            if len(refused) == len(msg.recipients):
                # Nobody took it: retry if any refusal was temporary.
                rcpt, (code, text) = min(refused.items(), key=lambda kv: kv[1][0])
                self._rset(smtp)
                return _Answer(code, text, f"RCPT TO <{rcpt}>")
            stage = "DATA"
            code, reply = _data(smtp, msg.data, before_dot)
            if not 200 <= code < 300:
                return self._after_refusal(smtp, code, reply, stage)
            return _Answer(
                code,
                _text(reply),
                stage,
                refused=tuple(f"<{r}> {c} {t}" for r, (c, t) in refused.items()),
            )
        except smtplib.SMTPNotSupportedError as exc:
            self._rset(smtp)
            return _Answer(553, f"the relay does not support SMTPUTF8 ({exc})", stage)
        except (OSError, smtplib.SMTPException) as exc:
            return _Answer(None, f"connection lost ({exc.__class__.__name__}: {exc})", stage,
                           dropped=True)

    def _after_refusal(self, smtp: smtplib.SMTP, code: int, reply: bytes, stage: str) -> _Answer:
        if code == 421 or code < 0:  # the relay is closing the connection
            smtp.close()
            return _Answer(code if code > 0 else None, _text(reply), stage, dropped=True)
        dropped = not self._rset(smtp)
        return _Answer(code, _text(reply), stage, dropped=dropped)

    @staticmethod
    def _rset(smtp: smtplib.SMTP) -> bool:
        try:
            code, _reply = smtp.rset()
        except (OSError, smtplib.SMTPException):
            smtp.close()
            return False
        if code != 250:
            smtp.close()
            return False
        return True

    def _pause(self, attempts: int) -> float:
        """Exponential backoff with jitter: half the step fixed, half random."""
        step = min(self.max_backoff, self.backoff * 2 ** (attempts - 1))
        return step / 2 + self._rng.uniform(0, step / 2)

    # -- connecting ---------------------------------------------------------------------
    def _connect(self, run: _Run, first: bool = False) -> _Link | None:
        """Open, secure and log in; retry what may pass, raise what will not."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return _Link(self._open())
            except _Retry as exc:
                if first and exc.network:
                    raise DeliveryError(exc.message, hint=exc.hint) from None
                if attempt >= self.settings.max_attempts:
                    raise DeliveryError(
                        _("{reason} (after {n} attempts)").format(reason=exc.message, n=attempt),
                        hint=exc.hint,
                    ) from None
            if run.wait(self._pause(attempt)):
                return None

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        where = _("the relay at {host}:{port}").format(host=s.host, port=s.port)
        host_hint = _("check smtp.host and smtp.port, and that the relay is running")
        smtp: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                smtp = _SMTP_SSL(
                    s.host, s.port, local_hostname=self._local_hostname,
                    timeout=s.timeout, context=self._tls,
                )
            else:
                smtp = _SMTP(s.host, s.port, local_hostname=self._local_hostname, timeout=s.timeout)
            smtp.ehlo_or_helo_if_needed()
            if s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        _('smtp.security = "starttls" but {relay} does not offer STARTTLS')
                        .format(relay=where),
                        hint=_('use security = "tls" if this port speaks TLS from the start '
                               "(usually 465), or check smtp.port"),
                    )
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, self._password)
            return smtp
        except DeliveryError:
            _quietly_close(smtp)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            _quietly_close(smtp)
            raise DeliveryError(
                _("{relay} refused the login for smtp.username {username!r}: {reply}").format(
                    relay=where, username=s.username,
                    reply=f"{exc.smtp_code} {_text(exc.smtp_error)}"),
                hint=_("check smtp.username and the password in ${variable} "
                       "(named by smtp.password_env)").format(variable=s.password_env),
            ) from None
        except UnicodeEncodeError:
            _quietly_close(smtp)
            raise DeliveryError(
                _("smtp.username or the password in smtp.password_env has characters outside "
                  "ASCII, which SMTP AUTH here cannot send"),
                hint=_("check smtp.username and ${variable}").format(variable=s.password_env),
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            _quietly_close(smtp)
            raise DeliveryError(
                _("{relay} does not offer AUTH, so smtp.username cannot log in ({reason})")
                .format(relay=where, reason=exc),
                hint=_("relays usually offer AUTH only over TLS: check smtp.security, or leave "
                       "smtp.username empty if the relay needs no login"),
            ) from None
        except ssl.SSLCertVerificationError as exc:
            _quietly_close(smtp)
            raise DeliveryError(
                _("the TLS certificate of {relay} did not verify: {reason}").format(
                    relay=where, reason=exc.verify_message),
                hint=_("set smtp.ca_file to the CA certificate of a private relay, and check "
                       "that smtp.host is the name (or address) the certificate is for"),
            ) from None
        except ssl.SSLError as exc:
            _quietly_close(smtp)
            raise DeliveryError(
                _("TLS with {relay} failed: {reason}").format(relay=where,
                                                             reason=exc.reason or exc),
                hint=_('check smtp.security ("starttls" on 587, "tls" on 465) and smtp.port'),
            ) from None
        except socket.gaierror as exc:
            _quietly_close(smtp)
            raise DeliveryError(
                _("cannot find the relay host {host!r}: {reason}").format(
                    host=s.host, reason=exc.strerror),
                hint=_("check smtp.host"),
            ) from None
        except smtplib.SMTPResponseException as exc:
            _quietly_close(smtp)
            message = _("{relay} answered {reply}").format(
                relay=where, reply=f"{exc.smtp_code} {_text(exc.smtp_error)}")
            if 400 <= exc.smtp_code < 500:
                raise _Retry(message, host_hint) from None
            raise DeliveryError(message, hint=host_hint) from None
        except smtplib.SMTPServerDisconnected as exc:
            _quietly_close(smtp)
            raise _Retry(
                _("{relay} closed the connection before it was ready ({reason})").format(
                    relay=where, reason=exc),
                _('check smtp.port and smtp.security ("tls" for a port that speaks TLS at once)'),
                network=True,
            ) from None
        except smtplib.SMTPException as exc:  # e.g. "No suitable authentication method found"
            _quietly_close(smtp)
            raise DeliveryError(
                f"{where}: {exc}", hint=_("check smtp.username and smtp.security")
            ) from None
        except OSError as exc:  # refused, unreachable, timed out
            _quietly_close(smtp)
            raise _Retry(
                _("cannot connect to {relay}: {reason}").format(
                    relay=where, reason=exc.strerror or exc),
                host_hint, network=True,
            ) from None

    @staticmethod
    def _close(link: _Link, polite: bool = False) -> None:
        if polite:
            try:
                link.smtp.quit()
                return
            except (OSError, smtplib.SMTPException):
                pass
        _quietly_close(link.smtp)


#: A line that starts with a dot, which SMTP's end of data would misread (RFC 5321 §4.5.2).
_LEADING_DOT = re.compile(rb"(?m)^\.")


def _data(smtp: smtplib.SMTP, data: bytes, before_dot: Callable[[], None]) -> tuple[int, bytes]:
    """DATA, the message, the final dot: the relay's reply (354's refusal included).

    `before_dot` runs when all but the final dot is sent; if it raises, the
    dot is not sent, and the relay, which takes a message only at its dot,
    has not taken this one.

    smtplib's `data` runs a regular expression over every line of every
    message to double leading dots, which cost a quarter of a send's CPU
    for 76 KB digests; a leading dot is rare (base64 bodies have none), so
    one search for it decides, and the bytes go out as they are.
    """
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        return code, reply
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    smtp.send(data)
    before_dot()
    smtp.send(b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")
    return smtp.getreply()


def _quietly_close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


class _Run:
    """What the connections of one `deliver` call share: the queue, the
    messages waiting to be tried again, the pace, and the first fatal error."""

    def __init__(
        self, source: Iterator[Message], report: Report, stop: threading.Event, rate: float
    ) -> None:
        self._source = source
        self._exhausted = False
        self._report = report
        self._stop = stop
        self._cond = threading.Condition()
        self._report_lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._seq = 0
        self._busy = 0  # connections holding a message
        self._idle = 0  # connections waiting for one
        self._interval = 1.0 / rate if rate else 0.0
        self._next_slot = 0.0
        self._pace_lock = threading.Lock()
        self.error: BaseException | None = None

    def over(self) -> bool:
        return self._stop.is_set() or self.error is not None

    def wait(self, seconds: float) -> bool:
        """Sleep, waking for a stop or a fatal error; True if the run is over."""
        end = time.monotonic() + seconds
        while not self.over():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(left, _POLL))
        return True

    def pace(self, before_wait: Callable[[], None] = lambda: None) -> bool:
        """Wait for the next slot under `smtp.rate`; False if the run is over.
        `before_wait` runs first when there is a wait (see next_job)."""
        if self._interval:
            with self._pace_lock:
                now = time.monotonic()
                slot = max(now, self._next_slot)
                self._next_slot = slot + self._interval
            if slot > now:
                before_wait()
                if self.wait(slot - now):
                    return False
        return not self.over()

    def next_job(self, before_wait: Callable[[], None] = lambda: None) -> _Job | None:
        """A message due to be tried again, else the next new one; None when done.

        `before_wait` runs once, outside the lock, before the first wait for
        a message: a connection records its held report there instead of
        holding it while another's retry pauses (which could outlast a lease).
        """
        with self._cond:
            job = self._take()
        if job is not _WAIT:
            return job
        before_wait()
        with self._cond:
            while (job := self._take()) is _WAIT:
                due = self._waiting[0].due - time.monotonic() if self._waiting else _POLL
                self._idle += 1
                self._cond.wait(min(due, _POLL))
                self._idle -= 1
            return job

    def _take(self) -> _Job | _Wait | None:
        """Under the lock: a job, None (all done, or the run is over), or _WAIT."""
        while not self.over():
            if self._waiting and self._waiting[0].due <= time.monotonic():
                self._busy += 1
                return heapq.heappop(self._waiting).job
            if not self._exhausted:
                try:
                    message = next(self._source)
                except StopIteration:
                    self._exhausted = True
                    continue
                self._busy += 1
                return _Job(message)
            if not self._waiting and not self._busy:
                return None
            return _WAIT
        return None

    def job_done(self) -> None:
        with self._cond:
            self._busy -= 1
            if self._idle:  # only at the end of a send, or while a retry waits
                self._cond.notify_all()

    def retry(self, job: _Job, delay: float) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._waiting, _Waiting(time.monotonic() + delay, self._seq, job))
            self._cond.notify_all()

    def put_back(self, job: _Job) -> None:
        """A job this connection could not try: left for the leftovers report."""
        self.retry(job, 0.0)

    def report(self, outcome: Outcome) -> None:
        with self._report_lock:
            self._report(outcome)

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            if self.error is None:
                self.error = exc
            self._cond.notify_all()

    def report_leftovers(self) -> None:
        """Messages stopped between tries: their last failure, or pending if never tried."""
        with self._cond:
            left = [w.job for w in sorted(self._waiting)]
            self._waiting.clear()
        for job in left:
            outcome = job.last or Outcome(job.message, DeliveryState.PENDING, attempts=job.attempts)
            try:
                self.report(outcome)
            except Exception as exc:  # the ledger itself failed: keep the first error
                self.fail(exc)
                return
