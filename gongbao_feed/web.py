"""The web service: the public folder for feed readers and browsers, and one-click unsubscribe.

Starlette (routing, requests, the body limit) under uvicorn. The routes:

- `/unsubscribe/<token>`: RFC 8058. A POST whose form says
  `List-Unsubscribe=One-Click` unsubscribes at once; a GET only shows a page
  with a button that makes that POST, because link scanners follow links.
  A bad token is a 400 that changes nothing, and no answer says whether the
  address is (still) a member.
- `/approve/<N>/<token>`: a proof's approve link (review.py, `Approve`):
  GET shows the issue and a button, the button's POST approves; a token
  that is forged, expired, another issue's or not an approve token is a
  400 that changes nothing, a cross-site POST a 403.
- `/subscribe` and `/confirm/<token>`: readers who sign themselves up,
  double opt-in (`Signup`, with signup.py); a GET never changes anything,
  and the answer to a signup never says whether the address is a member.
- everything else: a file of the public folder, with ETag, Last-Modified,
  304 on conditional requests and gzip. Each file is read, hashed and
  compressed once per version (inode, size, mtime) and kept in a bounded
  in-memory cache, so a feed reader's poll costs one `stat` and a dict
  lookup. Nothing outside the folder is reachable: dot segments, dot files,
  backslashes and NULs are refused before the file system is asked, and the
  resolved path (symlinks followed) must lie inside the folder. A page that
  render wrote as a retraction notice (a withdrawn article's address) is
  answered `410 Gone` with the notice.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import gzip
import hashlib
import hmac
import logging
import mimetypes
import os
import socket
import stat
import sys
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from . import ledger, tokens, urls
from .archive import ARCHIVE_CSP, RETRACTED_MARKER, environment
from .config import Config
from .deliver import make_transport
from .errors import GongbaoError, MemberError, RenderError
from .fragments import display_date
from .i18n import _
from .members import clean_name, normalise_email
from .models import DeliveryState
from .publish import Clock, system_clock
from .signing import signer_for
from .signup import ConfirmationMailer, RateLimiter, client_address
from .skeleton import builtin_templates
from .store import Store
from .transport import Outcome, Transport

#: Largest request body accepted anywhere; a one-click POST is about 30 bytes.
MAX_BODY = 4096
#: Threads that send signup confirmations: more signups than this wait their turn.
CONFIRMATION_SENDERS = 2
#: How long a stopping `serve` lets queued confirmations go out (uvicorn gives the
#: requests in flight as long).
CLOSE_GRACE_SECONDS = 10.0
#: Files up to this size are kept in memory (with their gzip); larger ones stream from disk.
MAX_CACHED_FILE = 2 * 1024 * 1024
#: Bytes of file bodies (plain + gzip) the cache may hold before it forgets the oldest.
CACHE_BUDGET = 64 * 1024 * 1024
#: Feed readers poll; five minutes of freshness, then a cheap conditional request.
CACHE_CONTROL = "public, max-age=300"

#: Content-Security-Policy of the archive's pages as `serve` sends it: the one
#: the pages carry in their <meta>, plus frame-ancestors, which only a header can set.
PAGE_CSP = ARCHIVE_CSP + "; frame-ancestors 'none'"
#: For any other HTML answer (an error page): nothing may load at all.
FALLBACK_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#: The feeds' own types, from urls.py (the same table the archive advertises).
_BY_NAME = {urls.FEED_FILES[kind]: media for kind, media in urls.FEED_TYPES.items()}
_BY_SUFFIX = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".xml": "application/xml",
}
_RETRACTED = RETRACTED_MARKER.encode()
_COMPRESSIBLE = ("text/", "application/xml", "application/json", "application/feed+json",
                 "application/rss+xml", "application/atom+xml", "image/svg+xml",
                 "application/javascript")


def content_type(name: str, head: bytes = b"") -> str:
    """The media type for a public file; `.xml` feeds are told apart by their root element."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".xml":
        if b"<rss" in head:
            return "application/rss+xml"
        if b"<feed" in head:
            return "application/atom+xml"
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def safe_parts(url_path: str) -> tuple[str, ...] | None:
    """The path's segments if it can only name something inside the folder, else None.

    `url_path` is already percent-decoded (uvicorn decodes once), so
    `%2e%2e%2f` arrives here as `../`. Refused: `.`/`..` and dot files
    (which also hides atomic_write's temporary files), empty segments
    (`//etc/passwd`), backslashes, NULs and drive letters.
    """
    if not url_path.startswith("/") or "\\" in url_path or "\x00" in url_path:
        return None
    parts = url_path[1:].split("/")
    if parts and parts[-1] == "":
        parts.pop()  # a trailing slash names a folder
    for part in parts:
        if not part or part.startswith(".") or ":" in part:
            return None
    return tuple(parts)


