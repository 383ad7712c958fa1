"""Signed tokens: unsubscribe (member, issue), approve links, signup confirmations,
the signup form, and VERP envelope senders.

Unsubscribe tokens are (member, issue), sealed so the link shows neither.
Approve tokens (issue, editor, expiry) and signup confirmation tokens
(address, time) are sealed the same way under keys derived apart and other
associated data, so no kind ever opens as another; they expire. Form tokens
(`sign_form`) are HMACs over a time and a nonce, for the signup form's CSRF
check. VERP tokens are short keyed hashes that fit an address's local part.

Shape of a token (URL-safe, no padding, no dots):

    <base64url(AES-SIV(key', "issue\\nemail", ad="gongbao-unsubscribe-v2"))>

AES-SIV (RFC 5297) is deterministic authenticated encryption: the same
member and issue always give the same token (a repeated copy of a digest
carries the same link), a token with any bit changed fails to open, and
nobody without the key can read the address. The address must not be
readable: anyone who sees the link (a link scanner, a forwarded mail) would
learn what the unsubscribe page carefully masks.

Links from digests sent before this format (`<base64url(email)>.<issue>.
<base64url(HMAC-SHA256)>`) still work: `verify` accepts them, parsed just as
strictly, and `sign` never makes them again.

Parsing is strict so one token has exactly one spelling: base64url without
padding and with zero trailing bits (what `_b64` makes), and an issue number
in canonical ASCII decimal (`1`, never `+1`, `01`, `1 ` or a full-width `１`).

The key comes from the environment (GONGBAO_SECRET) or from the working
folder's state/secret.key (mode 0600, made by `init` or on first use), never
from config.toml, which people paste into tickets and commit to git.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from .skeleton import SECRET_FILE, write_secret

SECRET_ENV = "GONGBAO_SECRET"
#: Associated data of the sealed token: binds it to this purpose and version.
_AD = b"gongbao-unsubscribe-v2"
#: Base64url without padding: the alphabet only, and never a length of 1 mod 4.
_B64 = re.compile(r"[A-Za-z0-9_-]+")
#: An issue number as `sign` writes it: ASCII digits, no sign, no leading zero.
_NUMBER = re.compile(r"[1-9][0-9]{0,17}")
#: The longest address a member may have (RFC 5321 path limit), bounding a token.
_MAX_EMAIL = 320


@dataclass(frozen=True)
class TokenClaims:
    email: str
    issue: int


class BadToken(ValueError):
    """Forged, malformed or truncated: the request changes nothing."""


def load_secret(state_dir: Path) -> bytes:
    env = os.environ.get(SECRET_ENV, "").strip()
    if env:
        return env.encode()
    path = state_dir / SECRET_FILE
    if not path.exists():
        write_secret(state_dir)
    return path.read_text("ascii").strip().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    """Strict base64url without padding: one spelling per byte string, or BadToken."""
    if not _B64.fullmatch(text) or len(text) % 4 == 1:
        raise BadToken("malformed token")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("malformed token") from None
    if _b64(data) != text:  # nonzero trailing bits: another spelling of the same bytes
        raise BadToken("malformed token")
    return data


def _number(text: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise BadToken("malformed token")
    return int(text)


#: Each sealed token's purpose: the label its key is derived under, and its associated
#: data. A token opens only under its own purpose (other key, other AD).
_Purpose = tuple[bytes, bytes]


@functools.lru_cache(maxsize=12)
def _cipher(key: bytes, label: bytes) -> AESSIV:
    """AES-SIV-256 under a key derived from the secret for one purpose.

    Kept per key and purpose: deriving it and setting up the cipher cost
    more than sealing one token, and a send seals one per member."""
    return AESSIV(hmac.new(key, label, hashlib.sha512).digest())


def _seal(key: bytes, purpose: _Purpose, plain: str) -> str:
    label, ad = purpose
    return _b64(_cipher(key, label).encrypt(plain.encode(), [ad]))


def _open(key: bytes, purpose: _Purpose, token: str) -> str:
    """The text a token of this purpose seals; BadToken for anything we did not make."""
    if len(token) > 2 * _MAX_EMAIL or "." in token:
        raise BadToken("malformed token")
    label, ad = purpose
    try:
        plain = _cipher(key, label).decrypt(_unb64(token), [ad])
    except InvalidTag:
        raise BadToken("token signature does not match") from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise BadToken("malformed token") from None


def _number_then(text: str) -> tuple[int, str]:
    """`N\nrest` as (N, rest), rest not empty; BadToken otherwise."""
    first, sep, rest = text.partition("\n")
    if not sep or not rest:
        raise BadToken("malformed token")
    return _number(first), rest


_UNSUBSCRIBE: _Purpose = (b"gongbao unsubscribe token v2", _AD)


def _mac(key: bytes, email: str, issue: int) -> bytes:
    return hmac.new(key, f"unsubscribe\n{email}\n{issue}".encode(), hashlib.sha256).digest()


def sign(key: bytes, email: str, issue: int) -> str:
    """A URL-safe token naming the member and the issue, sealed with `key`."""
    if issue < 1:
        raise ValueError(f"issue number must be at least 1, not {issue}")
    return _seal(key, _UNSUBSCRIBE, f"{issue:d}\n{email}")


def verify(key: bytes, token: str) -> TokenClaims:
    """The member and issue a token names; BadToken if it is not exactly one we made."""
    if len(token) > 2 * _MAX_EMAIL:
        raise BadToken("malformed token")
    if "." in token:
        return _verify_old(key, token)
    issue, email = _number_then(_open(key, _UNSUBSCRIBE, token))
    return TokenClaims(email, issue)


def _verify_old(key: bytes, token: str) -> TokenClaims:
    """The format digests carried before v2: base64url(email).issue.base64url(mac)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise BadToken("malformed token")
    who, issue_text, mac = parts
    try:
        email = _unb64(who).decode("utf-8")
    except UnicodeDecodeError:
        raise BadToken("malformed token") from None
    issue = _number(issue_text)
    given = _unb64(mac)
    if not email or not hmac.compare_digest(given, _mac(key, email, issue)):
        raise BadToken("token signature does not match")
    return TokenClaims(email, issue)


