"""The send's shortcuts give the same bytes and keep the same promises.

Mailer writes short headers itself and fills a digest cut at its slots once;
the outbox's ledger outcomes are settled in batches. Each shortcut is checked
against the slow, obvious way it replaces. The headers made from names and
text (headers.py) are checked the way a mail client reads them: parsed back
with the email package's default policy, they say exactly what was given.
"""

from __future__ import annotations

import email
import email.policy
import random
import unicodedata
from datetime import UTC, datetime
from email.header import decode_header, make_header

import pytest

from gongbao_feed.digest import (
    Mailer,
    _base64_lines,
    _Bodies,
    _header,
    _list_unsubscribe,
    _list_unsubscribe_header,
    _message_id_header,
    message_id,
    personalise,
)
from gongbao_feed.headers import (
    HeaderError,
    address_header,
    list_id_header,
    one_line_problem,
    text_header,
)
from gongbao_feed.ledger import Ledger
from gongbao_feed.mail import Message
from gongbao_feed.models import DeliveryState, Member
from gongbao_feed.publish import Newsroom
from gongbao_feed.transport import Outcome

from .helpers_mail import make_issue

NOW = datetime(2026, 11, 22, 0, 45, tzinfo=UTC)
ADDRESSES = ("a@example.org", "li.wei+news@mail.example.com", "x" * 50 + "@example.org",
             "o'neil@example.org", "user@xn--fsqu00a.xn--fiqs8s")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡"
NAMES = (
    "", "甲", "王五", "会员1", "会员12345678901234567890123456", "李" * 20, "李" * 40,
    "Li Wei", "O'Brien", "J. Smith", 'Li "Lee" Si', "王, 五", "Smith, John", "陈 晓雨 (工会)",
    "王小明 Wang", " lead", "trail ", "a  b", "Zoë", "<script>", "a&b", "=?utf-8?q?x?=",
    "x" * 70, "ｆｕｌｌ", "王\u3000五", "李😀", "a\\b", "Jo\u0301",
    # Names that look like encoded words or addresses: shown as written, never decoded.
    "=?utf-8?q?x=2C_attacker=40evil=2Eexample=2C?=", "a =?utf-8?q?=0D=0ABcc:_x@y?= b",
    "=?utf-8?b?5byg5LiJ?=", "x@evil.example", "<x@evil.example>", "a, b@evil.example",
    '"quoted"', "\\", '"', "x" * 99 + "=?", "王五 =?gb2312?b?1cXI/Q==?=",
)


def many_names(n: int = 400) -> list[str]:
    rnd = random.Random(5)
    pools = (SURNAMES + "晓明红华国强伟芳", "0123456789", "abcXYZ", " ,.\"'()<>@;:", "éüßΩЖ")
    names = list(NAMES)
    while len(names) < n:
        pool = "".join(rnd.sample(pools, rnd.randint(1, 3)))
        names.append("".join(rnd.choice(pool) for _ in range(rnd.randint(1, 45))))
    return names


def folded(name: str, value: object) -> bytes | type[Exception]:
    try:
        return _header(name, value)
    except Exception as exc:  # the shortcut must fail the same way
        return type(exc)


def shortcut(fn: object, *args: str) -> bytes | type[Exception]:
    try:
        return fn(*args)  # type: ignore[operator]
    except Exception as exc:
        return type(exc)


def read_header(raw: bytes, name: str) -> object:
    msg = email.message_from_bytes(raw + b"\r\n", policy=email.policy.default)
    assert list(msg.keys()) == [name]  # one header, nothing added
    assert msg[name].defects == ()
    return msg[name]


def test_to_says_exactly_the_name_and_one_address_however_the_name_reads() -> None:
    for i, name in enumerate(many_names(1500)):
        email_address = ADDRESSES[i % len(ADDRESSES)]
        raw = address_header("To", name, email_address)
        assert raw.isascii() and raw.endswith(b"\r\n")
        assert all(len(line) <= 78 for line in raw.split(b"\r\n")), raw
        to = read_header(raw, "To")
        assert len(to.addresses) == 1, (name, raw)  # type: ignore[attr-defined]
        address = to.addresses[0]  # type: ignore[attr-defined]
        assert address.addr_spec == email_address
        assert shown_name(raw, address.display_name) == name, raw