@functools.lru_cache(maxsize=64)  # clients send the same few strings on every request
def accepts_gzip(accept_encoding: str) -> bool:
    """True when the client lists gzip (or *) without q=0."""
    for item in accept_encoding.split(","):
        name, _sep, params = item.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.replace(" ", "").lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def etag_matches(if_none_match: str, *tags: str) -> str | None:
    """The first of `tags` that If-None-Match names (weak comparison), or None."""
    wanted = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    if "*" in wanted:
        return tags[0]
    for tag in tags:
        if tag in wanted:
            return tag
    return None


def not_modified_since(if_modified_since: str, mtime: int) -> bool:
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        return False
    return mtime <= int(since.timestamp())


Stamp = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns
#: status, headers, body: what the hot path sends without building a Response.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class CachedFile:
    """One version of one public file, ready to send."""

    stamp: Stamp
    probe: str  # the path as the URL names it: what the hot path stats
    real: str  # where it resolved to, inside the folder
    body: bytes | None  # None: too large to keep, streamed from `real`
    gzipped: bytes | None  # None: not worth compressing
    etag: str
    gzip_etag: str
    last_modified: str
    mtime: int
    media_type: str
    #: 410 for a retraction notice (archive.RETRACTED_MARKER in its head), else 200.
    status: int = 200

    @functools.cached_property
    def fixed_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The headers every answer for this version carries, ETag aside."""
        out = [
            (b"last-modified", self.last_modified.encode()),
            (b"cache-control", CACHE_CONTROL.encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        if self.gzipped is not None:
            out.append((b"vary", b"Accept-Encoding"))
        if self.media_type.startswith("text/html"):
            out.append((b"content-security-policy", PAGE_CSP.encode()))
        return tuple(out)

    @property
    def weight(self) -> int:
        return len(self.body or b"") + len(self.gzipped or b"")


def load_file(probe: str, real: str) -> CachedFile:
    """Read, hash and compress one file: the cold path, once per version.

    The stamp comes from the open file, so it always describes the bytes read,
    even when the file is replaced meanwhile.
    """
    name = os.path.basename(real)
    with open(real, "rb") as fh:
        st = os.fstat(fh.fileno())
        large = st.st_size > MAX_CACHED_FILE
        body = fh.read(512 if large else -1)
    mtime = int(st.st_mtime)
    media_type = content_type(name, body[:512])
    common = {
        "stamp": _stamp(st),
        "probe": probe,
        "real": real,
        "last_modified": formatdate(mtime, usegmt=True),
        "mtime": mtime,
        "media_type": media_type,
    }
    if large:
        tag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        return CachedFile(body=None, gzipped=None, etag=tag, gzip_etag=tag, **common)
    digest = hashlib.sha256(body).hexdigest()[:24]
    packed: bytes | None = None
    if media_type.startswith(_COMPRESSIBLE) and len(body) > 256:
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        if len(packed) >= len(body):
            packed = None
    status = 410 if media_type.startswith("text/html") and _RETRACTED in body[:4096] else 200
    return CachedFile(body=body, gzipped=packed, etag=f'"{digest}"', gzip_etag=f'"{digest}-gz"',
                      status=status, **common)


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


class PublicFiles:
    """An ASGI app serving one folder, safely and with validators; see the module docstring."""

    def __init__(self, root: Path, budget: int = CACHE_BUDGET) -> None:
        self.root = root
        self.budget = budget
        self._cache: OrderedDict[str, CachedFile] = OrderedDict()
        self._held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self.respond(scope)
        if isinstance(answer, Response):
            await answer(scope, receive, send)
            return
        status, headers, body = answer  # the hot path: no Response object, headers prebuilt
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def respond(self, scope: Scope) -> Answer | Response:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            return PlainTextResponse("405 Method Not Allowed", 405, headers={"Allow": "GET, HEAD"})
        asked = _request_headers(scope["headers"])
        if _too_long(asked.get(b"content-length")):  # never read, but still refused
            return PlainTextResponse("413 Content Too Large", 413)
        path: str = scope["path"]
        entry = self._fresh(path)
        if entry is None:
            parts = safe_parts(path)
            if parts is None:
                return _not_found()
            found = await anyio.to_thread.run_sync(self._find, path, parts)
            if isinstance(found, Response):
                return found
            entry = found
            self._remember(path, entry)  # on the event loop: the cache has one writer
        return self._answer(entry, asked, method == "HEAD")

    def _fresh(self, path: str) -> CachedFile | None:
        """The cached version while the file on disk is still that version: one stat."""
        entry = self._cache.get(path)
        if entry is None:
            return None
        try:
            st = os.stat(entry.probe)
        except OSError:
            return None
        if _stamp(st) != entry.stamp:
            return None
        self._cache.move_to_end(path)
        return entry

    def _find(self, path: str, parts: tuple[str, ...]) -> CachedFile | Response:
        """Resolve, check containment and load (in a worker thread; the loop caches it)."""
        root = os.path.realpath(self.root)
        probe = os.path.join(root, *parts)
        try:
            real = os.path.realpath(probe)
            if not _inside(root, real):
                return _not_found()
            st = os.stat(real)
            if stat.S_ISDIR(st.st_mode):
                if not path.endswith("/"):
                    # Relative, so it stays right behind a proxy that adds a prefix.
                    return RedirectResponse(parts[-1] + "/", 301)
                probe = os.path.join(probe, "index.html")
                real = os.path.realpath(probe)
                if not _inside(root, real):
                    return _not_found()
                st = os.stat(real)
            elif path.endswith("/"):
                return _not_found()
            if not stat.S_ISREG(st.st_mode):
                return _not_found()
            return load_file(probe, real)
        except OSError:
            return _not_found()

    def _remember(self, path: str, entry: CachedFile) -> None:
        old = self._cache.pop(path, None)
        if old is not None:
            self._held -= old.weight
        if entry.weight > self.budget:
            return
        self._cache[path] = entry
        self._held += entry.weight
        while self._held > self.budget:
            _key, dropped = self._cache.popitem(last=False)
            self._held -= dropped.weight

    @staticmethod
    def _answer(entry: CachedFile, asked: dict[bytes, str], head_only: bool) -> Answer | Response:
        accept = asked.get(b"accept-encoding")
        if_none_match = asked.get(b"if-none-match")
        if_modified_since = asked.get(b"if-modified-since")
        use_gzip = entry.gzipped is not None and accept is not None and accepts_gzip(accept)
        tag = entry.gzip_etag if use_gzip else entry.etag
        if entry.status != 200:  # a retraction notice: always the notice, never a 304
            return _gone(entry, use_gzip, head_only)
        if if_none_match is not None:  # when present, If-Modified-Since is ignored (RFC 9110)
            matched = etag_matches(if_none_match, tag, entry.etag, entry.gzip_etag)
            if matched is not None:
                return 304, [(b"etag", matched.encode()), *entry.fixed_headers], b""
        elif if_modified_since is not None and not_modified_since(if_modified_since, entry.mtime):
            return 304, [(b"etag", tag.encode()), *entry.fixed_headers], b""
        if entry.body is None:
            extra = {"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
            if entry.media_type.startswith("text/html"):
                extra["Content-Security-Policy"] = PAGE_CSP
            return FileResponse(
                entry.real, headers={"ETag": tag, **extra}, media_type=entry.media_type
            )
        body = entry.gzipped if use_gzip and entry.gzipped is not None else entry.body
        headers = [
            (b"etag", tag.encode()),
            *entry.fixed_headers,
            (b"content-type", entry.media_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        if use_gzip:
            headers.append((b"content-encoding", b"gzip"))
        return 200, headers, b"" if head_only else body


def _gone(entry: CachedFile, use_gzip: bool, head_only: bool) -> Answer:
    """410 Gone with the retraction notice: the article was withdrawn (editorial.py).

    RFC 9110 §15.5.11: the resource is gone on purpose and for good, as far
    as the site knows, so a search engine or a reader drops it; the notice
    says what it was and why it went. No validators: a conditional request
    gets the notice again, not a 304 that would keep an old copy alive.
    """
    body = entry.gzipped if use_gzip and entry.gzipped is not None else entry.body or b""
    headers = [
        (b"cache-control", CACHE_CONTROL.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", PAGE_CSP.encode()),
        (b"content-type", entry.media_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if entry.gzipped is not None:
        headers.append((b"vary", b"Accept-Encoding"))
    if use_gzip:
        headers.append((b"content-encoding", b"gzip"))
    return entry.status, headers, b"" if head_only else body


_ASKED = frozenset({b"accept-encoding", b"if-none-match", b"if-modified-since", b"content-length"})


def _request_headers(headers: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The few request headers the file server reads (ASGI servers lower-case the names)."""
    return {name: value.decode("latin-1") for name, value in headers if name in _ASKED}


