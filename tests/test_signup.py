"""Readers who sign themselves up (double opt-in), over real HTTP (httpx and uvicorn).

The form at /subscribe, its CSRF token (cookie + field), the per-client rate
limit, the same answer for every address, the confirmation message in the
outbox (outbox/confirm/), its link's page and button, forged and expired
links, and the next send: confirmed members get it, pending ones never.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest

from gongbao_feed import tokens
from gongbao_feed.config import load_config
from gongbao_feed.models import Member, MemberStatus
from gongbao_feed.outbox import CONFIRM_FOLDER, issue_folder
from gongbao_feed.publish import Newsroom
from gongbao_feed.signup import RateLimiter, client_address
from gongbao_feed.store import Store
from gongbao_feed.transport import RecordingTransport
from gongbao_feed.web import CSRF_COOKIE, create_app

from .conftest import FixedClock
from .helpers_web import running

NEW = "xu.lan@example.org"
ACTIVE = "he.jun@example.org"
GONE = "tang.li@example.org"
PENDING = "ren.bo@example.org"


@dataclass
class Signups:
    room: Newsroom
    base: str
    app: object
    clock: FixedClock

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.room.store

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10)

    def confirmations(self) -> list[Path]:
        self.app.state.signup.wait_sent(10)  # type: ignore[attr-defined]
        folder = self.room.config.outbox_dir / CONFIRM_FOLDER
        return sorted(folder.glob("*.eml")) if folder.is_dir() else []

    def status(self, email: str) -> str | None:
        member = self.store.member(email)
        return None if member is None else str(member.status)


def _configure(workdir: Path, **values: object) -> None:
    path = workdir / "config.toml"
    text = path.read_text("utf-8")
    for key, value in values.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    path.write_text(text, "utf-8")


@pytest.fixture
def signups(workdir: Path, clock: FixedClock) -> Iterator[Signups]:
    _configure(workdir, rate_limit=5)
    with Newsroom(load_config(workdir / "config.toml"), clock=clock) as room:
        room.add_member(ACTIVE, "何军")
        room.add_member(GONE, "唐立")
        room.store.unsubscribe(GONE, clock(), "one-click")
        clock.advance(minutes=1)
        app = create_app(room.config, room.store, clock=clock)
        with running(app) as base:
            yield Signups(room, base, app, clock)


def form_token(client: httpx.Client) -> str:
    page = client.get("/subscribe")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found and client.cookies.get(CSRF_COOKIE) == found.group(1)
    return found.group(1)


def sign_up(client: httpx.Client, email: str, name: str = "") -> httpx.Response:
    return client.post("/subscribe", data={"csrf": form_token(client), "email": email,
                                           "name": name})


def read(path: Path) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())  # type: ignore[return-value]


def confirm_link(message: EmailMessage) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"https?://\S+/confirm/\S+", text)
    assert found, text
    return found.group(0)


def path_of(s: Signups, link: str) -> str:
    return "/" + link.removeprefix(s.room.config.paper.base_url)


# -- the form ---------------------------------------------------------------------------


def test_the_form_carries_a_csrf_token_and_the_page_allows_no_script(
    signups: Signups,
) -> None:
    with signups.client() as client:
        page = client.get("/subscribe")
    assert page.status_code == 200
    assert 'name="email"' in page.text and 'name="name"' in page.text
    assert "<script" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "form-action 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"].lower()
    assert f"{CSRF_COOKIE}=" in cookie
    for attribute in ("httponly", "samesite=strict", "path=/subscribe", "max-age=7200"):
        assert attribute in cookie


def test_a_signup_records_a_pending_member_and_mails_one_confirmation(
    signups: Signups,
) -> None:
    with signups.client() as client:
        answer = sign_up(client, NEW, "许岚")
    assert answer.status_code == 200
    assert "请查收确认邮件" in answer.text
    assert signups.status(NEW) == "pending"
    [path] = signups.confirmations()
    assert path.parent.name == "confirm"
    assert not issue_folder(signups.room.config.outbox_dir, 1).exists()
    message = read(path)
    assert message["To"] == f"许岚 <{NEW}>"
    assert message["Subject"] == "请确认订阅《职工时报》电子报"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None
    assert message["Message-ID"].startswith("<confirm.")
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'class="button" href="https://news.example.org/confirm/' in html
    assert 'style="' in html, "the stylesheet is inlined"
    link = confirm_link(message)
    assert link.startswith("https://news.example.org/confirm/")
    assert NEW not in link, "the link does not show the address"
    assert signups.store.deliveries() == []


def test_the_same_signup_twice_sends_one_confirmation_until_an_hour_has_passed(
    signups: Signups,
) -> None:
    with signups.client() as client:
        assert sign_up(client, NEW).status_code == 200
        signups.clock.advance(minutes=30)
        assert sign_up(client, NEW.upper()).status_code == 200
        assert len(signups.confirmations()) == 1
        signups.clock.advance(minutes=31)
        assert sign_up(client, NEW).status_code == 200
    assert len(signups.confirmations()) == 2
    assert signups.status(NEW) == "pending"


def test_following_the_link_and_pressing_the_button_makes_an_active_member(
    signups: Signups,
) -> None:
    with signups.client() as client:
        sign_up(client, NEW, "许岚")
        link = confirm_link(read(signups.confirmations()[0]))
        signups.clock.advance(hours=47)
        shown = client.get(path_of(signups, link))
        assert shown.status_code == 200
        assert "确认订阅" in shown.text and "x***@example.org" in shown.text
        assert signups.status(NEW) == "pending", "opening the page changes nothing"
        done = client.post(path_of(signups, link), data={"confirm": "yes"})
    assert done.status_code == 200
    assert "订阅成功" in done.text
    member = signups.store.member(NEW)
    assert member is not None and member.status is MemberStatus.ACTIVE
    assert member.name == "许岚"
    assert member.joined == signups.clock()


def _tampered(token: str) -> list[str]:
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    return [flipped, token[:-2], token + "A", "not-a-token", token[:20] + "." + token[21:]]


def test_a_forged_expired_or_other_kind_of_token_changes_nothing(signups: Signups) -> None:
    with signups.client() as client:
        sign_up(client, NEW)
        link = confirm_link(read(signups.confirmations()[0]))
        token = link.rsplit("/", 1)[1]
        key = tokens.load_secret(signups.room.config.state_dir)
        others = [
            tokens.sign(key, NEW, 1),  # an unsubscribe token for the same address
            tokens.sign_confirmation(b"another secret", NEW, int(signups.clock().timestamp())),
        ]
        for bad in _tampered(token) + others:
            assert bad != token
            assert client.get(f"/confirm/{bad}").status_code in (400, 404), bad
            refused = client.post(f"/confirm/{bad}", data={"confirm": "yes"})
            assert refused.status_code in (400, 404), bad
            if refused.status_code == 400:
                assert "链接无效" in refused.text
        assert client.post(path_of(signups, link), data={}).status_code == 400
        assert signups.status(NEW) == "pending"

        signups.clock.advance(hours=48, seconds=1)
        expired = client.post(path_of(signups, link), data={"confirm": "yes"})
        assert expired.status_code == 400
        assert "已过期" in expired.text
    assert signups.status(NEW) == "pending"


# -- no enumeration -----------------------------------------------------------------------


def test_the_answer_is_the_same_for_new_pending_active_and_unsubscribed_addresses(
    signups: Signups,
) -> None:
    with signups.client() as client:
        sign_up(client, PENDING)
        signups.clock.advance(minutes=1)
        answers = {}
        for email in (NEW, PENDING, ACTIVE, GONE):
            r = sign_up(client, email)
            headers = {k: v for k, v in r.headers.items() if k not in ("date",)}
            answers[email] = (r.status_code, headers, r.content)
    first = answers[NEW]
    for email, answer in answers.items():
        assert answer == first, email
    assert "set-cookie" not in first[1]
    assert signups.status(ACTIVE) == "active"
    assert signups.status(GONE) == "unsubscribed", "a signup alone never resubscribes"
    sent_to = sorted(str(read(p)["To"]) for p in signups.confirmations())
    # PENDING's second signup is within the hour; ACTIVE is a member already.
    assert sent_to == sorted([NEW, PENDING, GONE])


def test_an_unsubscribed_member_comes_back_only_through_the_confirmation(
    signups: Signups,
) -> None:
    key = tokens.load_secret(signups.room.config.state_dir)
    before = tokens.sign_confirmation(key, GONE, int(signups.clock().timestamp()) - 3600)
    with signups.client() as client:
        # A link made before they unsubscribed cannot undo it.
        old = client.post(f"/confirm/{before}", data={"confirm": "yes"})
        assert old.status_code == 400
        assert signups.status(GONE) == "unsubscribed"
        sign_up(client, GONE)
        assert signups.status(GONE) == "unsubscribed"
        link = confirm_link(read(signups.confirmations()[0]))
        client.post(path_of(signups, link), data={"confirm": "yes"})
    member = signups.store.member(GONE)
    assert member is not None and member.status is MemberStatus.ACTIVE
    assert member.unsubscribed_at is None and member.name == "唐立"


# -- the guards ---------------------------------------------------------------------------


def test_a_missing_forged_or_stale_csrf_token_is_refused_and_changes_nothing(
    signups: Signups,
) -> None:
    with signups.client() as client:
        token = form_token(client)
        issued, nonce, mac = token.split(".")
        forged = f"{issued}.{nonce}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"
        attempts = {
            "no field": {"email": NEW},
            "empty field": {"csrf": "", "email": NEW},
            "forged field": {"csrf": forged, "email": NEW},
        }
        for why, data in attempts.items():
            r = client.post("/subscribe", data=data)
            assert r.status_code == 403, why
            assert "表单已过期或无效" in r.text, why
        client.cookies.set(CSRF_COOKIE, forged)
        assert client.post("/subscribe", data={"csrf": forged, "email": NEW}).status_code == 403
        client.cookies.clear()
        # A good token without its cookie (a cross-site form cannot set it).
        assert client.post("/subscribe", data={"csrf": token, "email": NEW}).status_code == 403
        # A good pair, after the form's lifetime.
        stale = form_token(client)
        signups.clock.advance(minutes=121)
        assert client.post("/subscribe", data={"csrf": stale, "email": NEW}).status_code == 403
    assert signups.status(NEW) is None
    assert signups.confirmations() == []


def test_a_bad_address_or_name_is_shown_again_with_what_is_wrong(signups: Signups) -> None:
    with signups.client() as client:
        r = sign_up(client, "not an address")
        assert r.status_code == 400
        assert "邮箱地址的格式不对" in r.text
        assert 'value="not an address"' in r.text
        r = sign_up(client, NEW, "许\n岚")
        assert r.status_code == 400 and "称呼须是一行文字" in r.text
    assert signups.status(NEW) is None
    assert signups.confirmations() == []


def test_signups_from_one_client_are_rate_limited(signups: Signups) -> None:
    with signups.client() as client:
        for n in range(5):
            assert sign_up(client, f"reader{n}@example.org").status_code == 200
        limited = sign_up(client, NEW)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "3600"
        assert "请稍后再试" in limited.text
        assert signups.status(NEW) is None
        signups.clock.advance(minutes=61)
        assert sign_up(client, NEW).status_code == 200
    assert signups.status(NEW) == "pending"


def test_a_stopping_service_gives_queued_confirmations_a_moment_then_logs_the_rest(
    workdir: Path, clock: FixedClock, caplog: pytest.LogCaptureFixture,
) -> None:
    """Confirmations go out on two threads of their own, whatever the number of
    signups; a stop waits a moment for them, not for a slow relay's every one."""
    _configure(workdir, rate_limit=6)
    slow = RecordingTransport(after_each=lambda _message: time.sleep(0.5))
    with Newsroom(load_config(workdir / "config.toml"), clock=clock) as room:
        app = create_app(room.config, room.store, clock=clock, transport=slow)
        signup = app.state.signup
        with running(app) as base, httpx.Client(base_url=base, timeout=10) as client:
            for n in range(5):
                assert sign_up(client, f"reader{n}@example.org").status_code == 200
            signup.close(grace=0.1)
            assert [status(room, n) for n in range(5)] == ["pending"] * 5
            # one more after the stop: answered, logged as not sent, nothing left busy
            assert sign_up(client, "late@example.org").status_code == 200
            assert signup.wait_sent(0)
    assert len(slow.delivered) == 2  # the two in flight finish; the three queued do not start
    unsent = [r.getMessage() for r in caplog.records if "was not sent" in r.getMessage()]
    assert len(unsent) == 4, unsent
    assert all("the service was stopping" in m for m in unsent[:3]), unsent
    assert "late@example.org" not in unsent[3], unsent  # masked in the log, as every one