# -- approve links (review.py) ----------------------------------------------------------

#: Associated data of an approve token: never opens under the unsubscribe purpose, nor
#: an unsubscribe token under this one (and the key is derived apart as well).
_APPROVE_AD = b"gongbao-approve-v1"


@dataclass(frozen=True)
class ApprovalClaims:
    """What an approve link says: which issue, which editor it was mailed to, until when."""

    issue: int
    editor: str
    expires: int  # Unix seconds (UTC)


_APPROVE: _Purpose = (b"gongbao approve token v1", _APPROVE_AD)


def sign_approval(key: bytes, issue: int, editor: str, expires: int) -> str:
    """A URL-safe token that lets the holder approve `issue` until `expires` (Unix
    seconds). Sealed, so the link shows neither the editor's address nor the expiry."""
    if issue < 1:
        raise ValueError(f"issue number must be at least 1, not {issue}")
    if expires < 1:
        raise ValueError(f"expiry must be a positive Unix time, not {expires}")
    return _seal(key, _APPROVE, f"{issue:d}\n{expires:d}\n{editor}")


def verify_approval(key: bytes, token: str, now: int) -> ApprovalClaims:
    """The claims of an approve token we made and that has not expired at `now`
    (Unix seconds); BadToken otherwise (forged, altered, another purpose, expired)."""
    issue, rest = _number_then(_open(key, _APPROVE, token))
    expires, editor = _number_then(rest)
    claims = ApprovalClaims(issue, editor, expires)
    if now >= claims.expires:
        raise BadToken("token expired")
    return claims


# -- VERP: the envelope sender that names the member and the issue ---------------------

