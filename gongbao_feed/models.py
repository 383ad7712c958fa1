"""The plain records that flow through the pipeline.

Pages become Articles, Articles are gathered into Issues, Issues are mailed
to Members, and each (Issue, Member) pair has one Delivery. Every stage takes
and returns these frozen records, so a stage can be tested without the
others and nothing downstream can quietly change what upstream produced.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Byline:
    """Credits by role, in the order they appear on the page."""

    reporters: tuple[str, ...] = ()
    correspondents: tuple[str, ...] = ()
    interns: tuple[str, ...] = ()
    photographers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "reporters": list(self.reporters),
            "correspondents": list(self.correspondents),
            "interns": list(self.interns),
            "photographers": list(self.photographers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Byline:
        return cls(**{k: tuple(data.get(k) or ()) for k in ROLE_LABELS})

    def names(self) -> tuple[str, ...]:
        """Everyone credited, reporters first, without repeats."""
        seen: dict[str, None] = {}
        for role in ROLE_LABELS:
            for name in getattr(self, role):
                seen.setdefault(name, None)
        return tuple(seen)

    def __bool__(self) -> bool:
        return any(getattr(self, role) for role in ROLE_LABELS)


#: Role field → the label a Chinese reader expects in a credit line.
ROLE_LABELS: dict[str, str] = {
    "reporters": "记者",
    "correspondents": "通讯员",
    "interns": "实习生",
    "photographers": "摄影",
}


#: What ends a photo credit as a newspaper prints it: 通讯员 吴海峰 摄.
PHOTO_CREDIT_MARK = "摄"
#: Between a caption that does not end a sentence and the credit after it.
CREDIT_GAP = "\u3000"
_CAPTION_ENDS = "。！？!?…”’」』）)"


def photo_credit(names: tuple[str, ...] | list[str]) -> str:
    """A credit for photographers known only by name: `张三 摄`, `张三、李四 摄`.

    Used where nothing printed the credit (a Markdown article's
    `photographers`, an article stored before captions kept their credits);
    a credit read from a page is kept as the page printed it.
    """
    return f"{'、'.join(names)} {PHOTO_CREDIT_MARK}" if names else ""


def with_credit(caption: str, credit: str) -> str:
    """A caption and its photo credit as one line, the way the paper sets them.

    `图为…。` + `通讯员 吴海峰 摄` → `图为…。通讯员 吴海峰 摄`: after a
    sentence end the credit follows directly; after anything else a
    full-width space sets it apart. The one rule for joining the two, used by
    the reader (a credit printed on the line under its caption) and by every
    renderer (`fragments.printed_captions`).
    """
    caption, credit = caption.rstrip(), credit.strip()
    if not caption or not credit:
        return caption or credit
    gap = "" if caption.endswith(tuple(_CAPTION_ENDS)) else CREDIT_GAP
    return caption + gap + credit


def article_id(day: date, title: str) -> str:
    """A stable id: the same headline on the same day is the same article.

    Body text is left out on purpose, so a corrected paragraph keeps its id.
    """
    digest = hashlib.sha1(f"{day.isoformat()}\n{title.strip()}".encode()).hexdigest()
    return f"{day.isoformat()}-{digest[:8]}"


#: Dice score at or above which two bodies are one story (see `same_story`).
SAME_STORY_THRESHOLD = 0.6


def story_similarity(old: Article, new: Article) -> float:
    """Dice coefficient of the two bodies' character-bigram sets, 0.0 to 1.0.

    Body = the paragraphs, or the captions when there are no paragraphs
    (photo news), joined, with everything but letters and digits removed:
    line breaks and punctuation differ between layouts of the same text.
    Character bigrams, not words, because Chinese has no spaces to split on
    and a segmenter would be a dependency for a yes/no question. Dice
    (2|A∩B| / (|A|+|B|)) rather than overlap over the smaller set: overlap
    calls a one-line brief "the same" as any long story that happens to hold
    its few common bigrams (工会, 职工, 11月…), while Dice weighs the length
    difference in. An empty body scores 0.0: nothing to recognise it by.
    """
    a, b = _bigrams(_body(old)), _bigrams(_body(new))
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def same_story(old: Article, new: Article) -> bool:
    """Whether `new` is a later edition of `old`, judged by the body alone.

    Substantially the same means `story_similarity` ≥ SAME_STORY_THRESHOLD
    (0.6). Headlines are not compared: this is asked exactly when the
    headline changed. What that threshold admits, on three-paragraph stories
    and one-line items: a sentence reworded or a figure corrected (≈0.85),
    a paragraph added or the last one cut (≈0.87–0.90), a typo fixed in a
    one-sentence brief or photo caption (>0.9), a one-paragraph story that
    grew a second paragraph (≈0.73). Dice can never reach 0.6 when one body
    has more than 7/3 the bigrams of the other, so a brief that grew into a
    full story, or a story cut to a brief, is "different". What it refuses:
    a different story on the same beat (≈0.1), two briefs or captions on one
    template such as 11月21日，某区总工会为…  (≈0.45–0.52), a brief standing
    where a long story stood (<0.2), and empty bodies. Its blind spot: two
    one-line items that differ only in their last few words (same union, same
    day, same people, another service: ≈0.75) are one story to it, because a
    corrected brief looks exactly like that.

    When unsure it says "different": a wrong "same" gives a new story an old
    id, so it is never mailed; a wrong "different" mails a story twice and
    lists the old one as gone, which an editor sees.
    """
    return story_similarity(old, new) >= SAME_STORY_THRESHOLD


def _body(a: Article) -> str:
    text = "".join(a.paragraphs or a.captions)
    return "".join(c for c in text if c.isalnum()).casefold()


def _bigrams(text: str) -> set[str]:
    if len(text) < 2:
        return {text} if text else set()
    return {text[i : i + 2] for i in range(len(text) - 1)}


#: The longest section name (栏目) a config or a Markdown file may give: it is part
#: of the keys the store keeps feed ids and slugs under (64 characters).
SECTION_NAME_MAX = 32


@dataclass(frozen=True)
class Article:
    """One article as read from a page or a Markdown file.

    The last five fields are filled in by the store; a reader leaves them at
    their defaults.

    `captions`: each caption as the page prints it, photo credit included
    (`图为…。通讯员 吴海峰 摄`), or a credit alone for a photo news item;
    `byline.photographers` names the photographers (names only). Renderers
    show captions through `fragments.printed_captions`, which also credits a
    photographer no caption names (Markdown articles, rows stored before
    captions kept their credits).
    """

    id: str
    date: date
    title: str
    kicker: str | None = None
    subtitle: str | None = None
    dateline: str | None = None
    byline: Byline = field(default_factory=Byline)
    captions: tuple[str, ...] = ()
    paragraphs: tuple[str, ...] = ()
    section: str | None = None
    source: str = ""
    position: int = 0
    #: The text of a `更正：` line that ended the article on its page, taken off
    #: the body by `take_correction`; the store records it as a correction's note.
    #: Not part of `content()`: it says what changed, it is not the article.
    correction: str | None = None
    # Set by the store.
    revision: int = 1
    first_seen: datetime | None = None
    updated: datetime | None = None
    issue: int | None = None

    def content(self) -> dict[str, Any]:
        """The fields a reader sees; what the content hash is taken over.

        Captions are hashed as shown, each with its photo credit. So an
        article stored before captions kept their credits (`图为…。` and
        photographers ["吴海峰"]) reads as changed, once, when its page is
        read again: revision + 1 and a new updated time, which is also what
        puts the credit into its stored caption. It is not mailed again.
        """
        return {
            "title": self.title,
            "kicker": self.kicker,
            "subtitle": self.subtitle,
            "dateline": self.dateline,
            "byline": self.byline.to_dict(),
            "captions": list(self.captions),
            "paragraphs": list(self.paragraphs),
            "section": self.section,
        }

    @property
    def content_hash(self) -> str:
        blob = json.dumps(self.content(), ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The shape `gongbao-feed parse --json` promises other tools."""
        return {"id": self.id, "date": self.date.isoformat(), **self.content()}


