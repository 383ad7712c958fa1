"""Editorial control: what an editor decided about articles after they were read.

Two decisions are kept beside the articles (tables `withdrawals` and
`corrections`, revision 0006), never in them, so a re-read page can change
an article's text but never undo a decision:

- a **withdrawal** (撤稿): who, when, why. Before the article is in an issue
  it simply never will be. After, it is *retracted*: the archive shows a
  notice instead of it, RSS and JSON Feed drop it, Atom carries an RFC 6721
  tombstone, a digest not yet sent leaves it out. `articles restore` ends it.
- a **correction** (更正): an article whose text changed after its issue went
  out, with the date and the editor's note (from `articles note` or a
  closing `更正：` line). Its archive page and feed entry say so, the next
  issue's page lists it, and members are not mailed again.

Pure: records in, records, text and Markup out. Reader-facing text is in the
paper's language (Chinese), not the operator's: it is part of the paper.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from markupsafe import Markup

from .fragments import credit_line, display_date, xml_safe
from .i18n import N_, _
from .models import Article, Issue


class ArticleStatus(StrEnum):
    """Where an article stands, as `articles list --json` reports it."""

    NEW = "new"  # read, in no issue yet
    PUBLISHED = "published"  # in an issue
    WITHDRAWN = "withdrawn"  # withdrawn, before or after it was in an issue

    @property
    def label(self) -> str:
        """The status as the operator reads it (`--json` keeps the value)."""
        return _(_STATUS_LABELS[self])


_STATUS_LABELS = {
    ArticleStatus.NEW: N_("new"),
    ArticleStatus.PUBLISHED: N_("published"),
    ArticleStatus.WITHDRAWN: N_("withdrawn"),
}


@dataclass(frozen=True)
class Withdrawal:
    """One withdrawal of one article; `restored_at` set once `articles restore` undid it.

    `by` is who ran the command (the OS user, or `--by`); times are aware UTC.
    """

    article_id: str
    when: datetime
    by: str
    reason: str
    restored_at: datetime | None = None
    restored_by: str | None = None

    @property
    def active(self) -> bool:
        return self.restored_at is None


@dataclass(frozen=True)
class Correction:
    """A change to an article after its issue went out.

    `revision` is the article's revision the correction made (a note added
    with `articles note` to an article never re-read keeps the revision it
    had); `when` is when the change was stored, the date readers are told;
    `note` the editor's words, `noted_at` when they were last set.
    """

    article_id: str
    revision: int
    when: datetime
    note: str | None = None
    by: str | None = None
    noted_at: datetime | None = None


@dataclass(frozen=True)
class Revision:
    """An earlier text of an article, kept when a later one replaced it."""

    article_id: str
    revision: int
    saved: datetime
    content: Mapping[str, Any]


@dataclass(frozen=True)
class Decisions:
    """The editorial state a render needs: active withdrawals and every correction, by id."""

    withdrawn: Mapping[str, Withdrawal] = field(default_factory=dict)
    corrections: Mapping[str, Sequence[Correction]] = field(default_factory=dict)

    def is_withdrawn(self, article_id: str) -> bool:
        return article_id in self.withdrawn


def status_of(article: Article, withdrawn: bool) -> ArticleStatus:
    if withdrawn:
        return ArticleStatus.WITHDRAWN
    return ArticleStatus.NEW if article.issue is None else ArticleStatus.PUBLISHED


@dataclass(frozen=True)
class ArticleSummary:
    """One line of `articles list`; `to_json` is the shape other tools rely on."""

    id: str
    date: str
    title: str
    section: str | None
    issue: int | None
    status: ArticleStatus
    revision: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date": self.date,
            "title": self.title,
            "section": self.section,
            "issue": self.issue,
            "status": str(self.status),
            "revision": self.revision,
        }


def summarise(article: Article, withdrawn: bool) -> ArticleSummary:
    return ArticleSummary(
        id=article.id,
        date=article.date.isoformat(),
        title=article.title,
        section=article.section,
        issue=article.issue,
        status=status_of(article, withdrawn),
        revision=article.revision,
    )


@dataclass(frozen=True)
class ArticleDetail:
    """Everything `articles show` prints about one article."""

    article: Article
    status: ArticleStatus
    withdrawals: Sequence[Withdrawal]  # oldest first; the last is active if not restored
    corrections: Sequence[Correction]  # oldest first
    revisions: Sequence[Revision]  # earlier texts, oldest first


def operator(explicit: str | None = None) -> str:
    """Who is running the command: `--by`, else the OS user (login name, else $USER)."""
    if explicit and explicit.strip():
        return explicit.strip()
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return os.environ.get("USER") or f"uid {os.getuid()}"


# -- what readers see -----------------------------------------------------------------

#: The heading of the corrections a later issue's page lists.
CORRECTIONS_HEADING = "更正"
WITHDRAWN_LABEL = "已撤稿"


def correction_text(correction: Correction, tz: tzinfo) -> str:
    """`更正：本文于2026年12月1日更正。` and the editor's note, as one line of plain text.

    The date is the day the correction was stored, in the paper's time zone.
    """
    text = f"更正：本文于{display_date(correction.when.astimezone(tz).date())}更正。"
    if correction.note:
        text += xml_safe(correction.note).strip()
    return text


def corrections_html(corrections: Sequence[Correction], tz: tzinfo) -> Markup:
    """The correction notes under an article, oldest first; empty Markup when none."""
    return Markup("\n").join(
        Markup('<p class="correction">{}</p>').format(correction_text(c, tz))
        for c in corrections
    )


def retraction_text(article: Article, withdrawal: Withdrawal, tz: tzinfo) -> str:
    """The one-line notice: the title, the date of the withdrawal and the reason."""
    day = display_date(withdrawal.when.astimezone(tz).date())
    reason = xml_safe(withdrawal.reason).strip()
    return f"《{xml_safe(article.title).strip()}》已于{day}撤稿。撤稿原因：{reason}"


def retraction_html(article: Article, withdrawal: Withdrawal, tz: tzinfo) -> Markup:
    """The notice that stands where a retracted article stood (issue page, its own page)."""
    return Markup('<p class="retraction">{}</p>').format(retraction_text(article, withdrawal, tz))


def listed_in(
    corrections: Sequence[Correction], issues: Sequence[Issue]
) -> dict[int, list[Correction]]:
    """Each correction under the first issue made after it: the issue whose page lists it.

    A correction made after the newest issue waits for the next one.
    """
    ordered = sorted(issues, key=lambda i: i.created)
    out: dict[int, list[Correction]] = {}
    for c in sorted(corrections, key=lambda c: c.when):
        nxt = next((i for i in ordered if i.created > c.when), None)
        if nxt is not None:
            out.setdefault(nxt.number, []).append(c)
    return out


def last_changed(article: Article, corrections: Sequence[Correction]) -> datetime | None:
    """The latest of the article's update and its notes: what a feed's `updated` should say."""
    times = [t for t in (article.updated, *(c.noted_at for c in corrections)) if t is not None]
    return max(times, default=None)


# -- what the editor sees (`articles show`) ----------------------------------------------


def _when(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def detail_lines(detail: ArticleDetail, tz: tzinfo) -> list[str]:
    """`articles show` as lines: the headline block, dateline, byline, issue, status,
    then every withdrawal, correction and earlier revision on record. Times in the
    paper's zone, to the minute."""
    a = detail.article
    lines = [f"{a.id}  {a.date.isoformat()}"]
    if a.kicker:
        lines.append(_("kicker:    {text}").format(text=a.kicker))
    lines.append(_("title:     {text}").format(text=a.title))
    if a.subtitle:
        lines.append(_("subtitle:  {text}").format(text=a.subtitle))
    lines.append(_("dateline:  {text}").format(text=a.dateline or "-"))
    lines.append(_("byline:    {text}").format(text=credit_line(a.byline) or "-"))
    lines.append(_("section:   {text}").format(text=a.section or "-"))
    lines.append(_("source:    {file}, article {n}").format(file=a.source or "-", n=a.position + 1))
    lines.append(
        _("issue:     {n}").format(n=a.issue) if a.issue is not None
        else _("issue:     none yet")
    )
    lines.append(_("revision:  {n}").format(n=a.revision))
    lines.append(_("status:    {status}").format(status=detail.status.label))
    for w in detail.withdrawals:
        lines.append(_("withdrawn: {when} by {who}: {reason}").format(
            when=_when(w.when, tz), who=w.by, reason=w.reason))
        if w.restored_at is not None:
            lines.append(_("restored:  {when} by {who}").format(
                when=_when(w.restored_at, tz), who=w.restored_by or "-"))
    for c in detail.corrections:
        lines.append(_("corrected: {when}, revision {n}: {note}").format(
            when=_when(c.when, tz), n=c.revision, note=c.note or _("(no note yet)")))
    for r in detail.revisions:
        lines.append(_("earlier:   revision {n}, stored {when}: {title}").format(
            n=r.revision, when=_when(r.saved, tz), title=r.content.get("title", "")))
    return lines
