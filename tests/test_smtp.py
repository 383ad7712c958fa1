"""The SMTP transport against a real aiosmtpd relay on 127.0.0.1.

Messages are built here directly; the ledger and the CLI are tested in
test_smtp_send.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gongbao_feed.config import SmtpConfig, config_from_dict
from gongbao_feed.deliver import Message, Outcome
from gongbao_feed.errors import DeliveryError
from gongbao_feed.models import DeliveryState
from gongbao_feed.smtp import _SMTP, SmtpTransport

from .smtp_server import PASSWORD, Faults, SmtpTestServer, addresses

SENDER = "digest@news.example.org"


def make_messages(emails: list[str], issue: int = 7) -> list[Message]:
    out = []
    for i, email in enumerate(emails):
        mid = f"<gongbao.{issue}.{i}@news.example.org>"
        body = (
            f"From: 职工时报 <{SENDER}>\r\n"
            f"To: {email}\r\n"
            f"Subject: =?utf-8?b?6IGM5bel5pe25oqlIOesrDfmnJ8=?=\r\n"
            f"Message-ID: {mid}\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            "\r\n"
            "5pys5pyf6KaB6Ze7\r\n"
            ".a line that starts with a dot\r\n"
            f"member {i}\r\n"
        ).encode()
        out.append(Message(issue, email, SENDER, (email,), mid, body))
    return out


class Outcomes:
    """The report callback: collects outcomes from every connection's thread."""

    def __init__(self, stop_after: int | None = None, stop: threading.Event | None = None) -> None:
        self.items: list[Outcome] = []
        self.lock = threading.Lock()
        self.stop_after = stop_after
        self.stop = stop

    def __call__(self, outcome: Outcome) -> None:
        with self.lock:
            self.items.append(outcome)
            if self.stop_after is not None and len(self.items) >= self.stop_after:
                assert self.stop is not None
                self.stop.set()

    def by_email(self) -> dict[str, Outcome]:
        emails = Counter(o.message.email for o in self.items)
        assert all(n == 1 for n in emails.values()), f"reported twice: {emails.most_common(3)}"
        return {o.message.email: o for o in self.items}

    def states(self) -> Counter[str]:
        return Counter(str(o.state) for o in self.items)


def transport(server: SmtpTestServer, **settings: Any) -> SmtpTransport:
    cfg = SmtpConfig.model_validate(server.smtp_settings(**settings))
    ca = Path(cfg.ca_file) if cfg.ca_file else None
    return SmtpTransport(cfg, PASSWORD, ca_file=ca, backoff=0.01)


@pytest.fixture
def relay(tmp_path: Path):
    with SmtpTestServer(tmp_path / "relay") as server:
        yield server


def test_every_message_arrives_once_with_its_envelope_and_bytes(relay: SmtpTestServer) -> None:
    messages = make_messages(addresses(40))
    report = Outcomes()
    transport(relay, connections=3, messages_per_connection=7).deliver(
        messages, report, threading.Event()
    )

    got = relay.by_recipient()
    assert sorted(got) == sorted(m.email for m in messages)
    for m in messages:
        (received,) = got[m.email]
        assert received.sender == SENDER
        assert received.recipients == (m.email,)
        assert received.data == m.data
    outcomes = report.by_email()
    assert {str(o.state) for o in outcomes.values()} == {"sent"}
    assert all(o.code == 250 and "queued as" in o.detail for o in outcomes.values())
    # Reused connections, opened again after messages_per_connection.
    assert 40 / 7 <= relay.connections < 40


def test_leading_dots_and_a_missing_final_line_end_arrive_as_written(
    relay: SmtpTestServer,
) -> None:
    """The transport doubles leading dots itself (RFC 5321 §4.5.2), not smtplib."""
    (plain,) = make_messages(["dots@example.org"])
    data = plain.data.replace(b"member 0\r\n", b"..two dots\r\n.\r\nlast line, no CRLF")
    message = Message(7, plain.email, SENDER, plain.recipients, plain.message_id, data)
    transport(relay).deliver([message], Outcomes(), threading.Event())

    (received,) = relay.by_recipient()["dots@example.org"]
    assert received.data == data + b"\r\n"


