"""What a message in the bounce mailbox is: a bounce, a complaint, an unsubscribe, or none.

Pure: a message's bytes go in, a `Verdict` comes out; finding the member it
names and changing their status is Newsroom.process_bounces's, reading and
moving the messages mailboxes.py's.

Recognised, in this order:

- **RFC 5965 abuse reports** (ARF: multipart/report; report-type=
  feedback-report) → a complaint, which unsubscribes the member.
- **RFC 3464 delivery status notifications** (multipart/report;
  report-type=delivery-status). Per recipient: `Action: failed` with a
  `Status: 5.x.x` is hard, `4.x.x` or `Action: delayed` soft. Two kinds of
  permanent failure say nothing about the address being dead and count as
  soft: a full mailbox (5.2.2, 5.2.3 message too big, 5.3.4) and a policy
  refusal (5.7.x: spam filter, blocked sender, DMARC). Marking members
  bounced for those would drop a whole provider's readers the day it blocks
  one issue; as soft bounces they still end at `bounced` after
  `bounces.soft_limit` issues in a row.
- **Plain-text bounces**, as QQ, NetEase (163/126), Sina, Aliyun and many
  older servers send them: from a postmaster or MAILER-DAEMON, or with a
  subject such as 系统退信 / 退信 / Undelivered Mail / Delivery failure,
  and an SMTP reply in the text ("550 Mailbox not found", "554 DT:SPM …",
  "Mail is rejected by recipients"). Hard when the text says the mailbox or
  domain does not exist (an enhanced status 5.1.x/5.2.1/5.4.4, or words such
  as user unknown, 不存在, 未开通); soft otherwise (4xx, full, spam,
  rate limits).
- **Mailed unsubscribes** (RFC 2369 mailto: in List-Unsubscribe): addressed
  to `email.unsubscribe_mailto`, or with a subject "unsubscribe <token>" as
  the digest's mailto link writes it.

Everything else (an auto-reply, a reader's letter, spam) is `unknown`: it
stays in the mailbox and is reported.

The member is named, best first, by the VERP address the notice was sent
to or quotes (tokens.verp_address), an unsubscribe token in the text (the
original's List-Unsubscribe), then the addresses the report names
(Final-Recipient, Original-Recipient, Original-Rcpt-To, X-Failed-Recipients,
the original's To, addresses in a plain-text bounce).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from email import message_from_bytes
from email.message import Message as EmailMessage
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from enum import StrEnum

from .tokens import VERP_ADDRESS


class Kind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verdict:
    """What one message is, and everything in it that may name the member.

    `status`: the RFC 3463 status ("5.1.1") or SMTP reply code ("550") the
    decision rests on, if any. `detail`: one line saying why, for the member
    record and the report. `verp`: VERP tokens found (lower case), best
    first; `tokens`: unsubscribe tokens; `recipients`: addresses the report
    names; `sender`: the From address (who asks to unsubscribe).
    """

    kind: Kind
    detail: str
    status: str | None = None
    verp: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    sender: str = ""
    subject: str = ""


#: Headers of the notice itself that carry the address it was delivered to.
_DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC = re.compile(r"(?<![\d.:#])([45][0-5]\d)(?=[ \-]|$)", re.MULTILINE)
_ADDRESS = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
#: An unsubscribe token in a link or a mailto subject (tokens.sign's alphabet).
_TOKEN_IN_URL = re.compile(r"/unsubscribe/([A-Za-z0-9_.-]{16,})")
_TOKEN_IN_SUBJECT = re.compile(r"unsubscribe(?:\s+|%20)([A-Za-z0-9_.-]{16,})", re.IGNORECASE)
_BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|"
                             r"mail delivery (sub)?system)\b", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"退信|退回|投递失败|发送失败|无法投递|未能送达|"
    r"undeliver|undelivered|delivery (status notification|failure|failed|has failed)|"
    r"mail delivery failed|returned mail|failure notice|could not be delivered|"
    r"delivery notification", re.IGNORECASE)
_AUTO_REPLY_SUBJECT = re.compile(
    r"自动回复|自动答复|auto[- ]?reply|automatic reply|out of (the )?office|vacation",
    re.IGNORECASE)
#: Words that say the address itself is dead: a hard bounce.
_DEAD = re.compile(
    r"user unknown|unknown user|no such user|user not found|user not exist|"
    r"mailbox not found|mailbox does not exist|mailbox unavailable|mailbox is disabled|"
    r"does not exist|doesn't exist|not exist|no longer (in use|exists)|"
    r"invalid (recipient|mailbox|address)|recipient address rejected|unknown recipient|"
    r"account (is )?(disabled|inactive|suspended)|address rejected|"
    r"host or domain name not found|domain not found|no such domain|"
    r"不存在|未开通|已注销|已停用|已被禁用|已冻结|地址错误|无效的收件人|查无此人",
    re.IGNORECASE)
#: Words that say the mailbox is there but would not take it now: soft.
_TRANSIENT = re.compile(
    r"quota|mailbox (is )?full|over ?quota|insufficient|try again|temporar|"
    r"rate limit|too many|spam|dt:spm|rejected by recipients|content reject|blocked|"
    r"空间不足|已满|容量|暂时|稍后|频率|垃圾邮件|拒收|超时", re.IGNORECASE)
#: Permanent failures that do not mean a dead address (see the module docstring).
_SOFT_PERMANENT = ("5.2.2", "5.2.3", "5.3.4")
#: Enhanced statuses that do mean one: bad mailbox or domain (5.1.x), disabled (5.2.1),
#: no route to the domain (5.4.4).
_DEAD_STATUS = re.compile(r"5\.1\.\d+|5\.2\.1|5\.4\.4")


def classify(data: bytes, unsubscribe_address: str = "") -> Verdict:
    """Read one message (RFC 5322 bytes). Never raises on a malformed message:
    what cannot be read is `unknown`."""
    msg = message_from_bytes(data, policy=compat32)
    subject = _one_line(_header(msg, "Subject"))
    sender = parseaddr(_header(msg, "From"))[1]
    text = _all_text(msg, data)
    verp = _verp_tokens(msg, text)
    tokens = tuple(dict.fromkeys(_TOKEN_IN_URL.findall(text) + _TOKEN_IN_SUBJECT.findall(text)))
    common = Verdict(Kind.UNKNOWN, "not a bounce, complaint or unsubscribe", verp=verp,
                     tokens=tokens, sender=sender, subject=subject)

    if msg.get_content_type() == "multipart/report":
        report_type = (msg.get_param("report-type") or "").lower()
        if report_type == "feedback-report":
            return _complaint(msg, common)
        if report_type == "delivery-status":
            verdict = _dsn(msg, common)
            if verdict is not None:
                return verdict
    if _is_auto_reply(msg, subject):
        return replace(common, detail="an auto-reply")
    if _looks_like_bounce(msg, subject, sender):
        return _plain_bounce(msg, common)
    if _is_unsubscribe(msg, subject, unsubscribe_address):
        own = _TOKEN_IN_SUBJECT.findall(subject + "\n" + _first_text(msg))
        return replace(common, kind=Kind.UNSUBSCRIBE, detail="unsubscribe by mail",
                       tokens=_unique(own))
    return common


# -- the three formats ------------------------------------------------------------


def _complaint(msg: EmailMessage, common: Verdict) -> Verdict:
    """RFC 5965: the feedback-report part's Original-Rcpt-To, else the original's To."""
    recipients: list[str] = []
    feedback = ""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            block = _enclosed(part)
            fields = _fields(block) if block is not None else {}
            feedback = fields.get("feedback-type", [""])[0]
            for value in fields.get("original-rcpt-to", []):
                recipients.append(_strip_type(value))
        elif kind in ("message/rfc822", "text/rfc822-headers"):
            original = _enclosed(part)
            if original is not None:
                recipients += [a for _n, a in getaddresses(original.get_all("To", []))]
    detail = f"complaint ({feedback.strip() or 'abuse'})"
    return replace(common, kind=Kind.COMPLAINT, detail=detail, recipients=_unique(recipients))


def _dsn(msg: EmailMessage, common: Verdict) -> Verdict | None:
    """RFC 3464: the worst per-recipient verdict; None when no recipient failed or
    was delayed (a success notice is nothing to act on)."""
    worst: tuple[int, Kind, str, str] | None = None
    recipients: list[str] = []
    for part in msg.walk():
        if part.get_content_type() not in ("message/delivery-status",
                                           "message/global-delivery-status"):
            continue
        for block in _blocks(part):
            action = block.get("action", [""])[0].strip().lower()
            status_text = block.get("status", [""])[0]
            m = _ENHANCED.search(status_text)
            status = m.group(0) if m else ""
            diagnostic = _one_line(_strip_type(block.get("diagnostic-code", [""])[0]))
            for key in ("final-recipient", "original-recipient"):
                recipients += [_strip_type(v) for v in block.get(key, [])]
            if action == "failed" and status.startswith("5"):
                kind = _permanent(status, diagnostic)
            elif (action == "failed" and status.startswith("4")) or action == "delayed":
                kind = Kind.SOFT
            else:
                continue
            rank = 2 if kind is Kind.HARD else 1
            detail = _one_line(f"{status} {diagnostic}".strip()) or action
            if worst is None or rank > worst[0]:
                worst = (rank, kind, status or action, detail)
    if worst is None:
        return None
    _rank, kind, status, detail = worst
    return replace(common, kind=kind, detail=detail, status=status,
                   recipients=_unique(recipients))


def _permanent(status: str, diagnostic: str) -> Kind:
    """A 5.x.x failure: hard unless it is a full mailbox or a policy refusal."""
    if status in _SOFT_PERMANENT or status.startswith("5.7."):
        return Kind.SOFT
    if status == "5.0.0" and _TRANSIENT.search(diagnostic) and not _DEAD.search(diagnostic):
        return Kind.SOFT  # an unspecific 5.0.0 whose words say spam or quota
    return Kind.HARD


def _plain_bounce(msg: EmailMessage, common: Verdict) -> Verdict:
    """A provider's own wording: find the reply code and the words around it."""
    body = _body_text(msg)
    enhanced = [m.group(0) for m in _ENHANCED.finditer(body) if m.group(1) in "45"]
    basic = _BASIC.findall(body)
    line = _reason_line(body)
    recipients = [a for _n, a in getaddresses(msg.get_all("X-Failed-Recipients", []))]
    recipients += _ADDRESS.findall(body)
    status = enhanced[0] if enhanced else (basic[0] if basic else None)
    if any(_DEAD_STATUS.fullmatch(s) for s in enhanced) or (
        _DEAD.search(body) and not any(s.startswith("4") for s in enhanced + basic)
        and not (status and (status.startswith("5.7") or status in _SOFT_PERMANENT))
    ):
        kind = Kind.HARD
    else:
        kind = Kind.SOFT
    return replace(common, kind=kind, detail=line, status=status,
                   recipients=_unique(recipients))