#: The local part's fixed word; `+` is the sub-address separator Postfix, Exim, Dovecot
#: and most hosted mailboxes use by default, so bounce+anything@ reaches bounce@.
VERP_PREFIX = "bounce+"
#: Bytes of a VERP token: 4 of issue number (big-endian) and 11 of HMAC-SHA256 tag.
_VERP_TAG = 11
#: base32 of 15 bytes: exactly 24 characters, no padding.
VERP_TOKEN_LENGTH = 24
_VERP_TOKEN = re.compile(r"[a-z2-7]{24}")
#: A VERP address anywhere in a text: a bounce that quotes the original, a header.
VERP_ADDRESS = re.compile(r"bounce\+([A-Za-z2-7]{24})@([A-Za-z0-9.-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class VerpClaims:
    """What a VERP token says: the issue, and a tag that only one member's address gives."""

    issue: int
    tag: bytes


@functools.lru_cache(maxsize=4)
def _verp_mac(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 under a key derived from the secret for this one purpose, keyed once:
    each tag copies it (a send makes one a copy; `hmac.new` each time cost 3× more)."""
    derived = hmac.new(key, b"gongbao verp token v1", hashlib.sha256).digest()
    return hmac.new(derived, digestmod=hashlib.sha256)


def verp_tag(key: bytes, email: str, issue: int) -> bytes:
    """The 11-byte tag of (member, issue): HMAC-SHA256 over the mailbox (the address
    in lower case, as `models.mailbox_key`) and the issue number, truncated."""
    mac = _verp_mac(key).copy()
    mac.update(f"{issue:d}\n{email.strip().lower()}".encode())
    return mac.digest()[:_VERP_TAG]


def verp_token(key: bytes, email: str, issue: int) -> str:
    """24 characters of lower-case base32 (RFC 4648 alphabet, no padding).

    Why not the AES-SIV token: a local part is at most 64 octets (RFC 5321
    §4.5.3.1.1), and a sealed address is longer than that. The issue rides
    in the clear (it is no secret) and the member is an 88-bit keyed hash of
    their mailbox, found again by computing it for each member
    (Newsroom.process_bounces caches that per issue). Lower case because some
    relays lower-case local parts; base32 because it is case-insensitive.
    """
    if not 1 <= issue < 2**32:
        raise ValueError(f"issue number out of range: {issue}")
    raw = issue.to_bytes(4, "big") + verp_tag(key, email, issue)
    return base64.b32encode(raw).decode("ascii").lower()


def verp_address(key: bytes, email: str, issue: int, domain: str) -> str:
    """bounce+<token>@domain: the envelope sender (Return-Path) of one member's copy."""
    return f"{VERP_PREFIX}{verp_token(key, email, issue)}@{domain}"


def read_verp_token(token: str) -> VerpClaims:
    """The issue and tag of a token as `verp_token` writes it (any letter case);
    BadToken for anything else. The tag is checked by finding its member."""
    token = token.lower()
    if not _VERP_TOKEN.fullmatch(token):
        raise BadToken("malformed VERP token")
    raw = base64.b32decode(token.upper())
    issue = int.from_bytes(raw[:4], "big")
    if issue < 1:
        raise BadToken("malformed VERP token")
    return VerpClaims(issue, raw[4:])


# -- signup confirmations and the signup form ------------------------------------

#: Associated data of a confirmation token: an unsubscribe token (other AD, other
#: derived key) never opens as one, nor the other way round.
_CONFIRM_AD = b"gongbao-confirm-v1"
#: A form token: issued seconds, a random nonce, an HMAC over both for this purpose.
_FORM = re.compile(r"([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class ConfirmClaims:
    """Who asked to join (the normalised address) and when the link was made (Unix seconds)."""

    email: str
    issued: int


_CONFIRM: _Purpose = (b"gongbao signup confirmation v1", _CONFIRM_AD)


def sign_confirmation(key: bytes, email: str, issued: int) -> str:
    """A URL-safe token for /confirm/<token>: the address and the time, sealed (AES-SIV).

    The address cannot be read from the link, and a token with any bit
    changed fails to open. `issued` is whole seconds since the epoch, so the
    link expires (`verify_confirmation`'s `max_age`).
    """
    if issued < 1:
        raise ValueError(f"issued must be a positive Unix time, not {issued}")
    return _seal(key, _CONFIRM, f"{issued:d}\n{email}")


def verify_confirmation(key: bytes, token: str, now: int, max_age: int) -> ConfirmClaims:
    """The address a confirmation token names, if it is ours and `now` is within `max_age`
    seconds of its making; BadToken (forged, malformed, expired or from the future)."""
    issued, email = _number_then(_open(key, _CONFIRM, token))
    if not issued - _CLOCK_SKEW <= now <= issued + max_age:
        raise BadToken("token expired")
    return ConfirmClaims(email, issued)


#: Seconds a token's time may lie ahead of this machine's clock (another server's clock).
_CLOCK_SKEW = 300


def _form_mac(key: bytes, issued: int, nonce: str) -> str:
    derived = hmac.new(key, b"gongbao signup form v1", hashlib.sha256).digest()
    return _b64(hmac.new(derived, f"signup-form\n{issued}\n{nonce}".encode(),
                         hashlib.sha256).digest())


def sign_form(key: bytes, issued: int) -> str:
    """A CSRF token for the signup form: `issued.nonce.mac` (nonce: 16 random bytes).

    Sent both as a cookie and in the form (double submit), and signed, so
    neither a cross-site form (which cannot set our cookie) nor a made-up
    value (which has no valid MAC) gets through.
    """
    nonce = _b64(os.urandom(16))
    return f"{issued:d}.{nonce}.{_form_mac(key, issued, nonce)}"


def verify_form(key: bytes, token: str, now: int, max_age: int) -> None:
    """None if `token` is a form token we made within `max_age` seconds; BadToken otherwise."""
    m = _FORM.fullmatch(token)
    if m is None:
        raise BadToken("malformed form token")
    issued = int(m.group(1))
    if not hmac.compare_digest(m.group(3), _form_mac(key, issued, m.group(2))):
        raise BadToken("form token signature does not match")
    if not issued - _CLOCK_SKEW <= now <= issued + max_age:
        raise BadToken("form token expired")