def test_faults_lose_nothing_and_double_nothing(tmp_path: Path) -> None:
    emails = addresses(30)
    faults = Faults(
        busy_connects=2,
        soft_fail_once=frozenset(emails[3:6]),
        hard_fail=frozenset(emails[10:12]),
        drop_in_data=frozenset({emails[15]}),
        close_after=4,
    )
    messages = make_messages(emails)
    report = Outcomes()
    with SmtpTestServer(tmp_path / "relay", faults=faults) as relay:
        transport(relay, connections=2).deliver(messages, report, threading.Event())
        got = relay.by_recipient()
        refusals = relay.refusals

    deliverable = [e for e in emails if e not in faults.hard_fail]
    assert sorted(got) == sorted(deliverable)
    assert all(len(v) == 1 for v in got.values())
    assert {m.email: m.data for m in messages if m.email in got} == {
        e: v[0].data for e, v in got.items()
    }
    outcomes = report.by_email()
    assert len(outcomes) == len(emails)
    for email in faults.hard_fail:
        o = outcomes[email]
        assert (o.state, o.permanent, o.code) == (DeliveryState.FAILED, True, 550)
        assert "mailbox unavailable" in o.detail and email in o.detail
        # Never tried again after the 550. (An earlier try may have met a connection
        # the relay had just closed; that try is counted, the 550 is final.)
        assert [code for e, code in refusals if e == email] == [550]
    for email in [*faults.soft_fail_once, emails[15]]:
        assert outcomes[email].state is DeliveryState.SENT
        assert outcomes[email].attempts >= 2  # the 451 or the drop, then success
    assert sum(1 for _, code in refusals if code == 451) == 3


def test_temporary_failures_give_up_after_max_attempts(tmp_path: Path) -> None:
    emails = addresses(4)
    faults = Faults(soft_fail=frozenset({emails[1]}))
    report = Outcomes()
    with SmtpTestServer(tmp_path / "relay", faults=faults) as relay:
        transport(relay, max_attempts=3).deliver(make_messages(emails), report, threading.Event())
        assert sorted(relay.by_recipient()) == sorted(set(emails) - {emails[1]})
    o = report.by_email()[emails[1]]
    assert (o.state, o.permanent, o.code, o.attempts) == (DeliveryState.FAILED, False, 451, 3)
    assert "try again later" in o.detail


def test_a_sent_message_is_recorded_before_the_connection_waits_for_a_retry(
    tmp_path: Path,
) -> None:
    """A connection holds its last report until the next body is out; when the next
    thing to do is wait out a retry's pause, it records first, so a claim is never
    left unsettled (and its lease running) through a pause."""
    first, second = addresses(2)
    faults = Faults(soft_fail_once=frozenset({second}))
    when: dict[str, float] = {}

    def record(outcome: Outcome) -> None:
        when[outcome.message.email] = time.monotonic()

    with SmtpTestServer(tmp_path / "relay", faults=faults) as relay:
        cfg = SmtpConfig.model_validate(relay.smtp_settings())
        slow = SmtpTransport(cfg, PASSWORD, ca_file=Path(cfg.ca_file), backoff=4.0)
        slow.deliver(make_messages([first, second]), record, threading.Event())
        assert sorted(relay.by_recipient()) == [first, second]
    # The retry waits 2-4 s; the first message was recorded before that wait began.
    assert when[second] - when[first] > 1.5


def test_one_refused_recipient_does_not_stop_the_others(tmp_path: Path) -> None:
    ok, bad = "chen.jing@members.test", "nobody@members.test"
    faults = Faults(hard_fail=frozenset({bad}))
    (message,) = make_messages([ok])
    both = Message(message.issue, ok, SENDER, (bad, ok), message.message_id, message.data)
    report = Outcomes()
    with SmtpTestServer(tmp_path / "relay", faults=faults) as relay:
        transport(relay).deliver([both], report, threading.Event())
        (received,) = relay.received
    assert received.recipients == (ok,)
    (o,) = report.items
    assert o.state == DeliveryState.SENT
    assert f"<{bad}> 550" in o.detail


def test_an_international_address_goes_out_with_smtputf8(relay: SmtpTestServer) -> None:
    messages = make_messages(["王芳@工会.test", "li.na@members.test"])
    report = Outcomes()
    transport(relay).deliver(messages, report, threading.Event())
    assert sorted(relay.by_recipient()) == sorted(m.email for m in messages)
    assert report.states() == {"sent": 2}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls(tmp_path: Path) -> None:
    report = Outcomes()
    with SmtpTestServer(tmp_path / "relay", implicit_tls=True) as relay:
        transport(relay).deliver(make_messages(addresses(3)), report, threading.Event())
        assert len(relay.received) == 3
    assert report.states() == {"sent": 3}


def test_plain_smtp_to_loopback(tmp_path: Path) -> None:
    report = Outcomes()
    with SmtpTestServer(tls=False, auth=False) as relay:
        transport(relay).deliver(make_messages(addresses(3)), report, threading.Event())
        assert len(relay.received) == 3
    assert report.states() == {"sent": 3}


def test_a_rate_limit_still_delivers_everything(relay: SmtpTestServer) -> None:
    report = Outcomes()
    transport(relay, connections=2, rate=200.0).deliver(
        make_messages(addresses(6)), report, threading.Event()
    )
    assert report.states() == {"sent": 6} and len(relay.received) == 6