def _reason_line(body: str) -> str:
    """The line that says why: the first with a reply code, else one with a known word."""
    lines = [x.strip() for x in body.splitlines() if x.strip()]
    for pattern in (_BASIC, _ENHANCED, _DEAD, _TRANSIENT):
        for line in lines:
            if pattern.search(line):
                return _one_line(line)[:200]
    return "a bounce without a reason given"


# -- recognising -------------------------------------------------------------------


def _is_auto_reply(msg: EmailMessage, subject: str) -> bool:
    auto = _header(msg, "Auto-Submitted").lower()
    return bool(
        _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond")
        or (auto.startswith("auto-replied") and _AUTO_REPLY_SUBJECT.search(subject))
        or _AUTO_REPLY_SUBJECT.match(subject.strip())
    )


def _looks_like_bounce(msg: EmailMessage, subject: str, sender: str) -> bool:
    name, address = parseaddr(_header(msg, "From"))
    local = address.partition("@")[0]
    return bool(
        _header(msg, "X-Failed-Recipients")
        or _BOUNCE_SENDERS.match(local) or _BOUNCE_SENDERS.match(name)
        or (not address and msg.get_unixfrom() is None and not _header(msg, "From").strip()
            and _BOUNCE_SUBJECT.search(subject))
        or (_BOUNCE_SUBJECT.search(subject) and _header(msg, "Return-Path").strip() == "<>")
        or (_BOUNCE_SUBJECT.search(subject) and (_BASIC.search(_body_text(msg))
                                                 or _ENHANCED.search(_body_text(msg))))
    )


