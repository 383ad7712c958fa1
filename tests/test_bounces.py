"""Bounces, complaints and mailed unsubscribes: VERP out, the bounce mailbox in.

The fixtures in tests/fixtures/bounces/ are written for these tests in the
shapes real servers send: a Postfix DSN (hard, 5.1.1) and a delayed one
(4.2.2), an ARF abuse report (RFC 5965), a QQ-style and a NetEase-style
plain-text Chinese bounce (GB18030 and UTF-8), two unsubscribe mails and a
reader's letter. The VERP addresses and the unsubscribe token they carry
are filled in from the .eml files the send wrote, as a relay would see them.
"""

from __future__ import annotations

import mailbox
import re
import shutil
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from gongbao_feed.bounces import Kind, classify
from gongbao_feed.config import load_config
from gongbao_feed.errors import BounceError
from gongbao_feed.mailboxes import ImapSource, MemoryImap
from gongbao_feed.outbox import eml_name, issue_folder
from gongbao_feed.publish import Newsroom
from gongbao_feed.tokens import read_verp_token

from .conftest import EXAMPLE_INBOX, FixedClock
from .helpers_cli import run
from .smtp_server import SmtpTestServer
from .test_smtp_send import PASSWORD, PASSWORD_ENV, use_relay

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"

MEMBERS = {
    "HARD": "gone.reader@mail.example.com",
    "SOFT": "slow.reader@box.example.cn",
    "COMPLAIN": "tired.reader@mailhost.example",
    "QQ": "lost.member@qq.example",
    "NETEASE": "busy.member@163.example",
    "LEAVER": "leaver@union.example.org",
    "PLAIN": "plain.leaver@home.example",
    "STAYS": "stays@union.example.org",
}
VERP = re.compile(r"bounce\+[a-z2-7]{24}@news\.example\.org")


def first_page_only(workdir: Path) -> None:
    for page in (workdir / "inbox").iterdir():
        if page.name != "2026-11-20-01.txt":
            page.unlink()


def sent_folder(workdir: Path, clock: FixedClock) -> dict[str, bytes]:
    """Issue 1 sent through the outbox to MEMBERS; each member's .eml file."""
    first_page_only(workdir)
    with Newsroom(load_config(workdir / "config.toml"), clock=clock) as room:
        room.ingest()
        room.assemble()
        for email in MEMBERS.values():
            room.add_member(email)
        report = room.send(via="outbox")
        assert report.sent == len(MEMBERS)
        folder = issue_folder(room.config.outbox_dir, 1)
    return {email: (folder / eml_name(email)).read_bytes() for email in MEMBERS.values()}


def return_path(eml: bytes) -> str:
    first = eml.split(b"\r\n", 1)[0].decode()
    m = re.fullmatch(r"Return-Path: <(.+)>", first)
    assert m, first
    return m.group(1)


def fill(name: str, files: dict[str, bytes]) -> bytes:
    data = (FIXTURES / name).read_bytes()
    for label, email in MEMBERS.items():
        data = data.replace(f"@@VERP_{label}@@".encode(), return_path(files[email]).encode())
        token = re.search(rb"subject=unsubscribe%20([A-Za-z0-9_-]+)", files[email])
        assert token
        data = data.replace(f"@@TOKEN_{label}@@".encode(), token.group(1))
    return data.replace(b"\n", b"\r\n") if b"\r\n" not in data else data


FIXTURE_FILES = ("dsn-hard.eml", "dsn-delayed.eml", "arf-complaint.eml", "qq-plain.eml",
                 "netease-plain.eml", "unsubscribe.eml", "unsubscribe-plain.eml", "letter.eml")


def fill_maildir(path: Path, files: dict[str, bytes]) -> mailbox.Maildir:
    box = mailbox.Maildir(path, create=True)
    for name in FIXTURE_FILES:
        box.add(fill(name, files))
    return box


