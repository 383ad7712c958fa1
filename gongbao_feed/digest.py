"""The email digest: an issue rendered and inlined once, personalised per member.

Pure: an issue, its articles, the config and the templates go in; HTML and
plain text come out, and then one serialised message per member.

    render_digest()   templates → HTML with the stylesheet in <style>
                      → premailer, once for the whole issue, network off
                      → size budget: which articles are shown in full
    personalise()     the member's name, address and unsubscribe link,
                      escaped, put where the templates left slots for them
    Mailer.message()  multipart/alternative, UTF-8, the list headers; what
                      every copy shares is laid out once per send

Inlining a 100 KB document costs far more than filling in three fields, so
the slots are filled after inlining. The slots are plain words that premailer
and lxml pass through untouched, and the values go in escaped exactly as
lxml would have written them, so a member's copy is byte for byte what
inlining their own copy would give (tests/test_digest.py shows it).

The plain-text part is rendered from the same data by its own template, not
converted from the HTML, and wrapped by display width: a CJK character takes
two columns, no line starts with a closing "，" or "。", and a URL is never
split.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import html
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime
from enum import IntEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import premailer
import wcwidth

from . import headers, tokens, urls
from .config import Config, keyed
from .errors import DeliveryError, RenderError
from .fragments import (
    clean_article,
    credit_line,
    display_date,
    display_subtitle,
    printed_captions,
)
from .i18n import _
from .mail import Message
from .models import Article, Issue, Member
from .sections import grouped
from .signing import Signer, is_relaxed_canonical

#: Plain-text lines are at most this many display columns (36 CJK characters).
TEXT_WIDTH = 72

#: Words the templates print where a member's own value goes after inlining.
#: Letters and underscores only, so the HTML parser and serialiser leave them be.
SLOT_NAME = "__gongbao_member_name__"
SLOT_EMAIL = "__gongbao_member_email__"
SLOT_UNSUBSCRIBE = "__gongbao_unsubscribe_url__"

#: What the greeting says when a member gave no name.
DEFAULT_GREETING_NAME = "会员朋友"

#: Headers, MIME framing and the per-member fields, reserved out of the budget.
_ENVELOPE_ALLOWANCE = 4_000


class Form(IntEnum):
    """How much of an article a digest shows; the budget lowers it from the end."""

    TITLE = 0  # its title, linked, in the contents (and the text part's 更多文章) only
    LEAD = 1  # kicker, title, subtitle, byline, the first paragraph and 阅读全文
    FULL = 2  # … and every paragraph, captions and credits


@dataclass(frozen=True)
class Digest:
    """One issue, inlined once, with the per-member slots still in place."""

    issue: Issue
    subject: str
    html: str
    text: str
    forms: tuple[Form, ...]
    size_estimate: int = field(default=0, compare=False)

    @property
    def shortened(self) -> int:
        """How many articles the size budget cut to less than their full text."""
        return sum(1 for f in self.forms if f is not Form.FULL)


# -- templates -----------------------------------------------------------------


def email_environment(search_path: Sequence[Path]) -> jinja2.Environment:
    """Templates from the first folder that has each one: HTML escaped, text not.

    Pass the working folder's templates/email, then the built-in one.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search_path]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = lambda text, indent="": "\n".join(
        wrap_text(text, TEXT_WIDTH, indent=indent)
    )
    return env


#: The heading of an issue's articles that have no section, when others have one.
OTHER_SECTION = "其他"


def digest_context(issue: Issue, articles: Sequence[Article], config: Config) -> dict[str, Any]:
    """What both templates see: the issue, its articles and its links, as plain values.

    An issue whose articles fall in more than one section is grouped by
    section: the articles are reordered so each section's stand together,
    sections in order of first appearance (the page order), and `sections`
    lists them (`name`, `articles`); each article's `section_start` marks
    the first of its section, where the body prints the section's heading.
    Otherwise `sections` is empty and the articles keep the issue's order.
    Numbering (`n`, and with it the size budget's cuts from the end) follows
    the order shown.
    """
    groups = grouped(articles)
    by_section = len(groups) > 1
    if by_section:
        articles = [a for _name, own in groups for a in own]
    views = []
    for n, raw in enumerate(articles, start=1):
        a = clean_article(raw)
        paragraphs = [p for p in a.paragraphs if p.strip()]
        views.append({
            "n": n,
            "kicker": a.kicker or "",
            "title": a.title,
            "subtitle": display_subtitle(a.subtitle or ""),
            "dateline": a.dateline or "",
            "byline": credit_line(a.byline),
            "lead": paragraphs[0] if paragraphs else "",
            "rest": paragraphs[1:],
            "captions": list(printed_captions(a)),
            # Credits now stand in the captions; kept empty for templates that
            # `init` wrote before, which print it under the captions.
            "photo_credits": "",
            "url": urls.article_url(config, a.id),
            "section": (a.section or OTHER_SECTION) if by_section else "",
            "section_start": by_section and (n == 1 or views[-1]["section"]
                                             != (a.section or OTHER_SECTION)),
        })
    sections = [
        {"name": (name or OTHER_SECTION),
         "articles": [v for v in views if v["section"] == (name or OTHER_SECTION)]}
        for name, _own in groups
    ] if by_section else []
    titles = "；".join(v["title"] for v in views[:3])
    return {
        "paper": config.paper.name,
        "language": config.paper.language,
        "subject": subject_line(issue, config),
        "number": issue.number,
        "date": display_date(issue.date),
        "issue_title": issue.title,
        "issue_url": urls.issue_url(config, issue.number),
        "site_url": urls.site(config),
        "preheader": f"本期{len(views)}篇：{titles}" if views else "",
        "articles": views,
        "sections": sections,
        "member_name": SLOT_NAME,
        "member_email": SLOT_EMAIL,
        "unsubscribe_url": SLOT_UNSUBSCRIBE,
    }