def _too_long(content_length: str | None) -> bool:
    if content_length is None:
        return False
    try:
        return int(content_length) > MAX_BODY
    except ValueError:
        return True


#: The answer for a path the site does not have. Like every plain-text answer here,
#: the reader's Chinese first and a line of English after it for whoever else opens it.
NOT_FOUND = (
    "404：本站没有这个页面。请从首页重新打开。\n\n"
    "404 Not Found: there is no such page here.\n"
)


def _not_found() -> Response:
    return PlainTextResponse(NOT_FOUND, 404)


# -- unsubscribe ----------------------------------------------------------------

BAD_TOKEN = (
    "退订链接无效：链接不完整或已被改动，未做任何更改。\n"
    "请从最近一期邮件底部的退订链接重新打开。\n\n"
    "This unsubscribe link is not valid; nothing was changed.\n"
)
BAD_BODY = (
    "一键退订请求须包含 List-Unsubscribe=One-Click（RFC 8058），未做任何更改。\n"
    "A one-click unsubscribe POST must carry List-Unsubscribe=One-Click; nothing was changed.\n"
)
UNSUBSCRIBE_TEMPLATE = "unsubscribe.html.j2"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}


def mask_address(email: str) -> str:
    """`w***@example.org`: enough for the reader to recognise, little for a shoulder-surfer."""
    local, _at, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


