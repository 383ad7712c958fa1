"""Assemble: the articles no issue holds yet → the next numbered Issue, or why not.

Pure: it takes the unissued articles, the last issue number and `now`, and
returns a Plan; the Newsroom records the issue and writes its manifest.
Numbers only go up (last + 1), so an issue number is never reused, and the
articles offered are only those in no issue, so none is ever in two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from .archive import RenderReport
from .config import IssueConfig, PaperConfig
from .fragments import display_date
from .i18n import _, ngettext
from .models import Article, Issue

_MANIFEST = re.compile(r"^(\d{4,})\.json$")


@dataclass(frozen=True)
class Plan:
    """What assemble decided: the issue to make (or None), and why."""

    issue: Issue | None
    reason: str
    #: Unissued articles left for a later issue (beyond max_articles, or all of them).
    waiting: int = 0


@dataclass(frozen=True)
class AssembleResult:
    """What `Newsroom.assemble` did; `to_json` is the shape `assemble --json` promises."""

    plan: Plan
    dry_run: bool = False
    render: RenderReport | None = None
    #: With issue.approval = "required": the issue waits for an editor (review.py).
    awaiting_approval: bool = False
    proof_to: tuple[str, ...] = ()  # the editors the proof reached
    proof_failed: tuple[tuple[str, str], ...] = ()  # (editor, why) it did not reach

    @property
    def issue(self) -> Issue | None:
        return self.plan.issue

    @property
    def reason(self) -> str:
        if self.dry_run and self.plan.issue is not None:
            return _("dry run: would make {plan}; nothing written").format(plan=self.plan.reason)
        if self.awaiting_approval and self.plan.issue is not None:
            number = self.plan.issue.number
            text = _("{plan}; waiting for an editor's approval").format(plan=self.plan.reason)
            if self.proof_to:
                text += _(" (proof mailed to {editors})").format(editors=", ".join(self.proof_to))
            if self.proof_failed:
                text += _("; the proof did not reach {editors}").format(
                    editors=", ".join(e for e, _why in self.proof_failed))
            return text + _("; `gongbao-feed approve {n}` releases it").format(n=number)
        return self.plan.reason

    def to_json(self) -> dict[str, Any]:
        issue = self.plan.issue
        data: dict[str, Any] = {
            "issue": issue.number if issue else None,
            "articles": list(issue.article_ids) if issue else [],
            "reason": self.reason,
        }
        if self.awaiting_approval:
            data["awaiting_approval"] = True
            data["proof"] = {"sent": list(self.proof_to), "failed": [
                {"email": e, "error": why} for e, why in self.proof_failed]}
        return data


def publication_order(article: Article) -> tuple[date, str, int, str]:
    """Date, then page (source file), then place on the page: the order the store keeps."""
    return (article.date, article.source, article.position, article.id)


def issue_title(template: str, paper: str, number: int, day: date) -> str:
    """The issue's title from the [issue] title template."""
    return template.format(paper=paper, number=number, date=display_date(day))


def plan_issue(
    unissued: Sequence[Article],
    last_number: int,
    now: datetime,
    settings: IssueConfig,
    paper: PaperConfig,
    tz: tzinfo,
    force: bool = False,
) -> Plan:
    """The next issue from the articles in no issue yet, oldest first.

    Takes at most `max_articles`; fewer than `min_articles` makes no issue
    unless `force`. Nothing new never makes an issue, forced or not.
    """
    pending = sorted(unissued, key=publication_order)
    if not pending:
        return Plan(None, _("no new articles since issue {number}").format(number=last_number)
                    if last_number else _("no new articles to publish"))
    chosen = pending[: settings.max_articles]
    if len(chosen) < settings.min_articles and not force:
        return Plan(
            None,
            ngettext("{n} article waiting, fewer than issue.min_articles = {min}; "
                     "no issue made (--force makes one anyway)",
                     "{n} articles waiting, fewer than issue.min_articles = {min}; "
                     "no issue made (--force makes one anyway)",
                     len(chosen)).format(n=len(chosen), min=settings.min_articles),
            waiting=len(pending),
        )
    number = last_number + 1
    day = now.astimezone(tz).date()
    issue = Issue(
        number=number,
        date=day,
        title=issue_title(settings.title, paper.name, number, day),
        article_ids=tuple(a.id for a in chosen),
        created=now.astimezone(tz),
    )
    left = len(pending) - len(chosen)
    reason = ngettext("issue {number} with {n} article", "issue {number} with {n} articles",
                      len(chosen)).format(number=number, n=len(chosen))
    if left:
        reason = ngettext(
            "{reason}; {n} article waits for the next issue (issue.max_articles = {max})",
            "{reason}; {n} articles wait for the next issue (issue.max_articles = {max})",
            left,
        ).format(reason=reason, n=left, max=settings.max_articles)
    elif force and len(chosen) < settings.min_articles:
        reason = _("{reason} (forced past issue.min_articles = {min})").format(
            reason=reason, min=settings.min_articles)
    return Plan(issue, reason, waiting=left)


# -- manifests ----------------------------------------------------------------


def manifest_name(number: int) -> str:
    """issues/NNNN.json: four digits, more once the paper passes issue 9999."""
    return f"{number:04d}.json"


def manifest_bytes(issue: Issue) -> bytes:
    """The issue's manifest: number, date, title, article ids, created time."""
    return (json.dumps(issue.to_json(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def last_manifest_number(names: Iterable[str]) -> int:
    """The highest issue number among manifest file names (0 when none).

    Counted along with the store's, so a lost or replaced database never
    hands out a number a published manifest already has.
    """
    return max((int(m[1]) for n in names if (m := _MANIFEST.match(n))), default=0)