def test_stop_finishes_the_message_in_flight_and_reports_it(relay: SmtpTestServer) -> None:
    messages = make_messages(addresses(200))
    stop = threading.Event()
    report = Outcomes(stop_after=5, stop=stop)
    transport(relay, connections=3).deliver(messages, report, stop)

    sent = {o.message.email for o in report.items if o.state == DeliveryState.SENT}
    # What the relay took is exactly what was reported sent: nothing in between.
    assert set(relay.by_recipient()) == sent
    assert 5 <= len(sent) <= 5 + 3 - 1
    # A message whose body was on its way, its final dot held back, is dropped
    # unfinished and reported never tried (pending), once.
    assert {o.state for o in report.items} <= {DeliveryState.SENT, DeliveryState.PENDING}
    assert len(report.by_email()) == len(report.items)


def test_a_record_that_fails_holds_back_the_next_message(relay: SmtpTestServer) -> None:
    """The ledger records a message while the next one goes out, and that one's
    final dot waits for the record: when recording fails, the relay never takes it."""
    messages = make_messages(addresses(10))
    seen: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        seen.append(outcome)
        if len(seen) == 3:
            raise RuntimeError("the ledger is gone")

    with pytest.raises(RuntimeError, match="the ledger is gone"):
        transport(relay, connections=1).deliver(messages, record, threading.Event())
    assert sorted(relay.by_recipient()) == [m.email for m in messages[:3]]
    assert [o.state for o in seen[:3]] == [DeliveryState.SENT] * 3


def test_a_refusal_after_a_failed_record_is_still_reported(tmp_path: Path) -> None:
    """Recording the first message fails while the second is refused for good: the
    send stops with the error, and the refusal is still reported, not dropped."""
    first, second = addresses(2)
    seen: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        seen.append(outcome)
        if len(seen) == 1:
            raise RuntimeError("the ledger is gone")

    with (
        SmtpTestServer(tmp_path / "relay", faults=Faults(hard_fail=frozenset({second}))) as relay,
        pytest.raises(RuntimeError, match="the ledger is gone"),
    ):
        transport(relay).deliver(make_messages([first, second]), record, threading.Event())
    assert [(o.message.email, o.state, o.permanent) for o in seen] == [
        (first, DeliveryState.SENT, False),
        (second, DeliveryState.FAILED, True),
    ]


def test_a_message_stopped_between_tries_is_reported_with_its_last_failure(
    tmp_path: Path,
) -> None:
    emails = addresses(2)
    faults = Faults(soft_fail=frozenset({emails[0]}))
    stop = threading.Event()
    report = Outcomes(stop_after=1, stop=stop)
    with SmtpTestServer(tmp_path / "relay", faults=faults) as relay:
        cfg = SmtpConfig.model_validate(relay.smtp_settings(connections=1, max_attempts=5))
        slow = SmtpTransport(cfg, PASSWORD, ca_file=relay.ca_file, backoff=30.0)
        slow.deliver(make_messages(emails), report, stop)
    outcomes = report.by_email()
    assert outcomes[emails[1]].state == DeliveryState.SENT
    waiting = outcomes[emails[0]]
    assert (waiting.state, waiting.permanent, waiting.code) == (DeliveryState.FAILED, False, 451)


# -- problems no retry fixes: one clear error, nothing sent -----------------------------


def assert_nothing_sent(report: Outcomes, relay: SmtpTestServer | None = None) -> None:
    assert not [o for o in report.items if o.state == DeliveryState.SENT]
    if relay is not None:
        assert relay.received == []


def test_wrong_password_names_the_settings(relay: SmtpTestServer) -> None:
    cfg = SmtpConfig.model_validate(relay.smtp_settings(connections=2))
    wrong = SmtpTransport(cfg, "not-the-password", ca_file=relay.ca_file)
    report = Outcomes()
    with pytest.raises(DeliveryError) as err:
        wrong.deliver(make_messages(addresses(5)), report, threading.Event())
    text = str(err.value)
    assert "smtp.username" in text and "smtp.password_env" in text and "535" in text
    assert_nothing_sent(report, relay)
    assert report.items == []  # checked before a single message was taken


def test_untrusted_certificate_names_ca_file(relay: SmtpTestServer) -> None:
    cfg = SmtpConfig.model_validate(relay.smtp_settings(ca_file=""))
    report = Outcomes()
    with pytest.raises(DeliveryError) as err:
        SmtpTransport(cfg, PASSWORD).deliver(make_messages(addresses(2)), report, threading.Event())
    assert "smtp.ca_file" in str(err.value) and "certificate" in str(err.value)
    assert_nothing_sent(report, relay)


