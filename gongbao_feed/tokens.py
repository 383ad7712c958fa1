"""Signed unsubscribe tokens: HMAC-SHA256 over (member, issue).

The key comes from the environment (GONGBAO_SECRET) or from the working
folder's state/secret.key (mode 0600, made by `init` or on first use), never
from config.toml, which people paste into tickets and commit to git.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from .skeleton import SECRET_FILE, write_secret

SECRET_ENV = "GONGBAO_SECRET"


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
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, email: str, issue: int) -> bytes:
    return hmac.new(key, f"unsubscribe\n{email}\n{issue}".encode(), hashlib.sha256).digest()


def sign(key: bytes, email: str, issue: int) -> str:
    """A URL-safe token naming the member and the issue, signed with `key`."""
    return f"{_b64(email.encode())}.{issue}.{_b64(_mac(key, email, issue))}"


def verify(key: bytes, token: str) -> TokenClaims:
    try:
        who, issue_text, mac = token.split(".")
        email = _unb64(who).decode("utf-8")
        issue = int(issue_text)
        given = _unb64(mac)
    except (ValueError, UnicodeDecodeError):
        raise BadToken("malformed token") from None
    if issue < 1 or not hmac.compare_digest(given, _mac(key, email, issue)):
        raise BadToken("token signature does not match")
    return TokenClaims(email, issue)