def subject_line(issue: Issue, config: Config) -> str:
    """The [email] subject template filled in; one line, or a clear error."""
    subject = config.email.subject.format(
        paper=config.paper.name,
        number=issue.number,
        date=display_date(issue.date),
        title=issue.title,
    )
    return _one_line("Subject", subject, hint=_("check [email] subject and the issue title"))


# -- rendering, once per issue ---------------------------------------------------


def render_digest(
    issue: Issue,
    articles: Sequence[Article],
    config: Config,
    env: jinja2.Environment,
) -> Digest:
    """The issue as inlined HTML and wrapped text, shortened to fit the size budget."""
    context = digest_context(issue, articles, config)
    html_doc, text_doc = render_templates(env, context)
    inlined = inline_css(html_doc)
    budget = config.email.size_budget_kb * 1000
    forms, estimate = choose_forms(inlined, text_doc, len(articles), budget)
    return Digest(
        issue=issue,
        subject=context["subject"],
        html=cut(inlined, forms),
        text=cut(text_doc, forms),
        forms=forms,
        size_estimate=estimate,
    )


def render_templates(env: jinja2.Environment, context: dict[str, Any]) -> tuple[str, str]:
    """digest.html.j2 and digest.txt.j2 with every article in every form, regions marked."""
    try:
        html_doc = env.get_template("digest.html.j2").render(context)
        text_doc = env.get_template("digest.txt.j2").render(context)
    except jinja2.TemplateError as exc:
        where = (getattr(exc, "filename", None) or getattr(exc, "name", None)
                 or _("email template"))
        line = getattr(exc, "lineno", None)
        raise RenderError(
            f"{where}{f':{line}' if line else ''}: {exc}",
            hint=_("compare with the templates/email/ that `gongbao-feed init` ships"),
        ) from None
    return html_doc, text_doc


def inline_css(html_doc: str) -> str:
    """Move the stylesheet into style attributes; @media rules stay in <style>.

    Network off: a <link> to outside CSS is never fetched, so a render is
    the same offline and cannot stall on a slow server.
    """
    inliner = premailer.Premailer(
        html_doc,
        allow_network=False,
        allow_loading_external_files=False,
        cssutils_logging_level=logging.CRITICAL,
        strip_important=False,
        disable_link_rewrites=True,
    )
    try:
        out = inliner.transform()
    except Exception as exc:  # premailer raises many kinds; all mean a broken template
        raise RenderError(
            _("templates/email/digest.html.j2: cannot inline its CSS: {reason}").format(
                reason=exc),
            hint=_("check the stylesheet templates/email/digest.css"),
        ) from None
    # lxml drops the doctype; mail clients pick standards mode from it.
    return out if out.lstrip().lower().startswith("<!doctype") else "<!DOCTYPE html>\n" + out


# -- the size budget -------------------------------------------------------------

#: <!--gb:lead:3-->…<!--/gb:lead:3--> around what a form may leave out; regions nest.
_REGION = re.compile(r"<!--gb:([a-z]+):(\d+)-->(.*?)<!--/gb:\1:\2-->", re.S)


