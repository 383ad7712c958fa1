"""The library API: one object per working folder, one method per stage.

The CLI and the scheduler are thin layers over `Newsroom`; a user can import
it and drive the same stages from Python. The clock is injected, so tests
and reruns can fix "now".
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from . import deliver, ledger, tokens, urls
from .archive import RenderReport, environment, render_archive
from .assemble import (
    AssembleResult,
    Plan,
    last_manifest_number,
    manifest_bytes,
    manifest_name,
    plan_issue,
)
from .bounces import Kind, Verdict, classify
from .config import Config, load_config
from .deliver import SendReport, make_transport
from .digest import (
    Digest,
    Mailer,
    email_environment,
    personalise,
    proof_digest,
    render_digest,
)
from .editorial import (
    ArticleDetail,
    ArticleSummary,
    Correction,
    Decisions,
    Withdrawal,
    operator,
    status_of,
    summarise,
)
from .errors import (
    AssembleError,
    BounceError,
    DeliveryError,
    GongbaoError,
    MemberError,
    StoreError,
)
from .feeds import FeedIds, mint_ids, render_feeds
from .files import atomic_write
from .fragments import clean_article
from .i18n import _, ngettext, os_reason
from .ingest import IngestReport, inbox_files, ingest
from .ledger import LedgerSummary
from .mailboxes import BounceSource, Incoming, open_source
from .members import ImportReport, clean_name, merge_member, normalise_email, read_members_sheet
from .models import Article, DeliveryState, Issue, Member, MemberStatus, mailbox_key
from .review import (
    PROOF_SUBJECT_PREFIX,
    Approval,
    ArticleRef,
    Problem,
    SendCheck,
    check_digest,
    check_feeds,
    check_size,
    describe,
)
from .sections import SLUG_KIND, assign_slugs, section_names
from .signing import Signer, signer_for
from .skeleton import builtin_templates
from .store import Store
from .tokens import BadToken, load_secret, read_verp_token, verify, verp_tag
from .transport import Outcome, Transport

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PublishReport:
    """What one publish did: ingest, assemble (which renders), send.

    `send` is None when no issue was made: nothing new is never mailed.
    `stopped` says the stop signal cut the send short; the members not
    reached get the issue from the next `send` (or the service's next start).
    """

    ingest: IngestReport
    assemble: AssembleResult
    send: SendReport | None = None
    stopped: bool = False

    @property
    def issue(self) -> Issue | None:
        return self.assemble.issue

    @property
    def problems(self) -> bool:
        """Worth a warning in the log: a page that failed, a message that failed, a stop."""
        failed = self.send is not None and bool(self.send.failed)
        return bool(self.ingest.failed) or failed or self.stopped

    def summary(self) -> str:
        if self.send is None:
            return _("{reason}; nothing sent").format(reason=self.assemble.reason)
        parts = [self.assemble.reason, _("{n} sent").format(n=self.send.sent)]
        if self.send.failed:
            parts.append(_("{n} failed").format(n=len(self.send.failed)))
        if self.stopped:
            parts.append(_("stopped early: the rest go out with the next `send` or "
                           "service start"))
        return _("; ").join(parts)

    def log_fields(self) -> dict[str, object]:
        render = self.assemble.render
        issue = self.issue
        return {
            "issue": issue.number if issue else None,
            "articles": len(issue.article_ids) if issue else 0,
            "ingested": self.ingest.new + self.ingest.updated,
            "bad_pages": len(self.ingest.failed) or None,
            "gone": len(self.ingest.gone) or None,
            "rendered": len(render.written) if render else 0,
            "sent": self.send.sent if self.send else 0,
            "failed": len(self.send.failed) if self.send else 0,
            "skipped": self.send.skipped if self.send else None,
            "stopped": "yes" if self.stopped else None,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "ingest": self.ingest.to_json(),
            "assemble": self.assemble.to_json(),
            "rendered": self.assemble.render.to_json() if self.assemble.render else None,
            "send": self.send.to_json() if self.send else None,
            "stopped": self.stopped,
            "summary": self.summary(),
        }


def _remove_stale_sections(public: Path, current: set[str]) -> None:
    """Remove the files render wrote for sections that have no article any more.

    A section goes when its articles move to another one (a `[sections]`
    pattern or a page header changed) or its slug is configured anew: its
    feeds and page would otherwise stand frozen, still found by readers and
    search engines. Only the files render writes there are removed (then the
    folder, if that left it empty); anything else put there stays.
    """
    root = public / urls.SECTIONS_DIR
    if not root.is_dir():
        return
    own = [urls.INDEX_PATH, *(urls.FEED_FILES[k] for k in urls.SECTION_FEEDS)]
    for folder in root.iterdir():
        if folder.name in current or not folder.is_dir():
            continue
        for name in own:
            (folder / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


@dataclass(frozen=True)
class Unclassified:
    """A message left in the bounce mailbox: where it is, its subject, and why."""

    name: str
    subject: str
    reason: str


@dataclass
class BounceReport:
    """What one read of the bounce mailbox did. `to_json` is the interface's shape.

    `changes`: (address, new status, why) for each member it moved off the
    active list; `repeated`: messages recorded by an earlier run (only moved).
    """

    source: str = ""
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    unclassified: list[Unclassified] = field(default_factory=list)
    changes: list[tuple[str, MemberStatus, str]] = field(default_factory=list)
    repeated: int = 0

    def count(self, kind: Kind) -> None:
        name = {Kind.HARD: "hard", Kind.SOFT: "soft", Kind.COMPLAINT: "complaints",
                Kind.UNSUBSCRIBE: "unsubscribes"}[kind]
        setattr(self, name, getattr(self, name) + 1)

    def to_json(self) -> dict[str, int]:
        return {"hard": self.hard, "soft": self.soft, "complaints": self.complaints,
                "unsubscribes": self.unsubscribes, "unclassified": len(self.unclassified)}


class _MemberFinder:
    """The member a verdict names, best evidence first (see bounces.py): a VERP token,
    an unsubscribe token, then the addresses the report names that are members."""

    def __init__(self, store: Store, key: bytes) -> None:
        self.store = store
        self.key = key
        self._by_tag: dict[int, dict[bytes, str]] = {}

    def find(self, verdict: Verdict) -> tuple[Member, int | None] | None:
        for token in verdict.verp:
            try:
                claims = read_verp_token(token)
            except BadToken:
                continue
            email = self._tags(claims.issue).get(claims.tag)
            member = self.store.member(email) if email else None
            if member is not None:
                return member, claims.issue
        for token in verdict.tokens:
            try:
                named = verify(self.key, token)
            except BadToken:
                continue
            member = self.store.member(named.email)
            if member is not None:
                return member, named.issue
        if verdict.kind is Kind.UNSUBSCRIBE:
            addresses: tuple[str, ...] = (verdict.sender,) if verdict.sender else ()
        else:
            addresses = verdict.recipients
        for address in addresses:
            member = self.store.member(address)
            if member is not None:
                return member, None
        return None

    def _tags(self, issue: int) -> dict[bytes, str]:
        """Every member's VERP tag for this issue, computed once a run (~2 µs a member)."""
        if issue not in self._by_tag:
            self._by_tag[issue] = {
                verp_tag(self.key, m.email, issue): m.email for m in self.store.iter_members()
            }
        return self._by_tag[issue]


class Newsroom:
    """A working folder: its config, its store and its clock."""

    def __init__(
        self, config: Config, clock: Clock = system_clock, transport: Transport | None = None
    ) -> None:
        """`transport` replaces the one the config names (tests pass a RecordingTransport)."""
        self.config = config
        self.clock = clock
        self._transport = transport
        self._store: Store | None = None

    @classmethod
    def open(cls, config_path: Path | str | None = None, clock: Clock = system_clock) -> Newsroom:
        return cls(load_config(config_path), clock)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.config.database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Newsroom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        """Today in the paper's time zone, not the server's."""
        return self.now().astimezone(self.config.tz).date()

    # -- stages ---------------------------------------------------------------
    def ingest(
        self, paths: Iterable[Path] | None = None, on_date: date | None = None
    ) -> IngestReport:
        """Read pages (default: the whole inbox) into the store."""
        files = list(paths) if paths is not None else inbox_files(self.config.inbox)
        report = ingest(
            self.store, files, explicit_date=on_date, today=self.today(), now=self.now(),
            sections=self.config.sections.files,
        )
        if paths is None and not files:
            report.empty_inbox = self.config.inbox
        return report

    def assemble(self, dry_run: bool = False, force: bool = False) -> AssembleResult:
        """Gather the articles in no issue into the next issue, then render.

        The manifest issues/NNNN.json is written inside the store's
        transaction, so either both exist or neither does. `dry_run` reports
        what the issue would hold and writes nothing. When another run (an
        `assemble`, the service's publish, on this machine or another) made an
        issue of these articles first, this one makes none and says so.
        """
        # The articles first, the numbers after: an issue another run makes between
        # the two reads is then counted in `last`, never missed by both.
        unissued = self.store.unissued_articles()
        manifests = self.config.issues_dir
        names = [p.name for p in manifests.iterdir()] if manifests.is_dir() else []
        last = max(self.store.last_issue_number(), last_manifest_number(names))
        plan = plan_issue(
            unissued, last, self.now(), self.config.issue, self.config.paper, self.config.tz,
            force=force,
        )
        if dry_run:
            return AssembleResult(plan, dry_run=True)
        if plan.issue is not None:
            try:
                self.store.add_issue(plan.issue, publish=self._write_manifest)
            except StoreError:
                plan = self._made_by_another_run(plan.issue) or plan
                if plan.issue is not None:
                    raise
        result = AssembleResult(plan, render=self.render())
        if plan.issue is not None and self.config.issue.approval == "required":
            result = self._ask_for_approval(result, plan.issue)
        return result

    def _ask_for_approval(self, result: AssembleResult, issue: Issue) -> AssembleResult:
        """Record that `issue` waits for an editor, then mail each editor the proof.

        The record comes first: a proof that fails to go out never lets the
        issue reach the members unapproved. A transport that fails outright
        (the relay refuses the login) is reported as the proof not reaching
        anyone, not raised: the issue is made and rendered either way.
        """
        editors = tuple(self.config.issue.editors)
        self.store.request_approval(issue.number, self.now(), editors)
        try:
            sent, failed = self.mail_proofs(issue.number)
        except GongbaoError as exc:
            sent, failed = [], [(e, exc.message) for e in editors]
        return replace(result, awaiting_approval=True, proof_to=tuple(sent),
                       proof_failed=tuple(failed))

    def _made_by_another_run(self, planned: Issue) -> Plan | None:
        """After add_issue refused `planned`: if another run put its articles in an
        issue meanwhile, the plan that says so (no issue); None for any other refusal."""
        taken = sorted({a.issue for a in self.store.articles(planned.article_ids)
                        if a.issue is not None})
        if not taken:
            return None
        numbers = ", ".join(map(str, taken))
        waiting = len(self.store.unissued_articles())
        rest = (ngettext("{n} more article waits for the next assemble",
                         "{n} more articles wait for the next assemble", waiting)
                .format(n=waiting) if waiting else _("nothing to assemble"))
        made = ngettext("issue {numbers} was just made by another run; {rest}",
                        "issues {numbers} were just made by another run; {rest}", len(taken))
        return Plan(None, made.format(numbers=numbers, rest=rest), waiting=waiting)

    def _write_manifest(self, issue: Issue) -> None:
        path = self.config.issues_dir / manifest_name(issue.number)
        if path.exists():
            raise AssembleError(
                _("{path} already exists; issue numbers are never reused").format(path=path),
                hint=_("move that file away only if it was never published"),
            )
        atomic_write(path, manifest_bytes(issue))

    def feed_files(self) -> dict[str, bytes]:
        """The main feeds as `render` writes them (file name → bytes), without writing."""
        issues = self.store.issues(newest_first=False)
        articles = [a for a in self.store.all_articles() if a.issue is not None]
        return render_feeds(
            articles, issues, self.config, self._feed_ids(articles, issues), self.decisions()
        )

    def render(self) -> RenderReport:
        """Write the feeds and the web archive; files whose bytes are unchanged stay untouched."""
        issues = self.store.issues(newest_first=False)
        articles = [a for a in self.store.all_articles() if a.issue is not None]
        decisions = self.decisions()
        sections = self.section_slugs(articles)
        env = environment([self.config.templates_dir / "web", builtin_templates() / "web"])
        files = {
            **render_feeds(
                articles, issues, self.config, self._feed_ids(articles, issues, sections),
                decisions, sections,
            ),
            **render_archive(issues, articles, self.config, env, decisions, sections),
        }
        public = self.config.public_dir
        written = tuple(
            path for path, data in files.items()
            if atomic_write(public / path, data, durable=False)
        )
        _remove_stale_sections(public, set(sections.values()))
        return RenderReport(written, len(files) - len(written))

    def section_slugs(self, articles: Sequence[Article]) -> dict[str, str]:
        """Every section of these (published) articles → its slug, in order of first
        appearance; slugs made now are stored, so they never change (see sections.py)."""
        names = section_names(articles)
        configured = self.config.sections.slugs
        stored = self.store.feed_ids(SLUG_KIND)
        slugs = assign_slugs(names, configured, stored)
        fresh = {n: s for n, s in slugs.items() if n not in configured and n not in stored}
        if fresh:
            kept = self.store.keep_feed_ids(SLUG_KIND, fresh, self.clock())
            if kept != fresh:  # another render stored some first: theirs stand
                slugs = assign_slugs(names, configured, self.store.feed_ids(SLUG_KIND))
        return slugs

    def _feed_ids(
        self, articles: Sequence[Article], issues: Sequence[Issue],
        sections: dict[str, str] | None = None,
    ) -> FeedIds:
        """The feed ids of everything about to be published: stored ones, and for the
        rest ids minted now and stored before any feed carries them (see feeds.FeedIds)."""
        store, now = self.store, self.clock()
        known = FeedIds(
            articles=store.feed_ids("article"),
            issues={int(k): v for k, v in store.feed_ids("issue").items()},
            feeds=store.feed_ids("feed"),
        )
        minted = mint_ids(articles, issues, self.config, known, sections)

        def kept(kind: str, ids: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
            # Only ids minted now are stored (nothing is written when none are new);
            # one another render stored first stands.
            theirs = store.keep_feed_ids(kind, {k: v for k, v in ids.items()
                                                if k not in stored}, now)
            return {k: theirs.get(k, v) for k, v in ids.items()}

        issue_ids = kept("issue", {str(n): v for n, v in minted.issues.items()},
                         {str(n): v for n, v in known.issues.items()})
        return FeedIds(
            articles=kept("article", dict(minted.articles), known.articles),
            issues={int(k): v for k, v in issue_ids.items()},
            feeds=kept("feed", dict(minted.feeds), known.feeds),
        )

    # -- articles as an editor sees them (editorial.py) ---------------------------
    def decisions(self) -> Decisions:
        """The active withdrawals and every correction, for a render."""
        corrections: dict[str, list[Correction]] = {}
        for c in self.store.corrections():
            corrections.setdefault(c.article_id, []).append(c)
        return Decisions(
            withdrawn={w.article_id: w for w in self.store.withdrawals()},
            corrections=corrections,
        )

    def list_articles(
        self, issue: int | None = None, section: str | None = None
    ) -> list[ArticleSummary]:
        """Every stored article in publication order, or those of one issue (in its order)
        or one section; each with its status and revision."""
        if issue is not None:
            articles = self.store.articles(self.issue(issue).article_ids)
        else:
            articles = self.store.all_articles()
        if section is not None:
            articles = [a for a in articles if a.section == section]
        withdrawn = {w.article_id for w in self.store.withdrawals()}
        return [summarise(a, a.id in withdrawn) for a in articles]

    def article_detail(self, article_id: str) -> ArticleDetail:
        """One article with its status, withdrawals, corrections and earlier texts."""
        article = self.store.article(article_id)
        if article is None:
            raise StoreError(
                _("there is no article {id}").format(id=article_id),
                hint=_("`gongbao-feed articles list` shows every article's id"),
            )
        withdrawals = self.store.withdrawals(article_id, active_only=False)
        active = bool(withdrawals) and withdrawals[-1].active
        return ArticleDetail(
            article=article,
            status=status_of(article, active),
            withdrawals=withdrawals,
            corrections=self.store.corrections(article_id),
            revisions=self.store.revisions(article_id),
        )

    def withdraw(self, article_id: str, reason: str, by: str | None = None) -> Withdrawal:
        """Withdraw an article (撤稿), recorded with who, when and why, then render.

        In no issue yet: it never goes into one. In an issue: retracted (see
        editorial.py for what readers, feeds and members see). Raises
        StoreError for an unknown or already withdrawn article or an empty reason.
        """
        reason = reason.strip()
        if not reason:
            raise StoreError(
                _("a withdrawal needs a reason"),
                hint=_("readers see it: --reason \"…\" says why the article was withdrawn"),
            )
        withdrawal = self.store.withdraw(article_id, self.now(), operator(by), reason)
        self.render()
        return withdrawal

    def restore(self, article_id: str, by: str | None = None) -> Withdrawal:
        """Undo a withdrawal: the article is back wherever it was, then render."""
        withdrawal = self.store.restore(article_id, self.now(), operator(by))
        self.render()
        return withdrawal

    def note(self, article_id: str, text: str, by: str | None = None) -> Correction:
        """The editor's words for an article's correction note (更正), then render.

        Only an article already in an issue has readers to tell; before that a
        change is simply the article. Raises StoreError otherwise.
        """
        text = text.strip()
        article = self.store.article(article_id)
        if article is None:
            raise StoreError(
                _("there is no article {id}").format(id=article_id),
                hint=_("`gongbao-feed articles list` shows every article's id"),
            )
        if article.issue is None:
            raise StoreError(
                _("article {id} is in no issue yet, so there is no correction to note").format(
                    id=article_id),
                hint=_("change the page or the Markdown file and ingest it again"),
            )
        if not text:
            raise StoreError(_("the correction note is empty"))
        correction = self.store.note_correction(article_id, text, self.now(), operator(by))
        self.render()
        return correction

    def publish(self, stop: threading.Event | None = None) -> PublishReport:
        """Ingest the inbox, assemble the next issue (which renders), mail it.

        The one entry point for the scheduler and `run --once`. With nothing
        new, no issue is made and nothing is sent. With issue.approval =
        "required" the new issue goes to the editors as a proof and waits
        (see `approve` and `approved_unsent`). `stop` ends the send after
        the message in flight, recorded.
        """
        ingested = self.ingest()
        assembled = self.assemble()
        if assembled.issue is None or assembled.awaiting_approval:
            return PublishReport(ingested, assembled)
        sent = self.send(issue=assembled.issue.number, stop=stop)
        return PublishReport(ingested, assembled, sent, stopped=stop is not None and stop.is_set())

    # -- members --------------------------------------------------------------
    def import_members(self, path: Path, resubscribe: bool = False) -> ImportReport:
        """Add or update the members in a sheet (CSV or .xlsx); bad rows are reported by
        line (row, in a workbook) and skipped.

        A member is found by mailbox, whatever its capitals: one already on
        file keeps their spelling. A member who unsubscribed stays
        unsubscribed unless `resubscribe`.
        """
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MemberError(_("{path}: cannot read: {reason}").format(
                path=path, reason=os_reason(exc))) from None
        try:
            sheet = read_members_sheet(data)
        except MemberError as exc:
            raise MemberError(f"{path}: {exc.message}", hint=exc.hint) from None
        now = self.now()
        known = {mailbox_key(m.email): m for m in self.store.members()}
        report = ImportReport(
            failed=list(sheet.failed), warnings=list(sheet.warnings), merged=sheet.duplicates,
            unit=sheet.unit, encoding=sheet.encoding,
        )
        members = []
        for row in sheet.rows:
            existing = known.get(mailbox_key(row.email))
            member = merge_member(existing, row.email, row.name, now, resubscribe=resubscribe)
            members.append(member)
            if existing is not None:
                report.merged += 1
                if member == existing:
                    report.unchanged += 1
                else:
                    report.changed += 1
            else:
                report.imported += 1
            if member.status is MemberStatus.UNSUBSCRIBED:
                report.still_unsubscribed += 1
        self.store.save_members(members)
        return report

    def add_member(self, email: str, name: str = "", resubscribe: bool = False) -> Member:
        """Add one member, or update the name of one already on the list."""
        address, clean = normalise_email(email), clean_name(name)
        member = merge_member(
            self.store.member(address), address, clean, self.now(), resubscribe=resubscribe
        )
        self.store.save_member(member)
        return member

    def remove_member(self, email: str, forget: bool = False) -> Member:
        """Stop mailing a member (their mailbox, in any spelling). The record stays,
        marked unsubscribed, so a later import does not bring them back; `forget`
        deletes it instead."""
        address = normalise_email(email)
        member = self.store.member(address)
        if member is None:
            raise MemberError(_("{address} is not on the member list").format(address=address))
        if forget:
            self.store.remove_member(address)
        else:
            self.store.unsubscribe(address, self.now(), via="removed")
        return self.store.member(address) or member

    def members(self) -> list[Member]:
        return self.store.members()

    # -- the digest -------------------------------------------------------------
    def issue(self, number: int | None = None) -> Issue:
        """Issue `number`, or the newest one."""
        if number is None:
            newest = self.store.issues(limit=1)
            if not newest:
                raise DeliveryError(_("there is no issue yet"),
                                    hint=_("run `gongbao-feed assemble`"))
            return newest[0]
        found = self.store.issue(number)
        if found is None:
            last = self.store.last_issue_number()
            raise DeliveryError(
                _("there is no issue {number}").format(number=number),
                hint=(_("the newest issue is {number}").format(number=last) if last
                      else _("run `gongbao-feed assemble`")),
            )
        return found

    def digest(self, number: int | None = None) -> Digest:
        """An issue's digest, rendered and inlined once, not yet personalised."""
        issue = self.issue(number)
        env = email_environment(
            [self.config.templates_dir / "email", builtin_templates() / "email"]
        )
        # Made at send time, so an article withdrawn since the issue was made is left out
        # of every copy not yet sent.
        withdrawn = {w.article_id for w in self.store.withdrawals()}
        held = [a for a in self.store.articles(issue.article_ids) if a.id not in withdrawn]
        return render_digest(issue, held, self.config, env)

    def preview(self, issue: int | None = None) -> Path:
        """Write the digest's HTML (and text) as a member without a name sees it."""
        digest = self.digest(issue)
        sample = Member(email="member@example.org")
        html, text = personalise(digest, sample, urls.unsubscribe_url(self.config, "preview"))
        path = self.config.state_dir / "preview" / f"digest-{digest.issue.number:04d}.html"
        atomic_write(path, html)
        atomic_write(path.with_suffix(".txt"), text)
        return path

    def signer(self) -> Signer | None:
        """The [dkim] signer for a send (the key read and checked again), or None when off."""
        return signer_for(self.config)

    def send(
        self,
        issue: int | None = None,
        via: str | None = None,
        dry_run: bool = False,
        to: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        stop: threading.Event | None = None,
        retry_failed: bool = False,
        force: bool = False,
        by: str | None = None,
    ) -> SendReport:
        """Mail an issue (default: the newest) to every active member not yet sent it.

        An issue waiting for an editor's approval is refused (DeliveryError
        saying how to approve it), whatever `force` says. Then the quality
        gate (review.py) checks the issue once, before any member is
        claimed; a failure records the verdict and raises DeliveryError
        naming the checks and articles, unless `force` (a human looked), which
        sends anyway and records `by` (default the OS user) as who forced it.

        Any number of senders may run this at once for the same issue, in
        other processes or on other machines sharing the database: each
        claims members from the ledger before sending to them (ledger.py), so
        together they reach every member once. A rerun sends exactly what is
        missing: members never claimed, claims whose sender died (after their
        lease), temporary failures, and permanent failures only with
        `retry_failed`. `to` sends one test copy (see _test_copy) and records nothing;
        `dry_run` lists who would get the issue. `progress(done, total)` is
        called as members are settled. Setting `stop` (the scheduler's
        SIGTERM) ends the send after the messages in flight, recorded; the
        rest are given back for the next sender.
        """
        digest = self.digest(issue)
        report = SendReport(digest.issue.number, subject=digest.subject, shortened=digest.shortened)
        if dry_run:
            return self._who_would_get(report, retry_failed)
        if to is None:
            self._check_approved(digest.issue)
        transport = self._transport or make_transport(self.config, via)
        mailer = Mailer(digest, self.config, load_secret(self.config.state_dir), self.now(),
                        test=to is not None, signer=self.signer())
        stop = stop if stop is not None else threading.Event()
        if to is not None:
            return self._test_copy(report, transport, mailer, to, stop)
        self._gate(digest, mailer, force, by)
        report = self._send_to_members(report, transport, mailer, stop, progress, retry_failed)
        if not stop.is_set():
            self.store.mark_sent(report.issue, self.now())
        return report

    # -- approval and the quality gate (review.py) --------------------------------------
    def needs_approval(self, issue: Issue) -> bool:
        """Whether members may not be mailed `issue` yet: its approval is on record and not
        given, or approval is required and the issue has neither an approval nor a send
        begun (an issue made before approval was switched on, mid-send, is let finish)."""
        found = self.store.approval(issue.number)
        if found is not None:
            return not found.approved
        if self.config.issue.approval != "required":
            return False
        return not self.store.deliveries(issue.number)

    def _check_approved(self, issue: Issue) -> None:
        if not self.needs_approval(issue):
            return
        found = self.store.approval(issue.number)
        since = (_(" since {when}").format(
            when=found.requested_at.astimezone(self.config.tz).isoformat(timespec="minutes"))
            if found is not None else "")
        raise DeliveryError(
            _("issue {n} is waiting for an editor's approval{since}; nothing sent").format(
                n=issue.number, since=since),
            hint=_("an editor approves it with the link in the proof ([审核]) mail, or run "
                   "`gongbao-feed approve {n}`; then the service sends it, or run "
                   "`gongbao-feed send --issue {n}` (--force does not skip approval)").format(
                       n=issue.number),
        )

    def approve(self, number: int, by: str | None = None,
                via: str = "command") -> tuple[Approval, bool]:
        """Approve issue `number` for the members: (the record, whether this approved it).

        `by` is who (default the OS user; the link gives the editor's
        address), recorded with the time. Approving twice changes nothing.
        Raises DeliveryError for an unknown issue.
        """
        self.issue(number)
        return self.store.approve(number, self.now(), operator(by), via)

    def sent_to_all(self, number: int) -> bool:
        """Whether issue `number` has gone to every member it was for (ledger.sent_to_all):
        approving it then sends nothing. Raises DeliveryError for an unknown issue."""
        return ledger.sent_to_all(self.store, self.issue(number))

    def awaiting_approval(self) -> list[Approval]:
        """The issues waiting for an editor, oldest first."""
        return self.store.approvals(awaiting=True)

    def approved_unsent(self) -> list[Approval]:
        """Approved issues whose send to the members has not run to its end: what the
        scheduler sends at its next ingest."""
        return self.store.approvals(to_send=True)

    def mail_proofs(
        self, number: int, via: str | None = None
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Mail each of issue.editors a proof of issue `number`: a test copy (its own
        Message-ID, no ledger row, the outbox's tests/ folder) tagged `[审核] `, with an
        approve link valid for issue.approval_link_days. Returns (reached, [(editor, why)])."""
        issue = self.issue(number)
        digest = self.digest(number)
        key = load_secret(self.config.state_dir)
        days = self.config.issue.approval_link_days
        expires = int((self.now() + timedelta(days=days)).timestamp())
        transport = self._transport or make_transport(self.config, via)
        messages = []
        signer = self.signer()  # proofs are signed like every other copy ([dkim])
        for editor in self.config.issue.editors:
            address = normalise_email(editor)
            token = tokens.sign_approval(key, issue.number, address, expires)
            proof = proof_digest(digest, urls.approve_url(self.config, issue.number, token), days)
            mailer = Mailer(proof, self.config, key, self.now(), test=True,
                            tag=PROOF_SUBJECT_PREFIX, signer=signer)
            messages.append(mailer.message(self.store.member(address) or Member(email=address)))
        sent: list[str] = []
        failed: list[tuple[str, str]] = []

        def record(outcome: Outcome) -> None:
            if outcome.state is DeliveryState.SENT:
                sent.append(outcome.message.email)
            else:
                failed.append((outcome.message.email, outcome.detail or _("not sent")))

        transport.deliver(messages, record, threading.Event())
        return sent, failed

    def check_issue(self, digest: Digest, mailer: Mailer) -> list[Problem]:
        """The quality gate's checks (review.py) on this digest, the feeds as `render`
        makes them, and a member's copy as `mailer` makes it; [] when all pass."""
        issue = digest.issue
        withdrawn = {w.article_id for w in self.store.withdrawals()}

        def ref(a: Article) -> ArticleRef:
            return ArticleRef(a.id, clean_article(a).title, urls.article_url(self.config, a.id))

        held = self.store.articles(issue.article_ids)
        live = [ref(a) for a in held if a.id not in withdrawn]
        gone = [ref(a) for a in held if a.id in withdrawn]
        problems = check_digest(digest.html, digest.text, live, gone)
        files = self.feed_files()
        feeds = {kind: (urls.FEED_FILES[kind], files[urls.FEED_FILES[kind]])
                 for kind in ("rss", "atom", "json")}
        newest = issue.number == self.store.last_issue_number()
        problems += check_feeds(feeds, live, gone, newest)
        sample = mailer.message(Member(email="member@example.org", name="会员"))
        problems += check_size(len(sample.data), self.config.email.size_budget_kb)
        return problems

    def _gate(self, digest: Digest, mailer: Mailer, force: bool, by: str | None) -> None:
        """Run the gate, keep its verdict; raise unless it passed or `force`."""
        number = digest.issue.number
        problems = tuple(self.check_issue(digest, mailer))
        now = self.now()
        if not problems:
            self.store.record_check(SendCheck(number, now, True))
            return
        if force:
            self.store.record_check(SendCheck(number, now, False, problems, now, operator(by)))
            return
        self.store.record_check(SendCheck(number, now, False, problems))
        raise DeliveryError(
            _("issue {n} not sent: the quality gate failed:\n  {problems}").format(
                n=number, problems=describe(problems)),
            hint=_("fix what it names (a template in templates/email/, the feeds, "
                   "email.size_budget_kb) and send again; or, once a person has looked at "
                   "`gongbao-feed preview --issue {n}`, `gongbao-feed send --issue {n} --force` "
                   "sends it anyway (recorded)").format(n=number),
        )

    def _who_would_get(self, report: SendReport, retry_failed: bool) -> SendReport:
        report.dry_run = True
        report.active = 0
        done = ledger.settled_emails(self.store, report.issue, retry_failed)
        for member in self.store.iter_members(active_only=True):
            report.active += 1
            if member.email in done:
                report.skipped += 1
            else:
                report.would_send.append((member.email, member.name))
        return report

    def _test_copy(
        self, report: SendReport, transport: Transport, mailer: Mailer, to: str,
        stop: threading.Event,
    ) -> SendReport:
        """One test copy to `to`, as that member would get it, but marked a test: its
        subject starts `[测试] `, it has a Message-ID of its own, and the outbox writes
        it to outbox/tests/NNNN/. The ledger is not touched, even for a member."""
        address = normalise_email(to)
        member = self.store.member(address) or Member(email=address)

        def record(outcome: Outcome) -> None:
            if outcome.state is DeliveryState.SENT:
                report.sent += 1
            else:
                report.failed.append((address, outcome.detail or _("not sent")))

        transport.deliver([mailer.message(member)], record, stop)
        return report

    def _send_to_members(
        self, report: SendReport, transport: Transport, mailer: Mailer, stop: threading.Event,
        progress: Callable[[int, int], None] | None, retry_failed: bool,
    ) -> SendReport:
        total = report.active = self.store.count_members(active_only=True)
        book = ledger.Ledger(
            self.store, report.issue, now=self.now, transport=transport.name,
            lease=timedelta(seconds=self.config.email.claim_lease_seconds),
            retry_failed=retry_failed, batched=transport.redelivery_replaces,
        )
        report.skipped = ledger.settled_active_count(self.store, report.issue, retry_failed)

        def settled() -> None:
            if progress is not None:
                progress(report.sent + report.skipped + len(report.failed), total)

        try:
            with self.store.activity_checker() as is_active:
                deliver.send_claimed(
                    book, transport, mailer.message, report, stop=stop, is_active=is_active,
                    progress=settled,
                )
        except GongbaoError as exc:  # a fatal stop: the caller still gets the counts so far
            report.error = exc.message
            exc.report = report
            raise
        except self.store.errors() as exc:
            error = StoreError(
                _("the database failed during the send: {reason}").format(
                    reason=" ".join(str(getattr(exc, "orig", None) or exc).split())),
                hint=_("check [database] url and that the database is up, then run "
                       "`gongbao-feed send` again: it skips every member recorded as sent"),
            )
            report.error = error.message
            error.report = report
            raise error from None
        return report

    # -- bounces, complaints and mailed unsubscribes ---------------------------------
    def process_bounces(
        self, source: BounceSource | None = None, maildir: Path | None = None
    ) -> BounceReport:
        """Read the bounce mailbox once and act on every message in it.

        `source` replaces the mailbox the config names (tests pass an
        ImapSource over a MemoryImap); `maildir` reads that Maildir instead.
        Each message is classified (bounces.classify), its member found, the
        member's status changed and the message recorded in one transaction,
        and then the message is moved aside. What cannot be acted on (not
        recognised, or naming no member) stays where it is and is reported.
        A message recorded before (its bytes' SHA-256; a crash before the
        move) is only moved: a second run changes nothing.

        What each kind does to an active member (others are left as they are):
        hard → `bounced`; soft → one more in a row, `bounced` at
        `bounces.soft_limit` (see `_soft`); complaint → unsubscribed via
        "complaint"; unsubscribe by mail → unsubscribed via "mailto".
        Raises BounceError when the mailbox cannot be read.
        """
        source = source or open_source(self.config, maildir)
        report = BounceReport(source=source.description)
        key = load_secret(self.config.state_dir)
        finder = _MemberFinder(self.store, key)
        try:
            for incoming in source.messages():
                self._one_bounce(incoming, source, finder, key, report)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise BounceError(
                _("reading the bounce mailbox {where} failed: {reason}").format(
                    where=source.description, reason=exc),
                hint=_("run `gongbao-feed bounces` again: what was processed stays processed"),
            ) from None
        finally:
            source.close()
        return report

    def _one_bounce(
        self, incoming: Incoming, source: BounceSource, finder: _MemberFinder, key: bytes,
        report: BounceReport,
    ) -> None:
        fingerprint = hashlib.sha256(incoming.data).hexdigest()
        if self.store.bounce_seen(fingerprint):
            source.done(incoming.key)
            report.repeated += 1
            return
        verdict = classify(incoming.data, self.config.email.unsubscribe_mailto)
        if verdict.kind is Kind.UNKNOWN:
            report.unclassified.append(Unclassified(incoming.name, verdict.subject,
                                                    verdict.detail))
            return
        found = finder.find(verdict)
        if found is None:
            report.unclassified.append(Unclassified(
                incoming.name, verdict.subject,
                f"a {verdict.kind} that names no member on the list"))
            return
        member, issue = found
        now = self.now()
        changed = self._bounce_effect(verdict, member, issue, now)
        recorded = self.store.record_bounce(
            fingerprint=fingerprint, received=now, kind=str(verdict.kind), email=member.email,
            issue=issue, status=verdict.status, detail=verdict.detail, source=incoming.name,
            member=changed, was=member.status,
        )
        source.done(incoming.key)
        if not recorded:
            report.repeated += 1
            return
        report.count(verdict.kind)
        if changed is not None and changed.status is not member.status:
            report.changes.append((member.email, changed.status, changed.reason or ""))

    def _bounce_effect(
        self, verdict: Verdict, member: Member, issue: int | None, now: datetime
    ) -> Member | None:
        """The member as this message leaves them; None when it changes nothing."""
        if member.status is not MemberStatus.ACTIVE:
            return None
        if verdict.kind is Kind.HARD:
            return replace(member, status=MemberStatus.BOUNCED, bounced_at=now,
                           bounce_reason=verdict.detail, soft_bounces=0)
        if verdict.kind in (Kind.COMPLAINT, Kind.UNSUBSCRIBE):
            via = "complaint" if verdict.kind is Kind.COMPLAINT else "mailto"
            return replace(member, status=MemberStatus.UNSUBSCRIBED, unsubscribed_at=now,
                           unsubscribed_via=via)
        return self._soft(member, issue, verdict, now)

    def _soft(self, member: Member, issue: int | None, verdict: Verdict,
              now: datetime) -> Member | None:
        """One more soft bounce in a row, or the first of a new row.

        Counted once per issue: a relay's "delayed" notices and its final
        failure for the same copy are one bounce. The row is broken by a
        delivery in between: when the ledger has an issue sent to the member
        after their last soft-bounced issue and before this one, and no
        bounce came for it, that copy got through, and this bounce starts a
        new row. A bounce that names no issue (no VERP address) counts as the
        next in the row.
        """
        count = member.soft_bounces + 1
        if issue is not None:
            earlier = self.store.soft_bounced_issues(member.email)
            if issue in earlier:
                return None
            before = [n for n in earlier if n < issue]
            if before and self.store.sent_between(member.email, before[0], issue):
                count = 1
        limit = self.config.bounces.soft_limit
        if count >= limit:
            # Data, like the ledger's texts: English in every locale.
            reason = f"{count} soft bounces in a row; the last: {verdict.detail}"
            return replace(member, status=MemberStatus.BOUNCED, bounced_at=now,
                           bounce_reason=reason, soft_bounces=count)
        return replace(member, soft_bounces=count)

    def deliveries(self, issue: int | None = None) -> LedgerSummary:
        """The ledger summed up: counts by state per issue, every failure with its reason."""
        if issue is not None:
            self.issue(issue)  # an unknown number is an error, not an empty table
        return ledger.summary(self.store, issue)