class Unsubscribe:
    """GET shows the button, POST with the RFC 8058 body unsubscribes; both check the token."""

    def __init__(self, config: Config, store: Store, key: bytes, clock: Clock,
                 env: jinja2.Environment) -> None:
        self.config = config
        self.store = store
        self.key = key
        self.clock = clock
        self.page = _template(env, UNSUBSCRIBE_TEMPLATE)

    def claims(self, token: str) -> tokens.TokenClaims | None:
        """The token's member and issue if it is ours and names an issue that exists."""
        try:
            claims = tokens.verify(self.key, token)
        except tokens.BadToken:
            return None
        if self.store.issue(claims.issue) is None:
            return None
        return claims

    async def endpoint(self, request: Request) -> Response:
        claims = await run_in_threadpool(self.claims, request.path_params["token"])
        if claims is None:
            return PlainTextResponse(BAD_TOKEN, 400, headers=_PAGE_HEADERS)
        if request.method in ("GET", "HEAD"):
            return self._render("confirm", claims)
        async with request.form(max_files=0, max_fields=8, max_part_size=MAX_BODY) as form:
            one_click = form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            return PlainTextResponse(BAD_BODY, 400, headers=_PAGE_HEADERS)
        # The answer is the same whether or not this changed anything.
        await run_in_threadpool(self.store.unsubscribe, claims.email, self.clock(), "one-click")
        return self._render("done", claims)

    def _render(self, state: str, claims: tokens.TokenClaims) -> Response:
        html = self.page.render(
            state=state,
            paper=self.config.paper.name,
            language=self.config.paper.language,
            address=mask_address(claims.email),
            issue=claims.issue,
            contact=parseaddr(self.config.email.reply_to)[1],
            home=self.config.paper.base_url,
        )
        return HTMLResponse(html, headers=_PAGE_HEADERS)


# -- approve (review.py) -------------------------------------------------------------

BAD_APPROVE = (
    "审核链接无效：链接不完整、已被改动、已过期或不属于这一期，未做任何更改。\n"
    "请使用最近一封审核邮件（[审核]）中的链接，或在服务器上运行 gongbao-feed approve N。\n\n"
    "This approve link is not valid (altered, expired, or for another issue); "
    "nothing was changed.\n"
)
CROSS_SITE = (
    "批准请求须从审核页面本身提交，未做任何更改。\n"
    "An approval must be posted from the approve page itself; nothing was changed.\n"
)
BAD_APPROVE_BODY = (
    "批准请求须包含 approve=yes，未做任何更改。\n"
    "An approval POST must carry approve=yes; nothing was changed.\n"
)
APPROVE_TEMPLATE = "approve.html.j2"


def _origin(url: str) -> str:
    parts = url.split("/", 3)
    return "/".join(parts[:3]).lower()