def shown_name(raw: bytes, parsed: str) -> str:
    """The display name as RFC 2047 6.2 reads it. Python's address parser puts a space
    between two encoded words of a long name, which RFC 2047 says to drop (mail
    clients do), and folds runs of spaces inside one; an encoded name is decoded as
    the RFC says (email.header), any other is the parser's."""
    value = raw.decode("ascii").split(":", 1)[1].replace("\r\n", "")
    phrase = value.rsplit("<", 1)[0].strip()
    words = phrase.split()
    if words and all(w.startswith("=?") and w.endswith("?=") for w in words):
        return str(make_header(decode_header(phrase)))
    return parsed


def test_the_names_that_turned_into_addresses_now_stay_names() -> None:
    raw = address_header("To", "=?utf-8?q?x=2C_attacker=40evil=2Eexample=2C?=",
                         "target@example.org")
    # One encoded word (base64 here: "Q" would need two) of the literal text.
    assert raw == (b"To: =?utf-8?b?PT91dGYtOD9xP3g9MkNfYXR0YWNrZXI9NDBldmlsPTJFZXhhbXBsZT0yQz89?="
                   b"\r\n <target@example.org>\r\n")
    assert address_header("To", "王五", "wang@example.org") == \
        b"To: =?utf-8?b?546L5LqU?= <wang@example.org>\r\n"
    assert address_header("To", "Li Wei", "li@example.org") == b"To: Li Wei <li@example.org>\r\n"
    assert address_header("To", 'Li "Lee" Si', "li@example.org") == \
        b'To: "Li \\"Lee\\" Si" <li@example.org>\r\n'
    assert address_header("To", "", "li@example.org") == b"To: li@example.org\r\n"


def test_a_subject_says_exactly_its_text() -> None:
    for text in [*many_names(1500), "工会报 第1期 · 2026年11月22日 星期日", "Weekly digest 12"]:
        if not text:
            continue
        raw = text_header("Subject", text)
        assert raw.isascii() and all(len(line) <= 78 for line in raw.split(b"\r\n")), raw
        assert str(read_header(raw, "Subject")) == text, raw
    # An encoded word holding CR LF stays text: no header of its own.
    raw = text_header("Subject", "a =?utf-8?q?=0D=0ABcc:_x@y?= b")
    assert str(read_header(raw, "Subject")) == "a =?utf-8?q?=0D=0ABcc:_x@y?= b"


def test_list_id_says_exactly_the_papers_name() -> None:
    for name in many_names(300):
        raw = list_id_header(name, "digest.news.example.org")
        assert raw.isascii() and all(len(line) <= 78 for line in raw.split(b"\r\n")), raw
        value = str(read_header(raw, "List-Id"))
        assert value.endswith(" <digest.news.example.org>") or value == \
            "<digest.news.example.org>"
    for bad in ("x", "digest.news.example.org> <evil.example", "a b.example", "中.example"):
        with pytest.raises(HeaderError):
            list_id_header("工会报", bad)


@pytest.mark.parametrize("breaks", ["\r", "\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85",
                                    "\u2028", "\u2029", "\x00", "\t", "\ud800"])
def test_no_header_takes_a_line_break_or_control_of_any_kind(breaks: str) -> None:
    text = f"王五{breaks}Bcc: x@evil.example"
    with pytest.raises(HeaderError, match=r"U\+"):
        address_header("To", text, "a@example.org")
    with pytest.raises(HeaderError, match=r"U\+"):
        text_header("Subject", text)
    with pytest.raises(HeaderError, match=r"U\+"):
        list_id_header(text, "digest.news.example.org")
    with pytest.raises(HeaderError):
        address_header("To", "王五", f"a@example.org{breaks}Bcc: x@evil.example")


