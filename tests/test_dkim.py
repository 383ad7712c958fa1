"""DKIM: `dkim keygen`, the [dkim] config, and signed digests that verify.

Every check of a signature is dkimpy's own verifier (`dkim.verify`) with its
DNS lookup replaced by an injected function that returns the TXT record
`keygen` printed: nothing is patched, and the record is the one an operator
would publish.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from gongbao_feed import outbox, signing
from gongbao_feed.cli import main
from gongbao_feed.config import load_config
from gongbao_feed.digest import Mailer
from gongbao_feed.errors import ConfigError
from gongbao_feed.models import Member
from gongbao_feed.outbox import issue_folder
from gongbao_feed.publish import Newsroom

from .conftest import FixedClock
from .helpers_mail import make_issue, parse
from .smtp_server import PASSWORD, SmtpTestServer

SELECTOR = "202611"
DOMAIN = "news.example.org"  # the From domain of `init`'s config
RECORD = re.compile(
    rf'^{SELECTOR}\._domainkey\.{re.escape(DOMAIN)} IN TXT '
    r'"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+={0,2}"( "[A-Za-z0-9+/]+={0,2}")*$'
)
MEMBERS = {"chen.xiaoyu@example.org": "陈晓雨", "li.ming@example.com": "李明",
           "wang.fang@example.net": ""}
#: Headers the issue requires to be signed.
REQUIRED = {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
            "list-unsubscribe-post"}


def keygen(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["dkim", "keygen", *args])
    return result.exit_code, result.stdout, result.stderr


def txt_of(record_line: str) -> bytes:
    """The TXT value a resolver returns for the printed record: its strings joined."""
    return "".join(re.findall(r'"([^"]*)"', record_line)).encode()


def dns_returning(record_line: str):
    wanted = f"{SELECTOR}._domainkey.{DOMAIN}."

    def lookup(name: bytes | str, timeout: int = 5) -> bytes | None:
        name = name.decode() if isinstance(name, bytes) else name
        return txt_of(record_line) if name == wanted else None

    return lookup


def with_dkim(folder: Path, domain: str = DOMAIN, key: str = "dkim.key") -> None:
    cfg = folder / "config.toml"
    cfg.write_text(cfg.read_text("utf-8") + f'\n[dkim]\ndomain = "{domain}"\n'
                   f'selector = "{SELECTOR}"\nprivate_key_file = "{key}"\n', "utf-8")


@pytest.fixture
def signed(workdir: Path) -> tuple[Path, str]:
    """`init`'s folder with a key from `keygen`, [dkim] set, an issue and three members;
    returns the folder and the DNS record line keygen printed."""
    code, out, err = keygen("--selector", SELECTOR, "--domain", DOMAIN,
                            "--out", str(workdir / "dkim.key"))
    assert code == 0, err
    with_dkim(workdir)
    with Newsroom(load_config(workdir / "config.toml"), clock=FixedClock()) as room:
        make_issue(room, 3)
        for email, name in MEMBERS.items():
            room.add_member(email, name)
    return workdir, out.strip()


def open_room(folder: Path) -> Newsroom:
    return Newsroom(load_config(folder / "config.toml"), clock=FixedClock())


def signature_tags(raw: bytes) -> dict[str, str]:
    value = str(parse(raw)["DKIM-Signature"])
    return {k.strip(): "".join(v.split()) for k, v in
            (t.split("=", 1) for t in value.split(";") if t.strip())}


# -- keygen ------------------------------------------------------------------------------


def test_keygen_writes_a_2048_bit_key_0600_and_prints_its_record(tmp_path: Path) -> None:
    out_file = tmp_path / "keys" / "news.key"
    code, out, err = keygen("--selector", SELECTOR, "--domain", DOMAIN, "--out", str(out_file))
    assert code == 0, err
    (line,) = out.splitlines()
    assert RECORD.fullmatch(line), line
    strings = re.findall(r'"([^"]*)"', line)
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)  # 410 characters in all
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    key = load_pem_private_key(out_file.read_bytes(), password=None)
    assert key.key_size == 2048  # type: ignore[union-attr]
    assert str(out_file) in err and "[dkim]" in err
    assert list(out_file.parent.iterdir()) == [out_file]  # no temporary file left


def test_keygen_never_replaces_a_key_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "dkim.key"
    assert keygen("--selector", SELECTOR, "--domain", DOMAIN, "--out", str(path))[0] == 0
    first = path.read_bytes()
    code, out, err = keygen("--selector", SELECTOR, "--domain", DOMAIN, "--out", str(path))
    assert code == 1 and out == "" and f"{path} already exists" in err and "--force" in err
    assert path.read_bytes() == first
    code, _out, _err = keygen("--selector", SELECTOR, "--domain", DOMAIN, "--out", str(path),
                              "--force")
    assert code == 0 and path.read_bytes() != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keygen_refuses_a_selector_that_is_not_a_dns_name(tmp_path: Path) -> None:
    code, _out, err = keygen("--selector", "my selector", "--domain", DOMAIN,
                             "--out", str(tmp_path / "k"))
    assert code == 2 and "'my selector' is not a DNS name" in err
    assert not (tmp_path / "k").exists()


# -- every copy signed, and verifying --------------------------------------------------------


def test_every_outbox_copy_verifies_against_the_published_record(
    signed: tuple[Path, str],
) -> None:
    folder, record = signed
    with open_room(folder) as room:
        assert room.send().sent == 3
        copies = sorted(issue_folder(room.config.outbox_dir, 1).glob("*.eml"))
    assert len(copies) == 3
    for path in copies:
        return_path, raw = path.read_bytes().split(b"\r\n", 1)  # the outbox's envelope line
        assert re.fullmatch(rb"Return-Path: <bounce\+[a-z2-7]{24}@news\.example\.org>",
                            return_path)
        assert raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
        assert dkim.verify(raw, dnsfunc=dns_returning(record)), path.name
        tags = signature_tags(raw)
        assert (tags["a"], tags["c"], tags["d"], tags["s"]) == (
            "rsa-sha256", "relaxed/relaxed", DOMAIN, SELECTOR)
        signed_names = tags["h"].split(":")
        assert REQUIRED | {"reply-to", "mime-version", "content-type"} <= set(signed_names)
        # over-signed: a second From, Subject or List-Unsubscribe cannot be added
        for name in ("from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post"):
            assert signed_names.count(name) == 2, name


def test_a_copy_altered_in_one_byte_fails(signed: tuple[Path, str]) -> None:
    folder, record = signed
    with open_room(folder) as room:
        room.send()
        raw = next(issue_folder(room.config.outbox_dir, 1).glob("*.eml")).read_bytes()
    lookup = dns_returning(record)
    assert dkim.verify(raw, dnsfunc=lookup)
    body_at = raw.index(b"\r\n\r\n") + 2000  # inside the base64 of the text part
    flipped = b"B" if raw[body_at:body_at + 1] == b"A" else b"A"
    assert not dkim.verify(raw[:body_at] + flipped + raw[body_at + 1:], dnsfunc=lookup)
    subject = raw.index(b"\r\nSubject: ") + 11
    assert not dkim.verify(raw[:subject] + b"X" + raw[subject + 1:], dnsfunc=lookup)
    # a second List-Unsubscribe added in transit breaks it too
    added = raw.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe: <https://evil.example/>\r\n\r\n", 1)
    assert not dkim.verify(added, dnsfunc=lookup)


def test_a_test_copy_is_signed(signed: tuple[Path, str]) -> None:
    folder, record = signed
    result = CliRunner().invoke(main, ["send", "--to", "editor@news.example.org",
                                       "--config", str(folder / "config.toml")])
    assert result.exit_code == 0, result.output
    (raw,) = [p.read_bytes() for p in outbox.test_folder(folder / "outbox", 1).glob("*.eml")]
    assert str(parse(raw)["Subject"]).startswith("[测试] ")
    assert dkim.verify(raw, dnsfunc=dns_returning(record))


def test_smtp_copies_the_relay_receives_verify(
    signed: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, record = signed
    monkeypatch.setenv("GONGBAO_TEST_SMTP_PASSWORD", PASSWORD)
    with SmtpTestServer(tmp_path / "relay") as relay:
        cfg = folder / "config.toml"
        table = "[smtp]\n" + "".join(
            f"{k} = {v!r}\n".replace("'", '"') if not isinstance(v, bool) else f"{k} = {v}\n"
            for k, v in relay.smtp_settings(password_env="GONGBAO_TEST_SMTP_PASSWORD").items()
        )
        cfg.write_text(re.sub(r"^\[smtp\]\n(?:(?!\[).*\n)*", table + "\n",
                              cfg.read_text("utf-8"), flags=re.M), "utf-8")
        with open_room(folder) as room:
            assert room.send(via="smtp").sent == 3
        received = relay.received
    assert sorted(r.recipients[0] for r in received) == sorted(MEMBERS)
    for message in received:
        assert dkim.verify(message.data, dnsfunc=dns_returning(record)), message.recipients


def test_signing_adds_one_header_and_changes_nothing_else(signed: tuple[Path, str]) -> None:
    """A copy's golden shape holds with the DKIM-Signature scrubbed as a volatile field:
    what is left is byte for byte the copy an unsigned send makes."""
    folder, _record = signed
    member = Member("chen.xiaoyu@example.org", "陈晓雨")
    with open_room(folder) as room:
        digest = room.digest(1)
        now = room.now()
        raw = Mailer(digest, room.config, b"k", now, signer=room.signer()).message(member).data
        plain = Mailer(digest, room.config, b"k", now).message(member).data
    scrubbed = re.sub(rb"\ADKIM-Signature:.*?\r\n(?![ \t])", b"", raw, flags=re.S)
    assert scrubbed != raw and scrubbed == plain


# -- the [dkim] config ---------------------------------------------------------------------


def test_a_key_others_can_read_is_refused_with_the_chmod_to_run(signed: tuple[Path, str]) -> None:
    folder, _record = signed
    key = folder / "dkim.key"
    key.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_config(folder / "config.toml")
    assert "dkim.private_key_file" in caught.value.message
    assert str(key.resolve()) in caught.value.message and "0644" in caught.value.message
    assert caught.value.hint == f"run `chmod 600 {key.resolve()}`"
    result = CliRunner().invoke(main, ["send", "--config", str(folder / "config.toml")])
    assert result.exit_code == 1 and f"chmod 600 {key.resolve()}" in result.stderr
    assert not (folder / "outbox" / "0001").exists()
    key.chmod(0o400)  # owner-only, read-only, is fine
    load_config(folder / "config.toml")


def test_a_missing_key_or_a_half_set_table_is_named(workdir: Path) -> None:
    with_dkim(workdir, key="keys/absent.key")
    with pytest.raises(ConfigError) as caught:
        load_config(workdir / "config.toml")
    assert "dkim.private_key_file" in caught.value.message and "absent.key" in caught.value.message
    assert "dkim keygen" in (caught.value.hint or "")
    cfg = workdir / "config.toml"
    cfg.write_text(cfg.read_text("utf-8").split("\n[dkim]\n")[0]
                   + '\n[dkim]\ndomain = "news.example.org"\n', "utf-8")
    with pytest.raises(ConfigError, match="set selector, private_key_file too"):
        load_config(cfg)


def test_a_key_that_is_not_rsa_pem_is_named(workdir: Path) -> None:
    key = workdir / "dkim.key"
    key.write_text("not a key\n")
    key.chmod(0o600)
    with_dkim(workdir)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        open_room(workdir).signer()


@pytest.mark.parametrize(("domain", "warned"), [
    ("news.example.org", False),  # the From domain itself
    ("example.org", False),  # its organisational domain: relaxed alignment
    ("mail.example.org", False),  # a sibling under the same organisation
    ("example.com", True),
    ("news.example.org.cn", True),
])
def test_the_from_and_dkim_domains_are_checked_for_alignment(
    workdir: Path, caplog: pytest.LogCaptureFixture, domain: str, warned: bool,
) -> None:
    assert keygen("--selector", SELECTOR, "--domain", domain, "--out",
                  str(workdir / "dkim.key"))[0] == 0
    with_dkim(workdir, domain=domain)
    with caplog.at_level(logging.WARNING, logger="gongbao_feed.config"):
        load_config(workdir / "config.toml")
    lines = [r.getMessage() for r in caplog.records if r.name == "gongbao_feed.config"]
    if warned:
        (line,) = lines
        assert "news.example.org" in line and f"dkim.domain {domain}" in line
        assert "not aligned" in line
    else:
        assert lines == []


def test_the_cli_prints_the_alignment_warning(workdir: Path) -> None:
    assert keygen("--selector", SELECTOR, "--domain", "example.com", "--out",
                  str(workdir / "dkim.key"))[0] == 0
    with_dkim(workdir, domain="example.com")
    result = CliRunner().invoke(main, ["members", "list", "--config",
                                       str(workdir / "config.toml")])
    assert result.exit_code == 0
    assert "news.example.org" in result.stderr and "example.com" in result.stderr


# -- the signer's own shortcuts, checked against dkimpy ------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"Zz", b" ", b"  ", b"\t", b"\r\n", b"\n", b"\r",
                                 b"=", b"\r\n\r\n"]), max_size=30).map(b"".join))
def test_a_body_hashed_as_it_is_is_one_dkimpy_would_not_change(body: bytes) -> None:
    from dkim.canonicalization import CanonicalizationPolicy

    relaxed = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    canonical = relaxed.canonicalize_body(dkim.rfc822_parse(b"A: b\r\n\r\n" + body)[1])
    if signing.is_relaxed_canonical(body):
        assert canonical == body


_KEY = signing.generate_key()
_SIGNER = signing.Signer(DOMAIN, SELECTOR, _KEY)
_LINE = signing.dns_record(SELECTOR, DOMAIN, _KEY)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([b"abc", b" ", b"  ", b"\t", b"\r\n", b"\n", b"\r\n\r\n"]),
                max_size=20).map(b"".join))
def test_any_body_signs_and_verifies(body: bytes) -> None:
    raw = (b"From: a@news.example.org\r\nTo: b@example.org\r\nSubject: s\r\n"
           b"Date: Sun, 22 Nov 2026 09:00:00 +0800\r\n\r\n" + body)
    assert dkim.verify(_SIGNER.sign(raw, 1_795_000_000), dnsfunc=dns_returning(_LINE))


_SHARED = (b"From: =?utf-8?b?5bel5Lq65pel5oql?= <news@news.example.org>\r\n"
           b"Subject:   =?utf-8?b?56ysMeacnw==?=\r\n"
           b"Date: Sun, 22 Nov 2026 09:00:00 +0800\r\n"
           b"List-Id: <daily.news.example.org>\r\nMIME-Version: 1.0\r\n")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from([b"abc", b" ", b"  ", b"\t", b"\r\n", b"\n", b"\r\n\r\n", b"QUFB"]),
             max_size=20),
    st.sampled_from([b"b@example.org", b"\t\"Li  Ming\"\r\n <li@example.com>"]),
)
def test_copies_signed_on_the_shared_fields_verify(pieces: list[bytes], to: bytes) -> None:
    """Shared fields hashed once, each copy's own on top, its body in pieces, the own
    fields written between the shared ones as the Mailer writes them: dkimpy agrees."""
    copies = _SIGNER.copies(_SHARED, 1_795_000_000)
    own = b"To: " + to + b"\r\nMessage-ID: <1.x@news.example.org>\r\n"
    canonical = signing.is_relaxed_canonical(b"".join(pieces))
    signature = copies.signature(own, pieces, canonical_body=canonical)
    first, rest = _SHARED.split(b"MIME-Version", 1)
    raw = signature + first + own + b"MIME-Version" + rest + b"\r\n" + b"".join(pieces)
    lookup = dns_returning(_LINE)
    assert dkim.verify(raw, dnsfunc=lookup)
    # over-signed on both sides: a second To or Subject added in transit breaks it
    for added in (b"To: x@evil.example\r\n", b"Subject: x\r\n"):
        tampered = raw.replace(b"\r\n\r\n", b"\r\n" + added + b"\r\n", 1)
        assert not dkim.verify(tampered, dnsfunc=lookup)


def test_a_copy_field_named_like_a_shared_one_is_refused() -> None:
    copies = _SIGNER.copies(_SHARED, 1_795_000_000)
    with pytest.raises(ValueError, match="subject"):
        copies.signature(b"To: b@example.org\r\nSubject: mine\r\n", [b"abc\r\n"])

# -- SpamAssassin, signed ------------------------------------------------------------------


@pytest.mark.slow
def test_spamassassin_scores_a_signed_digest_at_most_one(signed: tuple[Path, str]) -> None:
    spamassassin = shutil.which("spamassassin")
    if spamassassin is None:
        if os.environ.get("CI"):
            pytest.fail("spamassassin is missing: apt-get install -y spamassassin")
        pytest.skip("needs Debian's spamassassin")
    folder, _record = signed
    with open_room(folder) as room:
        room.send()
        raw = next(issue_folder(room.config.outbox_dir, 1).glob("*.eml")).read_bytes()
    out = subprocess.run([spamassassin, "--local", "--test-mode"], input=raw,
                         capture_output=True, timeout=300, check=True).stdout.decode()
    status = re.search(r"^X-Spam-Status: (.*?)\n(?![ \t])", out, re.M | re.S)
    assert status is not None, out[:2000]
    fields = " ".join(status[1].split())
    assert float(re.search(r"score=(-?[\d.]+)", fields)[1]) <= 1.0, fields  # type: ignore[index]


def test_a_signup_confirmation_is_signed_too(signed: tuple[Path, str]) -> None:
    """Readers' confirmations leave the same domain as the digests: signed, verifiable."""
    from datetime import UTC, datetime

    from gongbao_feed.signup import ConfirmationMailer
    from gongbao_feed.tokens import load_secret

    folder, record = signed
    config = load_config(folder / "config.toml")
    mailer = ConfirmationMailer(config, load_secret(config.state_dir), signing.signer_for(config))
    when = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    message = mailer.message("zhao.lei@example.org", "赵磊", when)
    assert dkim.verify(message.data, dnsfunc=dns_returning(record))
    tags = signature_tags(message.data)
    assert tags["d"] == DOMAIN and tags["s"] == SELECTOR
    altered = message.data.replace(b"Subject:", b"Subject: x", 1)
    assert not dkim.verify(altered, dnsfunc=dns_returning(record))