#: How a correction line opens on a page: 更正 and a full-width or ASCII colon.
CORRECTION_LEAD = re.compile(r"^\s*更正\s*[：:]\s*")


def take_correction(article: Article) -> Article:
    """The article with a closing `更正：…` paragraph taken off its body into `correction`.

    A corrected page or Markdown file says what was corrected in a last
    paragraph that opens with 更正：; that line is a note to readers about the
    article, not part of it, so it leaves the body (and with it the content
    hash) and becomes the correction's note. Only the last paragraph counts:
    a story may quote the word elsewhere. Unchanged when there is none.
    """
    if not article.paragraphs:
        return article
    m = CORRECTION_LEAD.match(article.paragraphs[-1])
    if m is None:
        return article
    note = article.paragraphs[-1][m.end():].strip()
    return replace(article, paragraphs=article.paragraphs[:-1], correction=note or None)


@dataclass(frozen=True)
class Issue:
    """A numbered issue: which articles, in which order, made when."""

    number: int
    date: date
    title: str
    article_ids: tuple[str, ...]
    created: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "date": self.date.isoformat(),
            "title": self.title,
            "articles": list(self.article_ids),
            "created": self.created.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Issue:
        return cls(
            number=int(data["number"]),
            date=date.fromisoformat(data["date"]),
            title=str(data["title"]),
            article_ids=tuple(data["articles"]),
            created=datetime.fromisoformat(data["created"]),
        )