def test_message_id_and_list_unsubscribe_are_what_the_email_package_folds() -> None:
    for address in ADDRESSES:
        for domain in ("news.example.org", "a-much-longer-domain-name.example.org", "例子.中国"):
            mid = message_id(1234, address, domain)
            assert shortcut(_message_id_header, mid) == folded("Message-ID", mid)
    rnd = random.Random(3)
    for _ in range(200):
        token = "".join(rnd.choice("abcXYZ019-_.") for _ in range(rnd.randint(10, 120)))
        url = f"https://news.example.org/unsubscribe/{token}"
        for mailto in ("", "unsubscribe@news.example.org"):
            value = _list_unsubscribe(url, mailto, token)
            assert _list_unsubscribe_header(value) == _header("List-Unsubscribe", value)


def test_bodies_filled_at_their_slots_equal_personalise(room: Newsroom) -> None:
    make_issue(room, 3)
    digest = room.digest()
    bodies = _Bodies(digest)
    for i, name in enumerate(many_names(120)):
        member = Member(email=f"m{i}@example.org", name=name)
        url = f"https://news.example.org/unsubscribe/t{i}"
        html, text = personalise(digest, member, url)
        assert bodies.fill(member, url) == (html.replace("\n", "\r\n").encode(),
                                            text.replace("\n", "\r\n").encode())


def test_a_message_is_the_same_bytes_as_assembled_the_slow_way(room: Newsroom) -> None:
    make_issue(room, 2)
    digest = room.digest()
    mailer = Mailer(digest, room.config, b"key", NOW)
    member = Member(email="wang@example.org", name="王五")
    data = mailer.message(member).data
    # Every per-member piece, made by the email package and personalise().
    html, text = personalise(digest, member, _unsubscribe_url(data))
    assert _base64_lines(text) in data and _base64_lines(html) in data
    assert b"\r\nTo: =?utf-8?b?546L5LqU?= <wang@example.org>\r\n" in data


def test_every_copy_carries_its_whole_bodies_in_base64_as_the_email_package_would(
    room: Newsroom,
) -> None:
    """Names and addresses of every length put the fixed text at every offset in a
    base64 line (the fixed lines are encoded once per offset and reused): each
    copy's bodies are still exactly its own text and HTML, encoded whole."""
    make_issue(room, 3)
    digest = room.digest()
    mailer = Mailer(digest, room.config, b"key", NOW)
    rnd = random.Random(11)
    for i, name in enumerate(many_names(150)):
        local = "".join(rnd.choice("abcdefghij-0123") for _ in range(rnd.randint(1, 40)))
        member = Member(email=f"m{i}{local}@example.org", name=name)
        data = mailer.message(member).data
        html, text = personalise(digest, member, _unsubscribe_url(data))
        assert b"\r\n\r\n" + _base64_lines(text) + b"\r\n--" in data, member
        assert b"\r\n\r\n" + _base64_lines(html) + b"\r\n--" in data, member


def _unsubscribe_url(data: bytes) -> str:
    line = next(x for x in data.split(b"\r\n") if x.startswith(b"List-Unsubscribe: <"))
    return line.split(b"<", 1)[1].split(b">", 1)[0].decode()


def claimed(room: Newsroom, n: int, **kw: object) -> tuple[Ledger, list[Member]]:
    make_issue(room, 1)
    for i in range(n):
        room.add_member(f"m{i}@example.org", f"会员{i}")
    book = Ledger(room.store, 1, now=lambda: NOW, transport="outbox", **kw)  # type: ignore[arg-type]
    return book, book.claim(n)


def sent(member: Member) -> Outcome:
    return Outcome(Message(1, member.email, "d@example.org", (member.email,), "<x>", b""),
                   DeliveryState.SENT)


def states(room: Newsroom) -> dict[str, str]:
    return {d.email: d.state.value for d in room.store.deliveries(1)}