def status(room: Newsroom, n: int) -> str:
    member = room.store.member(f"reader{n}@example.org")
    assert member is not None
    return str(member.status)


def test_the_client_address_behind_a_trusted_proxy() -> None:
    assert client_address("203.0.113.9", "198.51.100.1", []) == "203.0.113.9"
    assert client_address("127.0.0.1", "198.51.100.1", ["127.0.0.1"]) == "198.51.100.1"
    # A client's own X-Forwarded-For is ignored from a peer that is not a trusted proxy …
    assert client_address("203.0.113.9", "198.51.100.1", ["127.0.0.1"]) == "203.0.113.9"
    # … and what it put in front of the proxy's entry does not count.
    assert client_address("127.0.0.1", "1.2.3.4, 198.51.100.1", ["127.0.0.1"]) == "198.51.100.1"
    assert client_address("10.0.0.2", "198.51.100.1, 10.0.0.7", ["10.0.0.0/8"]) == "198.51.100.1"
    assert client_address("127.0.0.1", "garbage", ["127.0.0.1"]) == "127.0.0.1"


def test_the_rate_limiter_forgets_old_events_and_bounds_its_memory() -> None:
    limiter = RateLimiter(limit=2, window=60, max_keys=3)
    assert limiter.allow("a", 0) and limiter.allow("a", 10)
    assert not limiter.allow("a", 59)
    assert limiter.allow("a", 60.5)
    for key in "bcde":
        assert limiter.allow(key, 61)
    assert len(limiter._seen) == 3