def statuses(workdir: Path) -> dict[str, tuple[str, str | None]]:
    code, listed, _err = run(workdir, "members", "list", "--json")
    assert code == 0
    assert isinstance(listed, list)
    return {m["email"]: (m["status"], m["reason"]) for m in listed}


# -- VERP on the way out ---------------------------------------------------------------


def test_each_copy_has_its_own_verp_return_path_naming_its_issue(
    workdir: Path, clock: FixedClock
) -> None:
    files = sent_folder(workdir, clock)
    senders = {email: return_path(eml) for email, eml in files.items()}
    assert all(VERP.fullmatch(s) for s in senders.values()), senders
    assert len(set(senders.values())) == len(MEMBERS)  # one per member
    for email, sender in senders.items():
        assert email.split("@")[0] not in sender  # the address is not shown
        assert read_verp_token(sender[len("bounce+"):24 + len("bounce+")]).issue == 1
        msg = message_from_bytes(files[email], policy=default)
        assert msg["From"].addresses[0].addr_spec == "digest@news.example.org"


def test_a_test_copy_goes_out_from_the_plain_sender(workdir: Path, clock: FixedClock) -> None:
    sent_folder(workdir, clock)
    code, _out, _err = run(workdir, "send", "--to", MEMBERS["HARD"], "--via", "outbox")
    assert code == 0
    (copy,) = (workdir / "outbox" / "tests" / "0001").glob("*.eml")
    assert copy.read_bytes().startswith(b"Return-Path: <digest@news.example.org>\r\n")