def keeps(kind: str, n: int, forms: Sequence[Form]) -> bool:
    """Whether region `kind` of article `n` (from 1) stays in a digest with these forms.

        show   the article in the body           LEAD and FULL
        lead   its byline and first paragraph    LEAD and FULL
        rest   the other paragraphs, credits     FULL
        link   its title and URL in a list       TITLE (the text part's "更多文章")
        note   "more in the table of contents"   the first TITLE article only
    """
    form = forms[n - 1] if 0 < n <= len(forms) else Form.FULL
    if kind in ("show", "lead"):
        return form >= Form.LEAD
    if kind == "rest":
        return form is Form.FULL
    if kind == "link":
        return form is Form.TITLE
    if kind == "note":
        return form is Form.TITLE and (n == 1 or forms[n - 2] is not Form.TITLE)
    raise RenderError(
        _("email template: unknown region {region}").format(region=f"<!--gb:{kind}:{n}-->"),
        hint=_("regions are show, lead, rest, link and note"),
    )


def cut(doc: str, forms: Sequence[Form]) -> str:
    """Keep the regions the articles' forms include; drop every marker."""

    def keep(m: re.Match[str]) -> str:
        return cut(m[3], forms) if keeps(m[1], int(m[2]), forms) else ""

    return _REGION.sub(keep, doc)


@dataclass(frozen=True)
class _Region:
    kind: str
    n: int
    size: int  # its own bytes, without the regions inside it


def _regions(doc: str) -> tuple[int, list[_Region]]:
    """The bytes outside every region, and each region's own bytes."""
    found: list[_Region] = []

    def walk(text: str) -> int:
        for m in _REGION.finditer(text):
            found.append(_Region(m[1], int(m[2]), walk(m[3])))
        return len(_REGION.sub("", text).encode())

    return walk(doc), found


