"""The static web archive: issues and articles → HTML pages, by relative path.

Pure apart from reading templates through the Jinja2 loader: it returns a
mapping of path → bytes (index.html, issues/NNNN.html, articles/<id>.html,
style.css) and the Newsroom writes it. Links between pages are relative, so
the archive opens from disk in a browser as well as from the web server;
the feed links and canonical addresses are absolute, from urls.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from . import urls
from .config import Config
from .editorial import (
    Correction,
    Decisions,
    Withdrawal,
    correction_text,
    corrections_html,
    listed_in,
    retraction_html,
    retraction_text,
)
from .errors import RenderError
from .fragments import article_html, clean_article, credit_line, display_date, xml_safe
from .i18n import _
from .models import Article, Issue
from .sections import section_title

TEMPLATES = {
    "index": "index.html.j2",
    "issue": "issue.html.j2",
    "article": "article.html.j2",
    "retraction": "retraction.html.j2",
    "section": "section.html.j2",
}
#: What marks a retraction notice's page (the page now at a withdrawn article's
#: address): `serve` answers such a file with 410 Gone (web.py). Put into the
#: <head> by the renderer, not the template, so a working folder's own template
#: cannot lose it; nothing from an article can make it (all text is escaped).
RETRACTED_MARKER = '<meta name="gongbao-feed-status" content="410 Gone">'
_NOINDEX = '<meta name="robots" content="noindex">'
STATIC = (urls.STYLESHEET_PATH,)

#: The Content-Security-Policy of every archive page: its one stylesheet and
#: nothing else (no script, no inline style, no plug-in, no form, no <base>).
#: It goes into each page as <meta http-equiv> so a static web server or a CDN
#: gives the same protection as `serve`, which also sends it as a header, with
#: frame-ancestors added (a <meta> policy cannot carry that directive).
ARCHIVE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
)
_HEAD = re.compile(r"<head(?:\s[^>]*)?>", re.IGNORECASE)
_DOCTYPE = re.compile(r"\s*<!doctype[^>]*>", re.IGNORECASE)

FEED_TITLES = {
    "rss": "RSS",
    "atom": "Atom",
    "json": "JSON Feed",
    "issues": "每期目录 (Atom)",
}


@dataclass(frozen=True)
class RenderReport:
    """What a render wrote: changed files by path; identical ones were left alone."""

    written: tuple[str, ...]
    unchanged: int

    def to_json(self) -> dict[str, Any]:
        return {"written": list(self.written), "unchanged": self.unchanged}


def environment(search_path: Sequence[Path]) -> jinja2.Environment:
    """Templates from the first folder that has each one (the working folder, then built-ins)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search_path]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_archive(
    issues: Sequence[Issue],
    articles: Sequence[Article],
    config: Config,
    env: jinja2.Environment,
    decisions: Decisions | None = None,
    sections: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """Every archive page, by its path under the public folder.

    `decisions` (editorial.py): a withdrawn article's page becomes a
    retraction notice and its issue lists it as withdrawn; a corrected
    article carries its dated notes, and the next issue's page lists them.
    `sections`: section name → slug, in the sections' order: each gets its
    page (sections/<slug>/index.html, its articles newest first), the front
    page lists them, and an article's page and its section's page advertise
    the section's Atom feed (<link rel="alternate">) with the paper's feeds.
    """
    decisions = decisions or Decisions()
    sections = sections or {}
    by_id = {a.id: clean_article(a) for a in articles}
    ordered = sorted(issues, key=lambda i: i.number)
    listed = listed_in([c for cs in decisions.corrections.values() for c in cs], ordered)
    pages: dict[str, bytes] = {}
    for name in STATIC:
        pages[name] = _static(env, name)
    pages[urls.INDEX_PATH] = _page(
        env, "index", urls.INDEX_PATH, config,
        issues=[_issue_view(i, by_id, urls.INDEX_PATH, decisions, toc=n == 0)
                for n, i in enumerate(reversed(ordered))],
        sections=_sections_view(sections, urls.INDEX_PATH, config),
    )
    issue_of = {aid: issue for issue in ordered for aid in issue.article_ids}
    for name, slug in sections.items():
        path = urls.section_path(slug)
        own = [a for a in by_id.values() if a.section == name and a.id in issue_of]
        # Newest issue first; within an issue, in its order.
        own.sort(key=lambda a: (-issue_of[a.id].number, issue_of[a.id].article_ids.index(a.id)))
        pages[path] = _page(
            env, "section", path, config,
            section={"name": name, "title": section_title(config.paper.name, name),
                     "count": sum(1 for a in own if not decisions.is_withdrawn(a.id))},
            articles=[_article_view(a, issue_of[a.id], path, config, 2, decisions)
                      for a in own],
            extra_feeds=_section_feeds(config, name, slug),
        )
    for n, issue in enumerate(ordered):
        path = urls.issue_path(issue.number)
        neighbours = {
            "previous": _issue_view(ordered[n - 1], by_id, path, decisions) if n else None,
            "next": (_issue_view(ordered[n + 1], by_id, path, decisions)
                     if n + 1 < len(ordered) else None),
        }
        pages[path] = _page(
            env, "issue", path, config,
            issue=_issue_view(issue, by_id, path, decisions, toc=True),
            articles=[_article_view(by_id[i], issue, path, config, 2, decisions)
                      for i in issue.article_ids if i in by_id],
            corrections=[
                _correction_view(c, by_id[c.article_id], path, config)
                for c in listed.get(issue.number, ()) if c.article_id in by_id
                and not decisions.is_withdrawn(c.article_id)
            ],
            **neighbours,
        )
        for aid in issue.article_ids:
            if aid not in by_id:
                continue
            apath = urls.article_path(aid)
            withdrawal = decisions.withdrawn.get(aid)
            if withdrawal is not None:
                pages[apath] = _page(
                    env, "retraction", apath, config,
                    notice=_retraction_view(by_id[aid], withdrawal, config),
                    issue=_issue_view(issue, by_id, apath, decisions),
                )
                continue
            section = by_id[aid].section
            slug = sections.get(section) if section else None
            pages[apath] = _page(
                env, "article", apath, config,
                article={**_article_view(by_id[aid], issue, apath, config, 1, decisions),
                         "section_href": urls.relative(apath, urls.section_path(slug))
                         if slug else None},
                issue=_issue_view(issue, by_id, apath, decisions),
                extra_feeds=_section_feeds(config, section, slug) if slug and section else [],
            )
    return pages


def _issue_view(
    issue: Issue, by_id: Mapping[str, Article], here: str, decisions: Decisions,
    toc: bool = False,
) -> dict[str, Any]:
    """An issue for a template; its table of contents only where the page shows one.

    `count` is the articles readers can still read; a withdrawn one stays in
    the contents, marked `withdrawn`, so the issue shows what happened to it.
    """
    held = [by_id[i] for i in issue.article_ids if i in by_id]
    return {
        "number": issue.number,
        "title": xml_safe(issue.title),
        "date": display_date(issue.date),
        "iso_date": issue.date.isoformat(),
        # The default issue.title already holds the date: a list shows it once.
        "dated": display_date(issue.date) in issue.title,
        "href": urls.relative(here, urls.issue_path(issue.number)),
        "count": sum(1 for a in held if not decisions.is_withdrawn(a.id)),
        "toc": [] if not toc else [
            {
                "title": a.title,
                "kicker": a.kicker,
                "credits": credit_line(a.byline),
                "href": urls.relative(here, urls.article_path(a.id)),
                "anchor": a.id,
                "withdrawn": decisions.is_withdrawn(a.id),
            }
            for a in held
        ],
    }


def _article_view(
    article: Article, issue: Issue, here: str, config: Config, heading: int,
    decisions: Decisions,
) -> dict[str, Any]:
    """An article for a template. A withdrawn one's `html` is its retraction notice (so a
    working folder's older issue template shows the notice, not the text); a corrected
    one's ends with its correction notes."""
    withdrawal = decisions.withdrawn.get(article.id)
    notes = decisions.corrections.get(article.id, ())
    if withdrawal is not None:
        html = retraction_html(article, withdrawal, config.tz)
    else:
        html = article_html(article, heading=heading)
        if notes:
            html = html + Markup("\n") + corrections_html(notes, config.tz)
    return {
        "id": article.id,
        "title": article.title,
        "section": article.section,
        "date": display_date(article.date),
        "iso_date": article.date.isoformat(),
        "html": html,
        "href": urls.relative(here, urls.article_path(article.id)),
        "issue_href": urls.relative(here, urls.issue_path(issue.number)) + f"#{article.id}",
        "withdrawn": withdrawal is not None,
        "corrections": [correction_text(c, config.tz) for c in notes] if not withdrawal else [],
    }


def _section_feeds(config: Config, name: str, slug: str) -> list[dict[str, str]]:
    """The section's Atom feed, as a page's <link rel="alternate"> and footer show it."""
    return [{
        "href": urls.public_url(config, urls.section_feed_path(slug, "atom")),
        "type": urls.FEED_TYPES["atom"],
        "title": f"{name} (Atom)",
    }]


def _sections_view(sections: Mapping[str, str], here: str, config: Config) -> list[dict[str, str]]:
    """The sections as the front page lists them: name, page, Atom feed."""
    return [
        {
            "name": name,
            "href": urls.relative(here, urls.section_path(slug)),
            "feed": urls.public_url(config, urls.section_feed_path(slug, "atom")),
        }
        for name, slug in sections.items()
    ]


def _retraction_view(article: Article, withdrawal: Withdrawal, config: Config) -> dict[str, Any]:
    """What a retraction notice shows: the title, the date of the withdrawal, the reason."""
    when = withdrawal.when.astimezone(config.tz)
    return {
        "title": article.title,
        "date": display_date(when.date()),
        "iso_date": when.date().isoformat(),
        "article_date": display_date(article.date),
        "reason": xml_safe(withdrawal.reason).strip(),
        "text": retraction_text(article, withdrawal, config.tz),
    }


def _correction_view(
    correction: Correction, article: Article, here: str, config: Config
) -> dict[str, Any]:
    """A correction as the next issue's page lists it: the article linked, the note."""
    return {
        "title": article.title,
        "href": urls.relative(here, urls.article_path(article.id)),
        "text": correction_text(correction, config.tz),
    }


def _page(
    env: jinja2.Environment, kind: str, here: str, config: Config,
    extra_feeds: Sequence[dict[str, str]] = (), **context: Any,
) -> bytes:
    """One page. `extra_feeds` (a section's) follow the paper's feeds in `feeds`, so a
    working folder's own base template, which loops over them, advertises them too."""
    paper = config.paper
    common = {
        "paper": {
            "name": xml_safe(paper.name),
            "description": xml_safe(paper.description),
            "language": paper.language,
        },
        "feeds": [
            {"href": urls.feed_url(config, k), "type": urls.FEED_TYPES[k], "title": t}
            for k, t in FEED_TITLES.items()
        ] + list(extra_feeds),
        "home": urls.relative(here, urls.INDEX_PATH),
        "stylesheet": urls.relative(here, urls.STYLESHEET_PATH),
        # `serve`'s signup form (web.py); none when [signup] enabled = false.
        "signup": urls.relative(here, urls.SIGNUP_PATH) if config.signup.enabled else "",
        "canonical": urls.public_url(config, here),  # the page's public address
    }
    name = TEMPLATES[kind]
    try:
        html = env.get_template(name).render({**common, **context})
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(
            _("{template}, line {line}: {reason}").format(
                template=exc.filename or name, line=exc.lineno, reason=exc.message),
            hint=_("fix the template, or delete it to use the built-in one"),
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise RenderError(
            _("template {name} not found in templates/web").format(name=exc.name),
            hint=_("copy it from a fresh `gongbao-feed init` folder"),
        ) from None
    except jinja2.TemplateError as exc:
        raise RenderError(
            f"templates/web/{name}: {exc}",
            hint=_("check the names the template uses against the built-in one"),
        ) from None
    if kind == "retraction":
        html = _in_head(html, RETRACTED_MARKER + "\n" + _NOINDEX)
    return with_policy(html).encode("utf-8")


def with_policy(html: str) -> str:
    """The page with ARCHIVE_CSP as the first thing in its <head>.

    Added here rather than in base.html.j2 so a working folder's own
    templates (copied before the policy existed) get it too. A page whose
    template has no <head> gets the <meta> at its top, where an HTML parser
    opens the head for it (after its doctype, which must stay first).
    """
    meta = f'<meta http-equiv="Content-Security-Policy" content="{ARCHIVE_CSP}">'
    return _in_head(html, meta)


def _in_head(html: str, meta: str) -> str:
    """`meta` as the first thing in the page's <head> (see `with_policy`)."""
    m = _HEAD.search(html) or _DOCTYPE.match(html)
    if m is None:
        return meta + "\n" + html
    return f"{html[: m.end()]}\n{meta}{html[m.end():]}"


def _static(env: jinja2.Environment, name: str) -> bytes:
    """A file shipped beside the templates (the stylesheet), as it is."""
    try:
        source, _path, _uptodate = env.loader.get_source(env, name)  # type: ignore[union-attr]
    except jinja2.TemplateNotFound:
        raise RenderError(
            _("{path} not found").format(path=f"templates/web/{name}"),
            hint=_("copy it from a fresh `gongbao-feed init` folder"),
        ) from None
    return source.encode("utf-8")