def test_tls_to_a_starttls_port_names_security(relay: SmtpTestServer) -> None:
    report = Outcomes()
    with pytest.raises(DeliveryError) as err:
        transport(relay, security="tls").deliver(
            make_messages(addresses(2)), report, threading.Event()
        )
    assert "smtp.security" in str(err.value)
    assert_nothing_sent(report, relay)


def test_starttls_to_a_relay_without_it_names_security() -> None:
    report = Outcomes()
    with SmtpTestServer(tls=False, auth=False) as relay, pytest.raises(DeliveryError) as err:
        transport(relay, security="starttls").deliver(
            make_messages(addresses(2)), report, threading.Event()
        )
    assert "smtp.security" in str(err.value) and "STARTTLS" in str(err.value)
    assert_nothing_sent(report)


def test_unreachable_relay_names_host_and_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cfg = SmtpConfig(host="127.0.0.1", port=port, security="none")
    report = Outcomes()
    with pytest.raises(DeliveryError) as err:  # at once: no retries before the first message
        SmtpTransport(cfg).deliver(
            make_messages(addresses(3)), report, threading.Event()
        )
    assert "smtp.host" in str(err.value) and "smtp.port" in str(err.value)
    assert str(port) in str(err.value)
    assert_nothing_sent(report)


def test_a_relay_that_goes_away_mid_send_keeps_what_was_sent(tmp_path: Path) -> None:
    relay = SmtpTestServer(tmp_path / "relay").start()
    stop = threading.Event()
    report = Outcomes()

    def take_down(outcome: Outcome) -> None:
        report(outcome)
        if len(report.items) == 3:
            relay.stop()

    messages = make_messages(addresses(10))
    with pytest.raises(DeliveryError) as err:
        transport(relay, connections=1, max_attempts=3).deliver(messages, take_down, stop)
    assert "smtp.host" in str(err.value) and "after 3 attempts" in str(err.value)
    sent = [o.message.email for o in report.items if o.state == DeliveryState.SENT]
    assert sent == [m.email for m in messages[:3]]
    # The message on its way when the relay went away (its MAIL, RCPT or body may
    # already have gone: the third report is made while the fourth goes out) and
    # any taken after it were not taken by the relay: each reported once, pending
    # (never tried) or failed for now, so the next send tries them again.
    rest = report.by_email()
    for m in messages[:3]:
        del rest[m.email]
    assert messages[3].email in rest
    assert all(o.state is DeliveryState.PENDING
               or (o.state is DeliveryState.FAILED and not o.permanent) for o in rest.values())


def test_busy_relay_that_never_lets_us_in_is_an_error(tmp_path: Path) -> None:
    report = Outcomes()
    with SmtpTestServer(tmp_path / "relay", faults=Faults(busy_connects=100)) as relay:
        with pytest.raises(DeliveryError) as err:
            transport(relay, max_attempts=3, connections=1).deliver(
                make_messages(addresses(2)), report, threading.Event()
            )
        assert relay.connections == 3
    assert "421" in str(err.value)
    assert_nothing_sent(report)


def test_clear_text_only_to_loopback() -> None:
    with pytest.raises(DeliveryError) as err:
        SmtpTransport(SmtpConfig(host="smtp.example.org", port=25, security="none"))
    assert "smtp.security" in str(err.value)
    SmtpTransport(SmtpConfig(host="localhost", port=25, security="none"))


def test_missing_password_names_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GONGBAO_RELAY_PW", raising=False)
    config = config_from_dict(
        {"smtp": {"username": "digest", "password_env": "GONGBAO_RELAY_PW"}}, root=tmp_path
    )
    with pytest.raises(DeliveryError) as err:
        SmtpTransport.from_config(config)
    assert "GONGBAO_RELAY_PW" in str(err.value) and "smtp.password_env" in str(err.value)


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    config = config_from_dict({"smtp": {"ca_file": "certs/relay.pem"}}, root=tmp_path)
    with pytest.raises(DeliveryError) as err:
        SmtpTransport.from_config(config)
    assert "smtp.ca_file" in str(err.value) and str(tmp_path / "certs" / "relay.pem") in str(
        err.value
    )


def test_from_config_reads_the_password_from_the_environment(
    relay: SmtpTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GONGBAO_TEST_SMTP_PASSWORD", PASSWORD)
    ca = relay.ca_file
    assert ca is not None
    config = config_from_dict(
        {"smtp": relay.smtp_settings(ca_file=str(ca.relative_to(tmp_path)))}, root=tmp_path
    )
    report = Outcomes()
    SmtpTransport.from_config(config).deliver(
        make_messages(addresses(2)), report, threading.Event()
    )
    assert report.states() == {"sent": 2}


def test_connections_turn_off_nagle(relay: SmtpTestServer) -> None:
    smtp = _SMTP(relay.host, relay.port, timeout=5)
    try:
        assert smtp.sock is not None
        assert smtp.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        smtp.close()