def _base64_size(n: int) -> int:
    """Bytes of n bytes in base64 with 76-character lines and CRLF."""
    chars = 4 * ((n + 2) // 3)
    return chars + 2 * ((chars + 75) // 76)


def choose_forms(
    html_doc: str, text_doc: str, n: int, budget: int
) -> tuple[tuple[Form, ...], int]:
    """Show articles in full from the top while the message fits, then leads, then titles.

    A later article is never shown in a longer form than an earlier one, so
    a reader meets the paper in its order: whole articles, then first
    paragraphs, then headlines. Returns the forms and the message size
    estimated for them (regions' exact bytes, base64, and an allowance for
    headers and the member's own fields).
    """
    parts = [_regions(html_doc), _regions(text_doc)]

    def size(forms: Sequence[Form]) -> int:
        total = _ENVELOPE_ALLOWANCE
        for base, regions in parts:
            body = base + sum(r.size for r in regions if keeps(r.kind, r.n, forms))
            total += _base64_size(body)
        return total

    forms = [Form.TITLE] * n
    ceiling = Form.FULL
    for i in range(n):
        for form in (Form.FULL, Form.LEAD):
            if form <= ceiling and size([*forms[:i], form, *forms[i + 1:]]) <= budget:
                forms[i] = form
                break
        ceiling = forms[i]
    return tuple(forms), size(forms)


# -- one member's copy -----------------------------------------------------------


def greeting_name(member: Member) -> str:
    return member.name or DEFAULT_GREETING_NAME


def personalise(digest: Digest, member: Member, unsubscribe_url: str) -> tuple[str, str]:
    """The member's HTML and text: slots filled, escaped as lxml writes text and attributes.

    In the text, a line that held the name or the address is wrapped again
    once they are in; the unsubscribe URL stands on a line of its own.
    """
    values = {
        SLOT_NAME: greeting_name(member),
        SLOT_EMAIL: member.email,
        SLOT_UNSUBSCRIBE: unsubscribe_url,
    }
    html_out = digest.html
    for slot, value in values.items():
        html_out = html_out.replace(slot, _lxml_escape(value))

    def rewrap(line: re.Match[str]) -> str:
        filled = line[0].replace(SLOT_NAME, values[SLOT_NAME]).replace(SLOT_EMAIL, member.email)
        indent = filled[: len(filled) - len(filled.lstrip(" "))]
        return "\n".join(wrap_text(filled, TEXT_WIDTH, indent=indent))

    text_out = _MEMBER_LINE.sub(rewrap, digest.text.replace(SLOT_UNSUBSCRIBE, unsubscribe_url))
    return html_out, text_out


_MEMBER_LINE = re.compile(f"^.*(?:{SLOT_NAME}|{SLOT_EMAIL}).*$", re.M)


def _lxml_escape(value: str) -> str:
    """Escape as lxml's HTML serialiser writes text: &, < and >, quotes left as they are.

    Slots inside attributes hold URLs only, whose characters need no escaping.
    """
    return html.escape(value, quote=False)


def message_id(issue: int, email: str, domain: str) -> str:
    """The same for the same (issue, member), so a resent copy is the same message."""
    digest = hashlib.sha256(f"{issue}\n{email}".encode()).hexdigest()[:24]
    return f"<digest.{issue}.{digest}@{domain}>"


def test_message_id(issue: int, domain: str) -> str:
    """A test copy's own Message-ID, new on every test send: a mailbox that folds
    messages by Message-ID never shows a test copy in place of the member's copy,
    nor an old test copy in place of a corrected one."""
    return f"<digest-test.{issue}.{uuid.uuid4().hex[:24]}@{domain}>"


def proof_digest(digest: Digest, approve_url: str, days: int) -> Digest:
    """The digest as an editor's proof: a notice with the approve link above everything,
    in both parts. The link is escaped for HTML; the text part has it on its own line."""
    notice = (f"【审核样稿】本期（第{digest.issue.number}期）尚未发给会员。"
              f"审核无误后请打开下面的链接批准发送（{days}天内有效），"
              f"或在服务器上运行 gongbao-feed approve {digest.issue.number}。")
    url = html.escape(approve_url, quote=True)
    banner = (f'<div class="proof" style="border:2px solid #b00;padding:12px;margin:0 0 16px">'
              f"<p>{html.escape(notice, quote=False)}</p>"
              f'<p><a href="{url}">批准发送第{digest.issue.number}期</a></p></div>')
    body = re.search(r"<body[^>]*>", digest.html, re.I)
    at = body.end() if body else 0
    wrapped = "\n".join(wrap_text(notice, TEXT_WIDTH))
    text = f"{wrapped}\n批准发送：\n{approve_url}\n\n{'=' * 36}\n\n"
    return replace(digest, html=digest.html[:at] + banner + digest.html[at:],
                   text=text + digest.text)


#: What a test copy's subject starts with.
TEST_SUBJECT_PREFIX = "[测试] "

#: On every digest: out-of-office and other automatic responders stay quiet
#: (RFC 3834 for Auto-Submitted; Exchange and Outlook read the other).
AUTO_HEADERS = (
    ("Auto-Submitted", "auto-generated"),
    ("X-Auto-Response-Suppress", "OOF, AutoReply"),
)


def build_message(
    digest: Digest, member: Member, config: Config, key: bytes, now: datetime
) -> Message:
    """One member's copy of the digest; see Mailer, which a send makes once."""
    return Mailer(digest, config, key, now).message(member)


@dataclass(frozen=True)
class Mailbox:
    """A configured sender (From, Reply-To): the name and address as written."""

    name: str
    addr_spec: str

    @property
    def domain(self) -> str:
        return self.addr_spec.rpartition("@")[2]


class Mailer:
    """Makes each member's message for one issue and one send.

    What every copy shares (From, Subject, Date, the list headers, the MIME
    layout) is laid out once; per member only To, Message-ID,
    List-Unsubscribe and the two bodies are made. The headers made from
    configuration or member data are written by headers.py from the literal
    text. The bodies are base64-encoded in one C call each: the email
    package's own encoder and writer, line by line, took three times as long
    as writing the file.

    `test`: the messages are test copies (`send --to`): `[测试] ` before the
    subject, a Message-ID of their own, and Message.test set, so the outbox
    writes them apart from the members' copies.

    `signer`: when given ([dkim] in the config, `signing.load_signer`), each
    copy is DKIM-signed once, here, after it is personalised and complete,
    so every transport gets (and the outbox keeps) the signed bytes.
    """

    def __init__(
        self, digest: Digest, config: Config, key: bytes, now: datetime, *, test: bool = False,
        signer: Signer | None = None,
        tag: str = TEST_SUBJECT_PREFIX,
    ) -> None:
        """`tag` is what a test copy's subject starts with (a proof's is `[审核] `)."""
        self.digest = digest
        self.config = config
        self.key = key
        self.test = test
        self._signed_at = int(now.timestamp())
        cfg = config.email
        self.sender = _mailbox("email.from", cfg.from_address)
        subject = (tag if test else "") + digest.subject
        common = [_built("From", headers.address_header, "From", self.sender.name,
                         self.sender.addr_spec)]
        if cfg.reply_to:
            reply_to = _mailbox("email.reply_to", cfg.reply_to)
            common.append(_built("Reply-To", headers.address_header, "Reply-To", reply_to.name,
                                 reply_to.addr_spec))
        common += [
            _built("Subject", headers.text_header, "Subject", subject),
            _header("Date", format_datetime(now.astimezone(config.tz))),
            _built("List-Id", headers.list_id_header, config.paper.name, list_id(config)),
            _header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            *(_header(name, value) for name, value in AUTO_HEADERS),
        ]
        self._common = b"".join(common)
        layout = EmailMessage(policy=_POLICY)
        layout["MIME-Version"] = "1.0"
        layout["Content-Type"] = "multipart/alternative"
        layout.set_boundary(_boundary(f"{digest.issue.number}\n{digest.subject}"))
        layout.set_payload([_text_part("plain", _TEXT_BODY), _text_part("html", _HTML_BODY)])
        # The layout around the two bodies: text, then HTML.
        head, rest = layout.as_bytes().split(_TEXT_BODY.encode(), 1)
        middle, tail = rest.split(_HTML_BODY.encode(), 1)
        # The MIME fields, and the body up to the text part's base64.
        mime, _blank, opening = head.partition(b"\r\n\r\n")
        self._mime = mime + b"\r\n"
        self._frame = (opening, middle, tail)
        # Every copy's body is this frame around base64 lines, which hold no space,
        # tab or bare LF: if the frame is in relaxed canonical form, so is every
        # body, and the signer need not search each one (RFC 6376 §3.4.4).
        self._canonical_body = is_relaxed_canonical(
            opening + b"QUFB" + middle + b"QUFB" + tail
        )
        # The fields every copy shares are canonicalised and hashed once.
        self._copies = None if signer is None else signer.copies(
            self._common + self._mime, self._signed_at)
        self._bodies = _Bodies(digest)
        self._html_b64 = _Base64Body(self._bodies.html_fixed)
        self._text_b64 = _Base64Body(self._bodies.text_fixed)

    def message(self, member: Member) -> Message:
        """Raises DeliveryError (naming the header) when the member's name or address
        cannot be written as it is (a line break, an address that is not plain)."""
        number = self.digest.issue.number
        token = tokens.sign(self.key, member.email, number)
        unsubscribe = urls.unsubscribe_url(self.config, token)
        domain = self.sender.domain
        mid = test_message_id(number, domain) if self.test else message_id(
            number, member.email, domain)
        own = b"".join((
            _built("To", headers.address_header, "To", member.name, member.email),
            _message_id_header(mid),
            _list_unsubscribe_header(
                _list_unsubscribe(unsubscribe, self.config.email.unsubscribe_mailto, token)
            ),
        ))
        html, text = self._bodies.pieces(member, unsubscribe)
        opening, middle, tail = self._frame
        body = [
            opening, *_crlf_between(self._text_b64.lines(text)), middle,
            *_crlf_between(self._html_b64.lines(html)), tail,
        ]
        signature = b"" if self._copies is None else self._copies.signature(
            own, body, canonical_body=self._canonical_body)
        data = b"".join([signature, self._common, own, self._mime, b"\r\n", *body])
        # A member's copy goes out from its VERP address, so its bounce names the
        # member and the issue (bounces.py); a test copy from the plain From
        # address, so a bounce of it never counts against a member.
        sender = self.sender.addr_spec if self.test else tokens.verp_address(
            self.key, member.email, number, self.config.bounce_domain)
        return Message(
            issue=number,
            email=member.email,
            sender=sender,
            recipients=(member.email,),
            message_id=mid,
            data=data,
            test=self.test,
        )


def _built(header: str, build: Any, *args: str) -> bytes:
    """headers.py's `build(*args)`, its HeaderError as a DeliveryError naming the header."""
    try:
        return bytes(build(*args))
    except headers.HeaderError as exc:
        raise DeliveryError(
            _("the {header} header cannot be written: {problem}").format(
                header=header, problem=exc),
            hint=_("a line break in a header value would let it add headers of its own; "
                   "check the member's name and address, and [email] / [paper] in the config"),
        ) from None


def _header(name: str, value: Any) -> bytes:
    """One header as the email package folds it, CRLF-ended: only for values made
    here (dates, ids, fixed words), never for names or text from outside."""
    if isinstance(value, str):
        _one_line(name, value)
    return _POLICY.fold_binary(*_POLICY.header_store_parse(name, value))


#: The longest line, CRLF not counted, that is written without the folder.
_SHORT_LINE = 76
_PLAIN_MESSAGE_ID = re.compile(r"<[A-Za-z0-9.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>")


def _message_id_header(mid: str) -> bytes:
    line = f"Message-ID: {mid}"
    if len(line) <= _SHORT_LINE and _PLAIN_MESSAGE_ID.fullmatch(mid):
        return line.encode() + b"\r\n"
    return _header("Message-ID", mid)


def _list_unsubscribe_header(value: str) -> bytes:
    """List-Unsubscribe's <uri>, <uri> (RFC 2369), one URI a line, never encoded.

    Each URI is checked again here: no line break, space, `<` or `>` (the
    config check is the first guard, this the second).
    """
    uris = [u.strip() for u in value.split(">,")]
    uris = [u if u.endswith(">") else u + ">" for u in uris]
    for uri in uris:
        inner = uri[1:-1]
        if (not (uri.startswith("<") and uri.endswith(">")) or headers.one_line_problem(inner)
                or any(ch in inner for ch in " <>") or not inner.isascii()):
            raise DeliveryError(
                _("the List-Unsubscribe header cannot be written: {uri!r} is not one plain "
                  "URL").format(uri=uri),
                hint=_("check paper.base_url and email.unsubscribe_mailto"),
            )
    return ("List-Unsubscribe: " + ",\r\n ".join(uris) + "\r\n").encode()


#: Where the two bodies go; see Mailer.
_TEXT_BODY = "GONGBAO-TEXT-BODY-8d1c"
_HTML_BODY = "GONGBAO-HTML-BODY-8d1c"


def _text_part(subtype: str, placeholder: str) -> MIMEPart:
    part = MIMEPart(policy=_POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(placeholder)
    return part


def _base64_lines(text: str) -> bytes:
    """Text in canonical form (CRLF line ends), base64 in 76-character lines, no final CRLF."""
    return _base64_bytes(_crlf(text))


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def _base64_bytes(data: bytes) -> bytes:
    """Bytes already in canonical form, base64 in 76-character lines, no final CRLF."""
    encoded = binascii.b2a_base64(data, newline=False)
    return b"\r\n".join([encoded[i:i + 76] for i in range(0, len(encoded), 76)])


def _crlf_between(groups: list[bytes]) -> list[bytes]:
    """The groups with CRLF between them, for one join with the rest of a message."""
    out = [b"\r\n"] * (2 * len(groups) - 1) if groups else []
    out[::2] = groups
    return out


_SLOT = re.compile(f"({SLOT_NAME}|{SLOT_EMAIL}|{SLOT_UNSUBSCRIBE})")


#: Piece of a body: the index of a fixed piece (the same bytes in every copy), or
#: bytes made for this copy.
_Piece = int | bytes
#: Bytes of one 76-character base64 line (RFC 2045 §6.8).
_LINE = 57


class _Bodies:
    """personalise(), laid out once per send: a member's two bodies as pieces.

    The digest is cut at its slots once; the fixed text between them is kept
    already in CRLF form and UTF-8, so a copy no longer costs a pass over
    100 KB of text per member, and only the text lines that hold the name or
    the address are wrapped again. `pieces` gives each body as fixed pieces
    (by index) and this copy's values; `fill` joins them. The bytes are
    exactly personalise()'s (tests/test_mail_layout.py compares them);
    values that contain a slot word themselves, where the order of
    personalise()'s replacements shows, take personalise() itself.
    """

    def __init__(self, digest: Digest) -> None:
        self.digest = digest
        self.html_fixed: list[bytes] = []
        self.text_fixed: list[bytes] = []
        # A fixed piece's index, or a slot name.
        self._html: list[int | str] = [
            self._fix(self.html_fixed, _crlf(piece)) if i % 2 == 0 else piece
            for i, piece in enumerate(_SLOT.split(digest.html))
        ]
        # A fixed piece's index, the unsubscribe slot, or a line (a str) to fill and wrap.
        self._text: list[int | str] = []
        pos = 0
        for line in _MEMBER_LINE.finditer(digest.text):
            self._fixed_text(digest.text[pos:line.start()])
            self._text.append(line[0])
            pos = line.end()
        self._fixed_text(digest.text[pos:])

    @staticmethod
    def _fix(table: list[bytes], data: bytes) -> int:
        table.append(data)
        return len(table) - 1

    def _fixed_text(self, text: str) -> None:
        for i, piece in enumerate(text.split(SLOT_UNSUBSCRIBE)):
            if i:
                self._text.append(SLOT_UNSUBSCRIBE)
            self._text.append(self._fix(self.text_fixed, _crlf(piece)))

    def pieces(self, member: Member, unsubscribe_url: str) -> tuple[list[_Piece], list[_Piece]]:
        """The member's HTML and text, canonical (CRLF) UTF-8, as pieces: an int is
        `html_fixed[i]` (or `text_fixed[i]`), bytes are this copy's own."""
        name = greeting_name(member)
        if "__gongbao_" in name + member.email + unsubscribe_url:
            html_out, text_out = personalise(self.digest, member, unsubscribe_url)
            return [_crlf(html_out)], [_crlf(text_out)]
        escaped = {
            SLOT_NAME: _crlf(_lxml_escape(name)),
            SLOT_EMAIL: _crlf(_lxml_escape(member.email)),
            SLOT_UNSUBSCRIBE: _crlf(_lxml_escape(unsubscribe_url)),
        }
        html: list[_Piece] = [
            piece if isinstance(piece, int) else escaped[piece] for piece in self._html
        ]
        url = _crlf(unsubscribe_url)
        text: list[_Piece] = []
        for piece in self._text:
            if isinstance(piece, int):
                text.append(piece)
            elif piece == SLOT_UNSUBSCRIBE:
                text.append(url)
            else:
                filled = (
                    piece.replace(SLOT_UNSUBSCRIBE, unsubscribe_url)
                    .replace(SLOT_NAME, name)
                    .replace(SLOT_EMAIL, member.email)
                )
                indent = filled[: len(filled) - len(filled.lstrip(" "))]
                text.append(_crlf("\n".join(wrap_text(filled, TEXT_WIDTH, indent=indent))))
        return html, text

    def fill(self, member: Member, unsubscribe_url: str) -> tuple[bytes, bytes]:
        """The member's HTML and text in canonical form (CRLF), UTF-8."""
        html, text = self.pieces(member, unsubscribe_url)
        return _joined(html, self.html_fixed), _joined(text, self.text_fixed)


def _joined(pieces: Sequence[_Piece], fixed: Sequence[bytes]) -> bytes:
    return b"".join([fixed[p] if isinstance(p, int) else p for p in pieces])


class _Base64Body:
    """A body's base64 (76-character lines, RFC 2045 §6.8), its fixed pieces encoded once.

    Base64 turns each 57 bytes into one 76-character line on its own, so the
    lines that fall wholly inside a fixed piece depend only on where in a
    line the piece begins: they are encoded once for each such offset and
    kept, and a copy encodes only its own values and the lines they share
    with the fixed text around them. Encoding every copy whole cost a
    quarter of a send's CPU, most of it copying 100 KB twice.

    `lines` gives groups of whole lines (CRLF between the lines of a group,
    none at either end); joined with CRLF they are exactly
    `_base64_bytes(the body's bytes)`.
    """

    def __init__(self, fixed: Sequence[bytes]) -> None:
        self._fixed = fixed
        self._runs: dict[tuple[int, int], tuple[bytes, bytes]] = {}

    def _run(self, index: int, start: int) -> tuple[bytes, bytes]:
        """Fixed piece `index` from byte `start` on (a line begins there): its whole
        lines, encoded, and the bytes left over after them."""
        key = (index, start)
        found = self._runs.get(key)
        if found is None:
            data = self._fixed[index]
            whole = start + (len(data) - start) // _LINE * _LINE
            found = self._runs[key] = (_base64_bytes(data[start:whole]), data[whole:])
        return found

    def lines(self, pieces: Sequence[_Piece]) -> list[bytes]:
        groups: list[bytes] = []
        pending = b""  # not yet encoded; always begins a line
        for piece in pieces:
            if not isinstance(piece, int):
                pending += piece
                continue
            data = self._fixed[piece]
            whole = len(pending) // _LINE * _LINE
            if whole:
                groups.append(_base64_bytes(pending[:whole]))
                pending = pending[whole:]
            start = (_LINE - len(pending)) % _LINE
            if start > len(data):  # too short to finish the line
                pending += data
                continue
            if pending or start:
                groups.append(_base64_bytes(pending + data[:start]))
            encoded, pending = self._run(piece, start)
            if encoded:
                groups.append(encoded)
        if pending:
            groups.append(_base64_bytes(pending))
        return groups


class _UriListHeader(UnstructuredHeader):
    """List-Unsubscribe's <uri>, <uri>: folded between the URIs, never RFC 2047-encoded.

    The standard folding turns a URI longer than a line into encoded words,
    which no mail client will follow (RFC 2369 wants the URIs as they are).
    """

    def fold(self, *, policy: Any) -> str:
        uris = [u.strip() for u in str(self).split(",")]
        return f"{self.name}: " + ("," + policy.linesep + " ").join(uris) + policy.linesep


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _UriListHeader)
#: Serialises with CRLF, as SMTP and .eml files expect.
_POLICY = SMTP.clone(header_factory=_HEADERS)


def list_id(config: Config) -> str:
    """[email] list_id, or digest.<the site's host> (in IDNA, as a list id is ASCII)."""
    if config.email.list_id:
        return config.email.list_id
    host = urlsplit(config.paper.base_url).hostname or "localhost"
    with contextlib.suppress(UnicodeError):  # if not, headers.list_id_header names it
        host = host.encode("idna").decode("ascii")
    return f"digest.{host}"


def _list_unsubscribe(url: str, mailto: str, token: str) -> str:
    value = f"<{url}>"
    if mailto:
        value += f", <mailto:{quote(mailto, safe='@')}?subject={quote('unsubscribe ' + token)}>"
    return value


def _mailbox(key: str, value: str) -> Mailbox:
    """A configured From/Reply-To, read literally (headers.split_mailbox)."""
    try:
        name, addr = headers.split_mailbox(value)
    except headers.HeaderError as exc:
        raise DeliveryError(
            keyed(key, str(exc)), hint=_('expected e.g. "职工时报 <digest@news.example.org>"')
        ) from None
    return Mailbox(name, addr)


def _one_line(header: str, value: str, hint: str | None = None) -> str:
    problem = headers.one_line_problem(value)
    if problem:
        raise DeliveryError(
            _("the {header} header would contain {problem}: {value!r}").format(
                header=header, problem=problem, value=value),
            hint=hint or _("a line break in a header value would let it add headers of its own"),
        )
    return value


def _boundary(seed: str) -> str:
    """A MIME boundary that is the same on every render of the same issue."""
    digest = base64.b32encode(hashlib.sha256(seed.encode()).digest()[:15]).decode()
    return f"=_gongbao_{digest.lower()}"


# -- plain text ------------------------------------------------------------------

_URL = re.compile(r"(?:https?://|mailto:)[!-~]+|[A-Za-z0-9._%+'&-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
#: Runs of ASCII white space; an ideographic space (U+3000) is kept as it is.
_SPACES = re.compile(r"[ \t\r\n]+")
#: Chinese typesetting's rules: these never start a line …
_NO_START = set("，。、；：！？）》」』】〕〉”’…—·％,.;:!?)]}%")
#: … and these never end one.
_NO_END = set("（《「『【〔〈“‘([{")


def wrap_text(text: str, width: int = TEXT_WIDTH, indent: str = "") -> list[str]:
    """Lines of at most `width` display columns (a CJK character is two).

    A line may break between two CJK characters or at a space, but never
    before closing punctuation or after opening punctuation. A URL or an
    address is one unbreakable piece and, when longer than a line, stands
    on a line of its own.
    """
    lines: list[str] = []
    line = ""
    room = width - _width(indent)
    flat = _SPACES.sub(" ", text).strip()
    if flat.isprintable() and _width(flat) <= room:  # it fits: no place to break is needed
        return [indent + flat] if flat else []
    for unit in _units(flat):
        if line and _width((line + unit).rstrip()) > room:
            lines.append(line.rstrip())
            line = ""
        line += unit
        while _width(line.rstrip()) > room and not _unbreakable(line.strip()):
            head, line = _split_at(line, room)
            lines.append(head)
    if line.strip():
        lines.append(line.rstrip())
    return [indent + x for x in lines]


def _units(text: str) -> list[str]:
    """Pieces between the places a line may break; URLs and addresses kept whole."""
    units: list[str] = []
    pos = 0
    for m in _URL.finditer(text):
        units.extend(_breakable(text[pos:m.start()]))
        end = m.end()
        while end < len(text) and (text[end] in _NO_START or text[end] == " "):
            end += 1
        units.append(text[m.start():end])
        pos = end
    units.extend(_breakable(text[pos:]))
    return units


def _unbreakable(piece: str) -> bool:
    """A URL or an address, with the punctuation that closes it: it may overrun a line."""
    m = _URL.match(piece)
    return m is not None and all(ch in _NO_START or ch == " " for ch in piece[m.end():])


def _breakable(text: str) -> list[str]:
    units: list[str] = []
    unit = ""
    for ch in text:
        if unit and _may_break(unit[-1], ch):
            units.append(unit)
            unit = ""
        unit += ch
    if unit:
        units.append(unit)
    return units


def _may_break(before: str, after: str) -> bool:
    if after == " " or after in _NO_START or before in _NO_END:
        return False
    return before == " " or _width(before) == 2 or _width(after) == 2


def _split_at(line: str, room: int) -> tuple[str, str]:
    """A word longer than a line, cut at the last character that fits
    (one earlier when the next would be closing punctuation)."""
    used = 0
    for i, ch in enumerate(line):
        used += max(_width(ch), 0)
        if used > room:
            while i > 1 and line[i] in _NO_START:
                i -= 1
            return line[:max(i, 1)], line[max(i, 1):]
    return line, ""


def _width(text: str) -> int:
    if len(text) == 1:
        return _char_width(text)
    if text.isascii() and text.isprintable():
        return len(text)
    return wcwidth.width(text, ambiguous_width=2)


@functools.lru_cache(maxsize=8192)
def _char_width(ch: str) -> int:
    """One character's columns, looked up once: wrapping asks for every character's
    width again and again (a text line holding a member's name is wrapped per copy)."""
    return wcwidth.width(ch, ambiguous_width=2)