def _is_unsubscribe(msg: EmailMessage, subject: str, unsubscribe_address: str) -> bool:
    if re.match(r"\s*(unsubscribe|退订|取消订阅)", subject, re.IGNORECASE):
        return True
    if not unsubscribe_address:
        return False
    wanted = unsubscribe_address.lower()
    for header in (*_DELIVERY_HEADERS, "Cc"):
        for _n, address in getaddresses(msg.get_all(header, [])):
            if address.lower() == wanted:
                return True
    return False


# -- reading the parts --------------------------------------------------------------


def _verp_tokens(msg: EmailMessage, text: str) -> tuple[str, ...]:
    """VERP tokens: the notice's own delivery headers first, then anywhere in it."""
    found: list[str] = []
    for header in _DELIVERY_HEADERS:
        for value in msg.get_all(header, []):
            found += [m.group(1).lower() for m in VERP_ADDRESS.finditer(str(value))]
    found += [m.group(1).lower() for m in VERP_ADDRESS.finditer(text)]
    return _unique(found)


def _all_text(msg: EmailMessage, data: bytes) -> str:
    """The raw message and every decoded text part: tokens may be in either."""
    pieces = [data.decode("utf-8", "replace")]
    for part in msg.walk():
        if part.get_content_maintype() == "text" or part.get_content_type() == "message/rfc822":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                pieces.append(_decode(payload, part.get_content_charset()))
    return "\n".join(pieces)