class MemberStatus(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    #: Their mailbox is gone (a hard bounce, or `bounces.soft_limit` soft ones in a row).
    BOUNCED = "bounced"
    #: Signed up on the web form, confirmation not yet followed: never mailed a digest.
    PENDING = "pending"


@dataclass(frozen=True)
class Member:
    """A union member on the mailing list; `email` is the normalised address.

    `email` is spelt as first imported (it goes on the To: line and is the
    ledger's key); the member's identity is `mailbox_key(email)`.
    """

    email: str
    name: str = ""
    status: MemberStatus = MemberStatus.ACTIVE
    joined: datetime | None = None
    unsubscribed_at: datetime | None = None
    unsubscribed_via: str | None = None
    #: When and why `bounced` (e.g. "5.1.1 user unknown"); see bounces.py.
    bounced_at: datetime | None = None
    bounce_reason: str | None = None
    #: Soft bounces in a row, on distinct issues; reset by a hard one or a resubscribe.
    soft_bounces: int = 0

    @property
    def since(self) -> datetime | None:
        """When the member left the active list (unsubscribed or bounced); None if active."""
        if self.status is MemberStatus.BOUNCED:
            return self.bounced_at
        if self.status is MemberStatus.UNSUBSCRIBED:
            return self.unsubscribed_at
        return None

    @property
    def reason(self) -> str | None:
        """Why they left: how they unsubscribed ("link", "complaint", "mailto",
        "removed") or the bounce's status and text; None if active."""
        if self.status is MemberStatus.BOUNCED:
            return self.bounce_reason
        if self.status is MemberStatus.UNSUBSCRIBED:
            return self.unsubscribed_via
        return None

    def to_json(self) -> dict[str, Any]:
        since = self.since
        return {"email": self.email, "name": self.name, "status": str(self.status),
                "since": since.isoformat() if since else None, "reason": self.reason}


def mailbox_key(address: str) -> str:
    """A member's identity: the whole address in lower case.

    RFC 5321 lets a server treat the local part's case as significant, but
    the providers members use (QQ, 163, Outlook, Gmail) do not, and list
    tools merge `Luo.Bin@…` and `luo.bin@…`: one person, one copy. Addresses
    are ASCII here (the domain in IDNA, see members.normalise_email).
    """
    return address.strip().lower()


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    """What happened to one issue's message for one member.

    A row is written `sent` only after the transport confirmed the message
    (the file renamed into the outbox, or the relay's 2xx to DATA).
    """

    issue: int
    email: str
    state: DeliveryState = DeliveryState.PENDING
    transport: str = ""
    attempts: int = 0
    permanent: bool = False
    code: int | None = None
    detail: str = ""
    message_id: str = ""
    updated: datetime | None = None