def test_the_smtp_envelope_carries_the_verp_address(
    workdir: Path, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    first_page_only(workdir)
    with Newsroom(load_config(workdir / "config.toml"), clock=clock) as room:
        room.ingest()
        room.assemble()
        room.add_member(MEMBERS["QQ"])
    twin = Path(shutil.copytree(workdir, tmp_path / "twin"))  # the same secret key
    with Newsroom(load_config(twin / "config.toml"), clock=clock) as room:
        room.send(via="outbox")
        eml = (issue_folder(room.config.outbox_dir, 1) / eml_name(MEMBERS["QQ"])).read_bytes()
    with SmtpTestServer(tmp_path / "relay") as relay:
        use_relay(workdir, relay)
        with Newsroom(load_config(workdir / "config.toml"), clock=clock) as room:
            assert room.send(via="smtp").sent == 1
        (received,) = relay.by_recipient()[MEMBERS["QQ"]]
    assert VERP.fullmatch(received.sender)
    assert received.sender == return_path(eml)
    assert eml == b"Return-Path: <" + received.sender.encode() + b">\r\n" + received.data


def test_the_bounce_domain_is_configurable(workdir: Path, clock: FixedClock) -> None:
    cfg = workdir / "config.toml"
    cfg.write_text(cfg.read_text("utf-8") + '\n[bounces]\ndomain = "Bounces.News.Example.org"\n',
                   "utf-8")
    files = sent_folder(workdir, clock)
    assert re.fullmatch(r"bounce\+[a-z2-7]{24}@bounces\.news\.example\.org",
                        return_path(files[MEMBERS["STAYS"]]))


def test_a_bad_bounces_key_is_named(workdir: Path) -> None:
    cfg = workdir / "config.toml"
    cfg.write_text(cfg.read_text("utf-8") + "\n[bounces]\ndomain = \"not a domain\"\n"
                   "soft_limit = 0\n", "utf-8")
    code, _out, err = run(workdir, "bounces")
    assert code == 1
    assert "bounces.domain: 'not a domain' is not a domain name" in err
    assert "bounces.soft_limit: expected a number of at least 1 (got 0)" in err


# -- the bounce mailbox -----------------------------------------------------------------


def test_the_mailbox_is_read_and_every_member_ends_in_the_right_status(
    workdir: Path, clock: FixedClock
) -> None:
    files = sent_folder(workdir, clock)
    fill_maildir(workdir / "bounces", files)

    code, out, err = run(workdir, "bounces", "--json")
    assert code == 0, err
    assert out == {"hard": 2, "soft": 2, "complaints": 1, "unsubscribes": 2, "unclassified": 1}
    # The reader's letter is left where it is and reported by name and subject.
    (left,) = [p for p in (workdir / "bounces" / "new").iterdir()]
    assert f"new/{left.name} (咨询投稿方式): not a bounce, complaint or unsubscribe" in err
    assert len(list((workdir / "bounces" / ".processed" / "cur").iterdir())) == 7
    assert all(p.name.endswith(":2,S")
               for p in (workdir / "bounces" / ".processed" / "cur").iterdir())

    after = statuses(workdir)
    assert after == {
        MEMBERS["HARD"]: ("bounced", "5.1.1 550 5.1.1 <gone.reader@mail.example.com>: "
                                     "Recipient address rejected: User unknown"),
        MEMBERS["SOFT"]: ("active", None),
        MEMBERS["COMPLAIN"]: ("unsubscribed", "complaint"),
        MEMBERS["QQ"]: ("bounced", "对方服务器返回：550 Mailbox not found."),
        MEMBERS["NETEASE"]: ("active", None),
        MEMBERS["LEAVER"]: ("unsubscribed", "mailto"),
        MEMBERS["PLAIN"]: ("unsubscribed", "mailto"),
        MEMBERS["STAYS"]: ("active", None),
    }
    _c, listed, _e = run(workdir, "members", "list", "--json")
    assert isinstance(listed, list)
    hard = next(m for m in listed if m["email"] == MEMBERS["HARD"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", hard["since"])

    # A second run changes nothing: the letter is still reported, still there.
    code, again, err = run(workdir, "bounces", "--json")
    assert (code, again) == (0, {"hard": 0, "soft": 0, "complaints": 0, "unsubscribes": 0,
                                 "unclassified": 1})
    assert "咨询投稿方式" in err
    assert statuses(workdir) == after
    assert [p.name for p in (workdir / "bounces" / "new").iterdir()] == [left.name]

    # The text output names each member who left the list, in the operator's words.
    code, text, _err = run(workdir, "members", "list")
    assert re.search(rf"^{re.escape(MEMBERS['COMPLAIN'])}\t\tunsubscribed\t"
                     r"\d{4}-\d\d-\d\d \d\d:\d\d\tcomplaint$", str(text), re.M)
    assert re.search(rf"^{re.escape(MEMBERS['QQ'])}\t\tbounced\t.*\t对方服务器返回：550 Mailbox "
                     r"not found\.$", str(text), re.M)


def test_bounced_and_unsubscribed_members_are_not_mailed_by_the_next_send(
    workdir: Path, clock: FixedClock
) -> None:
    files = sent_folder(workdir, clock)
    fill_maildir(workdir / "bounces", files)
    assert run(workdir, "bounces")[0] == 0
    shutil.copy(EXAMPLE_INBOX / "2026-11-22-01.txt", workdir / "inbox")
    clock.advance(days=1)
    with Newsroom(load_config(workdir / "config.toml"), clock=clock) as room:
        room.ingest()
        assert room.assemble().plan.issue is not None
        report = room.send(via="outbox")
        folder = issue_folder(room.config.outbox_dir, 2)
    got = sorted(p.name for p in folder.iterdir())
    assert got == sorted(eml_name(MEMBERS[k]) for k in ("SOFT", "NETEASE", "STAYS"))
    assert report.sent == 3


def test_soft_bounces_count_once_per_issue_and_mark_bounced_at_the_limit(
    workdir: Path, clock: FixedClock
) -> None:
    cfg = workdir / "config.toml"
    cfg.write_text(cfg.read_text("utf-8") + "\n[bounces]\nsoft_limit = 2\n", "utf-8")
    files = sent_folder(workdir, clock)
    box = mailbox.Maildir(workdir / "bounces", create=True)
    delayed = fill("dsn-delayed.eml", files)
    box.add(delayed)
    # The relay's second notice for the same copy: the same issue, so not a second bounce.
    box.add(delayed.replace(b"still being retried", b"still being retried, 8 hours"))
    assert run(workdir, "bounces", "--json")[1] == {
        "hard": 0, "soft": 2, "complaints": 0, "unsubscribes": 0, "unclassified": 0}
    assert statuses(workdir)[MEMBERS["SOFT"]] == ("active", None)
    # A soft bounce without a VERP address, found by its Final-Recipient: the second in a row.
    box.add(re.sub(rb"bounce\+[a-z2-7]{24}@", b"bounce@", delayed))
    assert run(workdir, "bounces", "--json")[1]["soft"] == 1  # type: ignore[index]
    status, reason = statuses(workdir)[MEMBERS["SOFT"]]
    assert status == "bounced"
    assert reason == "2 soft bounces in a row; the last: 4.2.2 452 4.2.2 Mailbox over quota, " \
        "try again later"


def test_a_missing_maildir_is_an_error_naming_the_key(workdir: Path) -> None:
    code, _out, err = run(workdir, "bounces")
    assert code == 1
    assert "bounces.maildir:" in err and "is not a Maildir" in err


# -- the classifier on its own -------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind", "status"), [
    ("dsn-hard.eml", Kind.HARD, "5.1.1"),
    ("dsn-delayed.eml", Kind.SOFT, "4.2.2"),
    ("arf-complaint.eml", Kind.COMPLAINT, None),
    ("qq-plain.eml", Kind.HARD, "550"),
    ("netease-plain.eml", Kind.SOFT, "451"),
    ("unsubscribe-plain.eml", Kind.UNSUBSCRIBE, None),
    ("letter.eml", Kind.UNKNOWN, None),
])
def test_each_fixture_is_read_as_what_it_is(name: str, kind: Kind, status: str | None) -> None:
    verdict = classify((FIXTURES / name).read_bytes(), "unsubscribe@news.example.org")
    assert (verdict.kind, verdict.status) == (kind, status)


def test_a_policy_refusal_is_soft_not_hard() -> None:
    """5.7.1 (a spam filter, a blocked sender) says nothing about the address."""
    data = (FIXTURES / "dsn-hard.eml").read_bytes().replace(b"5.1.1", b"5.7.1")
    assert classify(data).kind is Kind.SOFT


def test_an_auto_reply_is_left_alone() -> None:
    data = (FIXTURES / "letter.eml").read_bytes().replace(
        b"Subject: =?utf-8?b?5ZKo6K+i5oqV56i/5pa55byP?=", "Subject: 自动回复：休假中".encode())
    assert classify(data).kind is Kind.UNKNOWN


# -- IMAP (against the in-library test double, see below) -----------------------------------


def test_the_imap_folder_is_read_and_processed_messages_are_moved(
    workdir: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against MemoryImap, injected: no IMAP server runs here (see README)."""
    files = sent_folder(workdir, clock)
    cfg = workdir / "config.toml"
    cfg.write_text(cfg.read_text("utf-8") + '\n[bounces]\nimap_host = "imap.example.org"\n'
                   'imap_user = "bounce"\nimap_password_env = "TEST_IMAP_PW"\n', "utf-8")
    monkeypatch.setenv("TEST_IMAP_PW", "imap-secret")
    for capabilities in (("IMAP4REV1", "MOVE"), ("IMAP4REV1", "UIDPLUS")):
        imap = MemoryImap("bounce", "imap-secret", capabilities)
        for name in ("dsn-hard.eml", "letter.eml"):
            imap.add("INBOX", fill(name, files))
        config = load_config(cfg)
        with Newsroom(config, clock=clock) as room:
            report = room.process_bounces(
                source=ImapSource(config, connect=lambda imap=imap: imap))
        assert report.to_json()["unclassified"] == 1
        assert [m.data for m in imap.folders["INBOX"]] == [fill("letter.eml", files)]
        assert [m.data for m in imap.folders["gongbao-processed"]] == [
            fill("dsn-hard.eml", files)]
        assert all("BODY.PEEK[]" in c for c in imap.log if "FETCH" in c)
        assert not any(r"\Seen" in m.flags for m in imap.folders["INBOX"])
    assert statuses(workdir)[MEMBERS["HARD"]][0] == "bounced"


def test_imap_without_its_password_names_the_key(workdir: Path) -> None:
    cfg = workdir / "config.toml"
    cfg.write_text(cfg.read_text("utf-8") + '\n[bounces]\nimap_host = "imap.example.org"\n'
                   'imap_user = "bounce"\nimap_password_env = "TEST_IMAP_PW_UNSET"\n', "utf-8")
    with pytest.raises(BounceError, match=r"bounces\.imap_password_env: the environment "
                                          r"variable TEST_IMAP_PW_UNSET is not set"):
        ImapSource(load_config(cfg))


def test_the_service_reads_the_mailbox_on_its_own_interval(workdir: Path) -> None:
    from gongbao_feed.schedule import BOUNCES, job_specs

    config = load_config(workdir / "config.toml")
    assert BOUNCES not in [s.id for s in job_specs(config)]  # 0: off by default
    cfg = workdir / "config.toml"
    cfg.write_text(cfg.read_text("utf-8") + "\n[bounces]\nevery_minutes = 10\n", "utf-8")
    (spec,) = [s for s in job_specs(load_config(cfg)) if s.id == BOUNCES]
    assert spec.schedule == "every 10 min"


def test_a_verp_token_is_written_down_and_read_strictly() -> None:
    from gongbao_feed.tokens import BadToken, verp_tag, verp_token

    key = b"test-secret-for-verp"
    # base32(issue 12 as 4 bytes + HMAC-SHA256(derived key, "12\nluo.bin@example.org")[:11])
    token = "aaaaadagpxsgd633sb3aj4q3"
    assert verp_token(key, "Luo.Bin@Example.org", 12) == token  # one token per mailbox
    claims = read_verp_token(token.upper())  # a relay that upper-cases local parts
    assert (claims.issue, claims.tag) == (12, verp_tag(key, "luo.bin@example.org", 12))
    for bad in (token[:-1], token + "a", token.replace("a", "1", 1), "a" * 24, "=" * 24):
        with pytest.raises(BadToken):
            read_verp_token(bad)


def test_a_copy_that_got_through_in_between_starts_the_row_again(
    workdir: Path, clock: FixedClock
) -> None:
    """Issues 1, 2, 3 sent; soft bounces for 1 and 3 are not in a row (2 got through),
    until 2's own bounce arrives late: then 1, 2, 3 all bounced, and 2 of 2 is the limit."""
    cfg = workdir / "config.toml"
    cfg.write_text(cfg.read_text("utf-8") + "\n[bounces]\nsoft_limit = 2\n", "utf-8")
    files = {1: sent_folder(workdir, clock)}
    for number, page in ((2, "2026-11-21-02.txt"), (3, "2026-11-22-01.txt")):
        shutil.copy(EXAMPLE_INBOX / page, workdir / "inbox")
        clock.advance(days=1)
        with Newsroom(load_config(cfg), clock=clock) as room:
            room.ingest()
            assert room.assemble().plan.issue is not None
            room.send(via="outbox")
            folder = issue_folder(room.config.outbox_dir, number)
        files[number] = {e: (folder / eml_name(e)).read_bytes() for e in MEMBERS.values()}
    box = mailbox.Maildir(workdir / "bounces", create=True)

    def bounce_for(issue: int) -> None:
        box.add(fill("dsn-delayed.eml", files[issue]))
        assert run(workdir, "bounces", "--json")[1]["soft"] == 1  # type: ignore[index]

    bounce_for(1)
    bounce_for(3)
    assert statuses(workdir)[MEMBERS["SOFT"]] == ("active", None)
    bounce_for(2)
    assert statuses(workdir)[MEMBERS["SOFT"]][0] == "bounced"