# -- the next send ------------------------------------------------------------------------


def test_a_confirmed_member_gets_the_next_issue_and_a_pending_one_never(
    signups: Signups,
) -> None:
    with signups.client() as client:
        sign_up(client, NEW)
        sign_up(client, PENDING)
        [link] = [confirm_link(read(p)) for p in signups.confirmations()
                  if read(p)["To"] == NEW]
        client.post(path_of(signups, link), data={"confirm": "yes"})
    room = signups.room
    room.ingest()
    assert room.assemble().issue is not None
    report = room.send()
    assert report.sent == 2
    folder = issue_folder(room.config.outbox_dir, 1)
    got = sorted(str(read(p)["To"]).rpartition("<")[2].rstrip(">") for p in folder.glob("*.eml"))
    assert got == sorted([ACTIVE, NEW])
    assert {d.email for d in room.store.deliveries(1)} == {ACTIVE, NEW}
    assert signups.status(PENDING) == "pending"
    assert not room.store.is_active(PENDING)


def test_every_archive_page_links_to_the_signup_form(room: Newsroom) -> None:
    room.ingest()
    room.assemble()
    public = room.config.public_dir
    index = (public / "index.html").read_text("utf-8")
    assert '<a href="subscribe">邮件订阅电子报</a>' in index
    pages = list((public / "issues").glob("*.html")) + list((public / "articles").glob("*.html"))
    assert pages
    for page in pages:
        assert '<a href="../subscribe">邮件订阅电子报</a>' in page.read_text("utf-8"), page.name