class Approve:
    """The proof's approve link: GET shows the issue and a button, POST approves.

    The token (tokens.verify_approval) is sealed under a key derived for
    approving alone, carries the issue, the editor and an expiry, and must
    name the issue in the path: forged, altered, expired, another issue's or
    an unsubscribe token get a 400 that changes nothing. Only a POST changes
    anything (a link scanner's GET does not), and a POST from another site
    (an Origin that is neither paper.base_url's nor this server's, or
    Sec-Fetch-Site: cross-site) is refused: the token is the capability,
    and these checks keep another page from spending it.
    """

    def __init__(self, config: Config, store: Store, key: bytes, clock: Clock,
                 env: jinja2.Environment) -> None:
        self.config = config
        self.store = store
        self.key = key
        self.clock = clock
        self.page = _template(env, APPROVE_TEMPLATE)

    def claims(self, number: int, token: str) -> tokens.ApprovalClaims | None:
        try:
            claims = tokens.verify_approval(self.key, token, int(self.clock().timestamp()))
        except tokens.BadToken:
            return None
        if claims.issue != number or self.store.issue(number) is None:
            return None
        return claims

    def _same_site(self, request: Request) -> bool:
        if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        return origin.lower() in (_origin(self.config.paper.base_url), own)

    async def endpoint(self, request: Request) -> Response:
        number = int(request.path_params["number"])
        claims = await run_in_threadpool(self.claims, number, request.path_params["token"])
        if claims is None:
            return PlainTextResponse(BAD_APPROVE, 400, headers=_PAGE_HEADERS)
        if request.method in ("GET", "HEAD"):
            return await run_in_threadpool(self._render, number, claims, None)
        if not self._same_site(request):
            return PlainTextResponse(CROSS_SITE, 403, headers=_PAGE_HEADERS)
        async with request.form(max_files=0, max_fields=8, max_part_size=MAX_BODY) as form:
            asked = form.get("approve") == "yes"
        if not asked:
            return PlainTextResponse(BAD_APPROVE_BODY, 400, headers=_PAGE_HEADERS)
        _approval, changed = await run_in_threadpool(
            self.store.approve, number, self.clock(), claims.editor, "link")
        return await run_in_threadpool(self._render, number, claims, changed)

    def _render(self, number: int, claims: tokens.ApprovalClaims,
                changed: bool | None) -> Response:
        issue = self.store.issue(number)
        assert issue is not None
        approval = self.store.approval(number)
        withdrawn = {w.article_id for w in self.store.withdrawals()}
        articles = [
            {"title": a.title, "url": urls.article_url(self.config, a.id),
             "withdrawn": a.id in withdrawn}
            for a in self.store.articles(issue.article_ids)
        ]
        if changed:
            state = "done"
        elif approval is not None and approval.approved:
            state = "already"
        else:
            state = "confirm"
        approved_at = (approval.approved_at.astimezone(self.config.tz).strftime("%Y-%m-%d %H:%M")
                       if approval is not None and approval.approved_at else "")
        by = approval.approved_by if approval is not None else ""
        html = self.page.render(
            state=state, paper=self.config.paper.name, language=self.config.paper.language,
            number=number, issue_title=issue.title, date=display_date(issue.date),
            issue_url=urls.issue_url(self.config, number), articles=articles,
            editor=mask_address(claims.editor),
            approved_by=mask_address(by) if by and "@" in by else by,
            approved_at=approved_at, every=self.config.schedule.ingest_every_minutes,
            sent=ledger.sent_to_all(self.store, issue),
        )
        return HTMLResponse(html, headers=_PAGE_HEADERS)


# -- signup, double opt-in (signup.py) ----------------------------------------------

SIGNUP_TEMPLATE = "subscribe.html.j2"
CONFIRM_TEMPLATE = "subscribe_confirm.html.j2"
#: The cookie half of the form's double-submit CSRF token; only /subscribe sees it.
CSRF_COOKIE = "gongbao_signup"
#: What the form says when its CSRF token is missing, forged or too old.
FORM_REFUSED = "表单已过期或无效，未做任何更改。请重新提交。"
#: What it says when the address is not one.
BAD_ADDRESS = "邮箱地址的格式不对，请检查后重新填写（例如 name@example.com）。"
BAD_NAME = "称呼须是一行文字，不超过 100 个字。"

log = logging.getLogger("gongbao_feed.web")


