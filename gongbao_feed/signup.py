"""Readers who sign themselves up: the confirmation message and the form's guards.

Double opt-in. The web form (web.py, `/subscribe`) records a signup
(`Store.request_signup`: a new address is a `pending` member, who is never
mailed a digest) and sends one confirmation message, made here, with a link
`/confirm/<token>`; the token (tokens.sign_confirmation) seals the address
and the time, so it expires and names the one address it was sent to. The
member is active only after that link's page is confirmed with a POST.

Pure apart from the clock it is given:

    ConfirmationMailer   templates/email/confirm.{html,txt}.j2 → one Message
                         (multipart/alternative, CSS inlined as in the digest,
                         headers written by headers.py from the literal text)
    RateLimiter          signups per client address per window, in memory
    client_address()     the client behind trusted reverse proxies

A confirmation is not an issue's copy: `Message.confirmation` is set, it
has no issue and never touches the delivery ledger; the outbox writes it to
outbox/confirm/.
"""

from __future__ import annotations

import binascii
import ipaddress
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime

import jinja2

from . import headers, tokens, urls
from .config import Config
from .digest import AUTO_HEADERS, email_environment, inline_css
from .errors import DeliveryError, RenderError
from .i18n import _
from .mail import Message
from .signing import Signer
from .skeleton import builtin_templates

HTML_TEMPLATE = "confirm.html.j2"
TEXT_TEMPLATE = "confirm.txt.j2"
#: The subject of every confirmation; {paper} is the paper's name.
SUBJECT = "请确认订阅《{paper}》电子报"
#: The greeting when no name was given.
DEFAULT_NAME = "读者朋友"


class ConfirmationMailer:
    """Makes confirmation messages for one working folder (templates loaded once).

    Raises RenderError at construction when a template is missing or broken,
    so `serve` stops at start rather than at a reader's signup.
    """

    def __init__(self, config: Config, key: bytes, signer: Signer | None = None) -> None:
        self.config = config
        self.key = key
        self.signer = signer  # [dkim]: a confirmation is signed like every digest
        env = email_environment([config.templates_dir / "email", builtin_templates() / "email"])
        try:
            self.html = env.get_template(HTML_TEMPLATE)
            self.text = env.get_template(TEXT_TEMPLATE)
        except jinja2.TemplateError as exc:
            where = getattr(exc, "filename", None) or getattr(exc, "name", None) or HTML_TEMPLATE
            line = getattr(exc, "lineno", None)
            raise RenderError(
                (_("{template}, line {line}: {reason}") if line else "{template}: {reason}")
                .format(template=where, line=line, reason=getattr(exc, "message", None) or exc),
                hint=_("fix the template, or delete it to use the built-in one"),
            ) from None
        try:
            self.sender = headers.split_mailbox(config.email.from_address)
            self.reply_to = (headers.split_mailbox(config.email.reply_to)
                             if config.email.reply_to else None)
        except headers.HeaderError as exc:  # the config check comes first; this is the second
            raise DeliveryError(f"email.from / email.reply_to: {exc}") from None

    def message(self, email: str, name: str, now: datetime) -> Message:
        """The confirmation for `email` (normalised), its link made at `now`.

        Raises DeliveryError when the name or address cannot go into a header
        as it is, RenderError when a template fails.
        """
        config = self.config
        token = tokens.sign_confirmation(self.key, email, int(now.timestamp()))
        context = {
            "paper": config.paper.name,
            "language": config.paper.language,
            "name": name or DEFAULT_NAME,
            "email": email,
            "confirm_url": urls.confirm_url(config, token),
            "hours": config.signup.confirm_hours,
            "home": config.paper.base_url,
            "subject": SUBJECT.format(paper=config.paper.name),
        }
        try:
            html_doc = inline_css(self.html.render(context))
            text_doc = self.text.render(context)
        except jinja2.TemplateError as exc:
            raise RenderError(
                f"templates/email/confirm: {exc}",
                hint=_("fix the template, or delete it to use the built-in one"),
            ) from None
        domain = self.sender[1].rpartition("@")[2]
        mid = f"<confirm.{uuid.uuid4().hex}@{domain}>"
        try:
            head = [headers.address_header("From", *self.sender)]
            if self.reply_to:
                head.append(headers.address_header("Reply-To", *self.reply_to))
            head += [
                headers.address_header("To", name, email),
                headers.text_header("Subject", context["subject"]),
            ]
        except headers.HeaderError as exc:
            raise DeliveryError(
                _("the confirmation to {address} cannot be written: {problem}").format(
                    address=email, problem=exc)
            ) from None
        fixed = [
            ("Date", format_datetime(now.astimezone(config.tz))),
            ("Message-ID", mid),
            *AUTO_HEADERS,
        ]
        head += [f"{k}: {v}\r\n".encode("ascii") for k, v in fixed]
        data = b"".join(head) + _body(text_doc, html_doc, mid)
        if self.signer is not None:
            data = self.signer.sign(data, int(now.timestamp()))
        return Message(
            issue=0,
            email=email,
            sender=self.sender[1],
            recipients=(email,),
            message_id=mid,
            data=data,
            confirmation=True,
        )


def _body(text: str, html: str, seed: str) -> bytes:
    """multipart/alternative, text then HTML, UTF-8 in base64; MIME headers first."""
    layout = EmailMessage(policy=SMTP)
    layout["MIME-Version"] = "1.0"
    layout["Content-Type"] = "multipart/alternative"
    layout.set_boundary("=_gongbao_confirm_" + binascii.hexlify(seed.encode()[-12:]).decode())
    parts = []
    for subtype, doc in (("plain", text), ("html", html)):
        part = MIMEPart(policy=SMTP)
        part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
        part["Content-Transfer-Encoding"] = "base64"
        encoded = binascii.b2a_base64(doc.replace("\r\n", "\n").replace("\n", "\r\n").encode(),
                                      newline=False).decode()
        part.set_payload("\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)))
        parts.append(part)
    layout.set_payload(parts)
    return layout.as_bytes()


class RateLimiter:
    """At most `limit` events per key within `window` seconds: a sliding log, in memory.

    Per process: with several `serve` processes behind one proxy each counts
    its own. Keys are forgotten once their window has passed; at most
    `max_keys` are held (the least recently seen go first), so a flood of
    addresses cannot grow it without bound.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        """Count one event for `key` at `now` (seconds) if under the limit; False if over."""
        log = self._seen.get(key)
        if log is None:
            log = self._seen[key] = deque()
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(key)
        while log and log[0] <= now - self.window:
            log.popleft()
        if len(log) >= self.limit:
            return False
        log.append(now)
        return True


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[str]) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the
    right-most address in X-Forwarded-For that is not itself a trusted proxy.

    Only a proxy listed in [signup] trusted_proxies is believed: anyone can
    send an X-Forwarded-For header, so from any other peer it is ignored.
    """
    peer = peer or "unknown"
    if not trusted or not forwarded_for or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # not an address: a garbled header names nobody
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, networks: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)