def test_members_list_json_shows_pending(signups: Signups) -> None:
    with signups.client() as client:
        sign_up(client, NEW)
    listed = {m.email: m.to_json()["status"] for m in signups.store.members()}
    assert listed == {ACTIVE: "active", GONE: "unsubscribed", NEW: "pending"}


# -- the store's rules, on SQLite and PostgreSQL ------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (f"sqlite:///{tmp_path / 'state' / 'gongbao.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    with Store(url) as s:
        yield s


def test_request_and_confirm_signup_in_the_store(store: Store, clock: FixedClock) -> None:
    hour = timedelta(hours=1)
    t0 = clock()
    assert store.request_signup(NEW, "许岚", t0, hour) is True
    assert store.request_signup(NEW.upper(), "", t0 + timedelta(minutes=59), hour) is False
    assert store.request_signup(NEW, "", t0 + timedelta(minutes=60), hour) is True
    assert store.member(NEW).status is MemberStatus.PENDING  # type: ignore[union-attr]
    assert store.count_members(active_only=True) == 0

    store.save_member(Member(ACTIVE, "何军", joined=t0))
    assert store.request_signup(ACTIVE, "别名", t0, hour) is False
    assert store.member(ACTIVE).name == "何军"  # type: ignore[union-attr]

    store.save_member(Member(GONE, "唐立", joined=t0))
    store.unsubscribe(GONE, t0 + timedelta(minutes=5), "one-click")
    assert store.request_signup(GONE, "", t0 + timedelta(minutes=6), hour) is True
    assert store.member(GONE).status is MemberStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    # A link made before the unsubscribe cannot bring them back; one made after can.
    assert store.confirm_signup(GONE, t0, t0 + timedelta(minutes=7)) is False
    assert store.confirm_signup(GONE, t0 + timedelta(minutes=6), t0 + timedelta(minutes=7))
    assert store.member(GONE).status is MemberStatus.ACTIVE  # type: ignore[union-attr]

    assert store.confirm_signup(NEW, t0, t0 + timedelta(hours=2)) is True
    member = store.member(NEW)
    assert member is not None and member.status is MemberStatus.ACTIVE
    assert member.name == "许岚" and member.joined == t0 + timedelta(hours=2)
    assert store.confirm_signup("nobody@example.org", t0, t0) is False


def test_an_operator_adding_a_pending_address_makes_it_active(room: Newsroom) -> None:
    room.store.request_signup(NEW, "", room.now(), timedelta(hours=1))
    assert room.add_member(NEW, "许岚").status is MemberStatus.ACTIVE