class Signup:
    """GET /subscribe shows the form; POST records the signup and sends a confirmation.

    The POST's answer is the same page, byte for byte, for every good
    address (new, pending, active, unsubscribed): nothing says whether it is
    on the list. The confirmation is sent after the answer has gone
    (a background task), so the time to answer does not tell either, and a
    transport failure is logged, never shown. Before anything is read the
    client's address is counted (`RateLimiter`, in this process's memory),
    then the form's CSRF token is checked: the form field and the cookie
    must be the same token, signed by us, issued within `form_minutes`.

    GET /confirm/<token> shows a button and changes nothing; its POST makes
    the member active (`Store.confirm_signup`). A forged, garbled or expired
    token is a 400 that changes nothing.
    """

    def __init__(self, config: Config, store: Store, key: bytes, clock: Clock,
                 env: jinja2.Environment, transport: Transport | None = None) -> None:
        self.config = config
        self.store = store
        self.key = key
        self.clock = clock
        self.transport = transport
        self.mailer = ConfirmationMailer(config, key, signer_for(config))
        cfg = config.signup
        self.limiter = RateLimiter(cfg.rate_limit, cfg.rate_window_minutes * 60)
        self.form_page = _template(env, SIGNUP_TEMPLATE)
        self.confirm_page = _template(env, CONFIRM_TEMPLATE)
        self._busy = 0
        self._idle = threading.Condition()
        #: Confirmations are sent here, never on the answer's path (see _send_soon).
        self._senders = ThreadPoolExecutor(CONFIRMATION_SENDERS,
                                           thread_name_prefix="signup-confirmation")
        self._stop = threading.Event()

    # -- /subscribe -----------------------------------------------------------------
    async def subscribe(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            return self._form(request)
        now = self.clock()
        client = client_address(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"), self.config.signup.trusted_proxies,
        )
        if not self.limiter.allow(client, now.timestamp()):
            minutes = self.config.signup.rate_window_minutes
            return HTMLResponse(
                self._render_form("limited", retry_minutes=minutes), 429,
                headers={**_PAGE_HEADERS, "Retry-After": str(minutes * 60)},
            )
        async with request.form(max_files=0, max_fields=8, max_part_size=MAX_BODY) as form:
            fields = {k: str(form.get(k) or "") for k in ("csrf", "email", "name")}
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not self._good_form(fields["csrf"], cookie, now):
            return self._form(request, 403, error=FORM_REFUSED, email=fields["email"],
                              name=fields["name"])
        try:
            email = normalise_email(fields["email"])
        except MemberError:
            return self._form(request, 400, error=BAD_ADDRESS, email=fields["email"],
                              name=fields["name"])
        try:
            name = clean_name(fields["name"])
        except MemberError:
            return self._form(request, 400, error=BAD_NAME, email=fields["email"])
        resend = timedelta(minutes=self.config.signup.resend_minutes)
        if await run_in_threadpool(self.store.request_signup, email, name, now, resend):
            self._send_soon(email, name, now)
        return HTMLResponse(self._render_form("sent"), headers=_PAGE_HEADERS)

    def _good_form(self, field: str, cookie: str, now: datetime) -> bool:
        if not field or not hmac.compare_digest(field.encode(), cookie.encode()):
            return False
        try:
            tokens.verify_form(self.key, field, int(now.timestamp()),
                               self.config.signup.form_minutes * 60)
        except tokens.BadToken:
            return False
        return True

    def _form(self, request: Request, status: int = 200, **context: Any) -> Response:
        """The form with a fresh CSRF token, in the page and in the cookie."""
        token = tokens.sign_form(self.key, int(self.clock().timestamp()))
        response = HTMLResponse(self._render_form("form", csrf=token, **context), status,
                                headers=_PAGE_HEADERS)
        secure = self.config.paper.base_url.startswith("https:") and (
            request.url.scheme == "https" or bool(self.config.signup.trusted_proxies))
        response.set_cookie(
            CSRF_COOKIE, token, max_age=self.config.signup.form_minutes * 60,
            path="/" + urls.SIGNUP_PATH, secure=secure, httponly=True, samesite="strict",
        )
        return response

    def _render_form(self, state: str, **context: Any) -> str:
        values = {"csrf": "", "email": "", "name": "", "error": "", "retry_minutes": 0, **context}
        return self.form_page.render(
            state=state, paper=self.config.paper.name, language=self.config.paper.language,
            home=self.config.paper.base_url, hours=self.config.signup.confirm_hours, **values,
        )

    def _send_soon(self, email: str, name: str, now: datetime) -> None:
        """Queue the confirmation on the handler's own threads, counted busy from now.

        Not a response's background task: that runs only once the answer has
        reached the reader, so a reader who closes the page first would get no
        confirmation, and could not ask again for `signup.resend_minutes`. A
        few threads, not one a signup: a flood of new addresses queues, and
        never opens a relay connection each.
        """
        with self._idle:
            self._busy += 1

        def run() -> None:
            try:
                self._deliver(email, name, now)
            finally:
                self._done()

        try:
            self._senders.submit(run)
        except RuntimeError as exc:  # stopping, or no thread to be had
            self._done()
            log.error(_("signup: the confirmation to {address} was not sent: {reason}").format(
                address=mask_address(email), reason=exc))

    def _done(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def close(self, grace: float = CLOSE_GRACE_SECONDS) -> None:
        """Let the confirmations queued finish for up to `grace` seconds, then stop:
        those still unsent are logged as not sent (each transport leaves them unsent
        when told to stop), so a stopping `serve` never waits on a relay's retries."""
        self.wait_sent(grace)
        self._stop.set()
        self._senders.shutdown(wait=True)

    def _deliver(self, email: str, name: str, now: datetime) -> None:
        """Make and send one confirmation; every failure is logged, none raised."""
        shown = mask_address(email)
        try:
            message = self.mailer.message(email, name, now)
            transport = self.transport or make_transport(self.config)
            outcomes: list[Outcome] = []
            transport.deliver([message], outcomes.append, self._stop)
        except Exception as exc:  # the reader's answer has gone; the operator must hear of it
            why = exc.message if isinstance(exc, GongbaoError) else f"{type(exc).__name__}: {exc}"
            log.error(_("signup: the confirmation to {address} was not sent: {reason}").format(
                address=shown, reason=why))
            return
        if not outcomes:  # stopped before it was tried
            log.error(_("signup: the confirmation to {address} was not sent: {reason}")
                      .format(address=shown, reason=_("the service was stopping")))
        for outcome in outcomes:
            if outcome.state is DeliveryState.SENT:
                log.info(_("signup: confirmation sent to {address}").format(address=shown))
            else:
                log.error(_("signup: the confirmation to {address} was not sent: {reason}")
                          .format(address=shown, reason=outcome.detail or outcome.state))

    def wait_sent(self, timeout: float) -> bool:
        """True once no confirmation is being sent (tests wait on it; the answer never does)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    # -- /confirm/<token> ----------------------------------------------------------
    def _claims(self, token: str) -> tokens.ConfirmClaims | None:
        try:
            return tokens.verify_confirmation(
                self.key, token, int(self.clock().timestamp()),
                self.config.signup.confirm_hours * 3600)
        except tokens.BadToken:
            return None

    async def confirm(self, request: Request) -> Response:
        claims = self._claims(request.path_params["token"])
        if claims is None:
            return self._confirm_page("bad", None, 400)
        if request.method in ("GET", "HEAD"):
            return self._confirm_page("ask", claims)
        async with request.form(max_files=0, max_fields=8, max_part_size=MAX_BODY) as form:
            asked = form.get("confirm") == "yes"
        if not asked:
            return self._confirm_page("ask", claims, 400)
        issued = datetime.fromtimestamp(claims.issued, UTC)
        done = await run_in_threadpool(self.store.confirm_signup, claims.email, issued,
                                       self.clock())
        if not done:
            return self._confirm_page("bad", None, 400)
        log.info(_("signup: {address} confirmed; now an active member").format(
            address=mask_address(claims.email)))
        return self._confirm_page("done", claims)

    def _confirm_page(self, state: str, claims: tokens.ConfirmClaims | None,
                      status: int = 200) -> Response:
        html = self.confirm_page.render(
            state=state, paper=self.config.paper.name, language=self.config.paper.language,
            home=self.config.paper.base_url, hours=self.config.signup.confirm_hours,
            address=mask_address(claims.email) if claims else "",
            signup=urls.signup_url(self.config),
        )
        return HTMLResponse(html, status, headers=_PAGE_HEADERS)


def _template(env: jinja2.Environment, name: str) -> jinja2.Template:
    """A web template, or RenderError naming its file and line."""
    try:
        return env.get_template(name)
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or name
        line = getattr(exc, "lineno", None)
        raise RenderError(
            (_("{template}, line {line}: {reason}") if line else "{template}: {reason}")
            .format(template=where, line=line, reason=exc.message or exc),
            hint=_("fix the template, or delete it to use the built-in one"),
        ) from None


# -- the app ----------------------------------------------------------------------

class SafetyHeaders:
    """ASGI middleware: `nosniff` on every answer, a CSP on every HTML answer.

    The routes set their own headers on the hot path; this catches every
    other answer (404, 405, 413, Starlette's own 400 and 500 pages) so no
    response leaves without them. It looks only at the response start.
    Answers uvicorn makes itself (a 503 over `web.max_connections`, a 400
    for a request it cannot parse) never reach the app and are plain text.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                kind = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if kind.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", FALLBACK_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, guarded)


def create_app(
    config: Config, store: Store | None = None, clock: Clock = system_clock,
    transport: Transport | None = None,
) -> Starlette:
    """The ASGI app for one working folder; opens (and closes) its own store if given none.

    `transport` sends signup confirmations (default: the one [email]
    transport names, made for each confirmation). The Signup handler is
    `app.state.signup`.
    """
    owned = store is None
    db = store if store is not None else Store(config.database_url)
    try:
        key = tokens.load_secret(config.state_dir)
        env = environment([config.templates_dir / "web", builtin_templates() / "web"])
        unsubscribe = Unsubscribe(config, db, key, clock, env)
        approve = Approve(config, db, key, clock, env)
        signup = Signup(config, db, key, clock, env, transport) if config.signup.enabled else None
    except BaseException:
        if owned:
            db.close()
        raise

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            try:
                if signup is not None:
                    await run_in_threadpool(signup.close)
            finally:
                if owned:
                    db.close()

    # The body limit sits on the routes that read a body; the file server
    # refuses a declared body itself and never reads one, which keeps the
    # limit's per-request cost off the feed readers' hot path.
    routes = [
        Route("/unsubscribe/{token}", unsubscribe.endpoint, methods=["GET", "POST"],
              max_body_size=MAX_BODY),
        Route("/approve/{number:int}/{token}", approve.endpoint, methods=["GET", "POST"],
              max_body_size=MAX_BODY),
    ]
    if signup is not None:
        routes += [
            Route("/" + urls.SIGNUP_PATH, signup.subscribe, methods=["GET", "POST"],
                  max_body_size=MAX_BODY),
            Route("/confirm/{token}", signup.confirm, methods=["GET", "POST"],
                  max_body_size=MAX_BODY),
        ]
    app = Starlette(
        routes=[*routes, Route("/{path:path}", PublicFiles(config.public_dir))],
        lifespan=lifespan,
        middleware=[Middleware(SafetyHeaders)],
    )
    app.state.signup = signup
    return app


def guarded_protocol(request_timeout: float, max_connections: int) -> type[Any]:
    """uvicorn's httptools protocol with a deadline on requests and a cap on connections.

    uvicorn times out idle keep-alive connections but never a connection
    that has not finished sending a request: one that sends nothing, or a
    header a byte a minute, holds a file descriptor for ever, and a few
    hundred of them exhaust the process's open-file limit so ordinary GETs
    fail. So:

    - a request must arrive whole within `request_timeout` seconds of the
      connection opening or of the previous response's end, else the
      connection is closed (nothing is sent: the client is not listening);
    - over `max_connections` open connections, the oldest one still waiting
      for its request is closed to make room; a connection whose request is
      being answered is never cut. Only when every connection is busy does
      the newcomer get uvicorn's plain `503 Service Unavailable`.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttp(HttpToolsProtocol):  # type: ignore[misc]
        _deadline: asyncio.TimerHandle | None = None
        _opened = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._opened = self.loop.time()
            self._arm()
            # Connections closed a moment ago are still in the set until the loop
            # runs their connection_lost: they no longer count.
            live = [c for c in self.connections if not c.transport.is_closing()]
            if len(live) > max_connections:
                waiting = [c for c in live if c is not self and c._waiting()]
                if waiting:
                    min(waiting, key=lambda c: c._opened).transport.close()

        def _waiting(self) -> bool:
            """No request of this connection is being answered (idle, or still arriving)."""
            cycle = self.cycle
            return cycle is None or cycle.response_complete or cycle.more_body

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(request_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self._waiting() and not self.transport.is_closing():
                self.transport.close()

        def on_headers_complete(self) -> None:
            # uvicorn's own check counts connections already closed but not yet
            # gone from its set; decide on the live ones (0: answer 503, None: serve).
            live = sum(1 for c in self.connections if not c.transport.is_closing())
            self.limit_concurrency = None if live <= max_connections else 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedHttp


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, made before anything says "serving".

    The server then runs on this very socket, so no other program can take
    the port between the check and the start. Raises GongbaoError naming
    the address, with a hint about `--port`/`web.port` (or `--host`/
    `web.host`), when the port is busy, needs root or the host is not one
    of this machine's addresses.
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    port_hint = _("choose another port with `--port PORT`, or set web.port in config.toml "
                  "(`ss -ltnp` shows which program holds this one)")
    host_hint = _("use an address of this machine with `--host` or web.host in config.toml: "
                  "127.0.0.1 behind a proxy on this machine, 0.0.0.0 for every address")
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise GongbaoError(
            _("cannot serve on {address}: the host name does not resolve ({why})").format(
                address=shown, why=exc), hint=host_hint,
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restart may take the port back at once after a stop.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why, hint = _("the address is already in use (another program, or another "
                          "`gongbao-feed serve`, listens there)"), port_hint
        elif exc.errno == errno.EACCES:
            why, hint = _("permission denied (ports below 1024 need root)"), _(
                "use a port from 1024 up with `--port PORT` or web.port in config.toml, "
                "behind a reverse proxy that listens on 80/443")
        elif exc.errno == errno.EADDRNOTAVAIL:
            why, hint = _("{host} is not an address of this machine").format(host=host), host_hint
        else:
            why, hint = exc.strerror or str(exc), port_hint
        raise GongbaoError(
            _("cannot serve on {address}: {why}").format(address=shown, why=why), hint=hint
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(
    config: Config, host: str, port: int, *, access_log: bool = False,
    sock: socket.socket | None = None,
) -> None:
    """Run the app under uvicorn until interrupted (Ctrl-C or SIGTERM end it cleanly).

    `sock` is the listening socket from `bind` (made here when not given).
    `web.request_timeout`, `web.keep_alive_timeout` and `web.max_connections`
    bound what slow or idle clients can hold (see `guarded_protocol`).
    """
    import uvicorn

    sock = sock if sock is not None else bind(host, port)
    server = uvicorn.Server(uvicorn.Config(
        create_app(config), **server_options(config, host, port, access_log=access_log)
    ))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:  # as uvicorn.run: the app failed to start
        sys.exit(3)


def server_options(
    config: Config, host: str, port: int, *, access_log: bool = False
) -> dict[str, Any]:
    """uvicorn.Config's arguments for `serve` (also what the tests start a server with)."""
    web = config.web
    return {
        "host": host,
        "port": port,
        "log_level": config.log.level.lower(),
        "access_log": access_log,
        "server_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
        "http": guarded_protocol(web.request_timeout, web.max_connections),
        "timeout_keep_alive": web.keep_alive_timeout,
    }