def _body_text(msg: EmailMessage) -> str:
    """The human-readable text of a notice: its text/plain parts (HTML tags dropped
    from text/html when there is no plain part)."""
    plain, html = [], []
    for part in msg.walk():
        if part.get_content_type() not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = _decode(payload, part.get_content_charset())
        if part.get_content_type() == "text/plain":
            plain.append(text)
        else:
            html.append(re.sub(r"<[^>]*>", " ", text))
    return "\n".join(plain or html)


def _first_text(msg: EmailMessage) -> str:
    body = _body_text(msg)
    return body.strip().split("\n", 1)[0] if body.strip() else ""


def _decode(payload: bytes, charset: str | None) -> str:
    for name in (charset, "utf-8", "gb18030"):
        if not name:
            continue
        try:
            return payload.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", "replace")


def _blocks(part: EmailMessage) -> list[dict[str, list[str]]]:
    """A delivery-status part's header blocks (per-message, then per-recipient)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [_fields(block) for block in payload]
    text = payload if isinstance(payload, str) else ""
    return [_fields(message_from_bytes(chunk.encode("utf-8", "replace"), policy=compat32))
            for chunk in re.split(r"\r?\n\r?\n", text) if chunk.strip()]


def _fields(block: EmailMessage) -> dict[str, list[str]]:
    """A header block's fields by lower-case name (a field may repeat)."""
    out: dict[str, list[str]] = {}
    for name, value in block.items():
        out.setdefault(name.lower(), []).append(str(value))
    return out


def _enclosed(part: EmailMessage) -> EmailMessage | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return payload[0]
    if isinstance(payload, str):
        return message_from_bytes(payload.encode("utf-8", "replace"), policy=compat32)
    return None


def _header(msg: EmailMessage, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(str(value))))
    except (UnicodeError, LookupError, ValueError):
        return str(value)


def _strip_type(value: str) -> str:
    """`rfc822; a@b` → `a@b`; `smtp; 550 …` → `550 …`."""
    head, sep, rest = value.partition(";")
    return (rest if sep else head).strip().strip("<>")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for x in items if x))