def test_a_batch_settles_at_its_size_and_on_closing(room: Newsroom) -> None:
    ticks = iter(range(100))
    book, members = claimed(room, 4, batched=True, batch_size=3, batch_seconds=1000,
                            monotonic=lambda: next(ticks))
    assert set(states(room).values()) == {"pending"}  # claimed: held, not yet settled
    with book:
        for m in members:
            book.settle(sent(m))
        assert sorted(states(room).values()) == ["pending", "sent", "sent", "sent"]
    assert set(states(room).values()) == {"sent"}
    assert len(states(room)) == 4  # settled in place, not added


def test_a_batch_settles_once_its_time_is_up(room: Newsroom) -> None:
    now = [0.0]
    book, (a, b) = claimed(room, 2, batched=True, batch_size=100, batch_seconds=0.5,
                           monotonic=lambda: now[0])
    book.settle(sent(a))
    assert states(room)[a.email] == "pending"
    now[0] = 0.6
    book.settle(sent(b))
    assert set(states(room).values()) == {"sent"}


def test_claims_go_on_past_the_last_and_then_take_what_came_free_behind_it(
    room: Newsroom,
) -> None:
    """A sender claims onward in address order from its last claim; a member behind
    that point whose claim came free meanwhile (another sender gave it back, or
    died) is still claimed by this sender before it says no one is left."""
    make_issue(room, 1)
    for i in range(5):
        room.add_member(f"m{i}@example.org", f"会员{i}")
    other = Ledger(room.store, 1, now=lambda: NOW, transport="outbox", sender="elsewhere:1")
    mine = Ledger(room.store, 1, now=lambda: NOW, transport="outbox", sender="here:1")
    assert [m.email for m in other.claim(1)] == ["m0@example.org"]
    assert [m.email for m in mine.claim(2)] == ["m1@example.org", "m2@example.org"]
    other.release(["m0@example.org"])  # never tried: claimable again at once
    assert [m.email for m in mine.claim(2)] == ["m3@example.org", "m4@example.org"]
    assert [m.email for m in mine.claim(2)] == ["m0@example.org"]
    assert mine.claim(2) == []
    assert other.claim(2) == []


class Recorder:
    """A transport that writes nothing and reports each message sent, checking the ledger."""

    name = "test"

    def __init__(self, room: Newsroom, replaces: bool) -> None:
        self.room = room
        self.redelivery_replaces = replaces
        self.unrecorded_seen: list[int] = []

    def deliver(self, messages: object, report: object, stop: object) -> None:
        for message in messages:  # type: ignore[attr-defined]
            assert isinstance(message, Message)
            report(Outcome(message, DeliveryState.SENT))  # type: ignore[operator]
            sent = [d for d in self.room.store.deliveries(1) if d.state is DeliveryState.SENT]
            self.unrecorded_seen.append(len(sent))


@pytest.mark.parametrize("replaces", [False, True])
def test_only_a_transport_whose_repeats_replace_gets_its_rows_batched(
    room: Newsroom, replaces: bool
) -> None:
    make_issue(room, 1)
    for n in range(5):
        room.add_member(f"m{n}@example.org", f"会员{n}")
    with Newsroom(room.config, room.clock, transport=Recorder(room, replaces)) as sender:
        report = sender.send()
        transport = sender._transport
    assert report.sent == 5 and isinstance(transport, Recorder)
    # Per-message commits are visible at once; batched ones only at the end of the send.
    assert transport.unrecorded_seen == ([0] * 5 if replaces else [1, 2, 3, 4, 5])
    assert len(room.store.deliveries(1)) == 5
    with Newsroom(room.config, room.clock, transport=Recorder(room, replaces)) as sender:
        assert sender.send().sent == 0


def test_a_header_refuses_every_control_break_and_surrogate_character_and_no_other() -> None:
    """Written down by Unicode category, not by the search the code uses: every
    character of Cc, Zl, Zp, Cs in a name is refused, every other one is not."""
    for code in range(0x10000):
        ch = chr(code)
        unfit = unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")
        assert (one_line_problem(f"王{ch}芳") is not None) is unfit, f"U+{code:04X}"
