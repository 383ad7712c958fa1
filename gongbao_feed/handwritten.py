"""The second reader: hand-written articles in Markdown with TOML front matter.

    +++
    title = "标题"
    kicker = "引题"
    date = 2026-11-20
    reporters = ["张三"]
    section = "要闻"
    +++

    第一段。

    第二段。

Paragraphs are separated by blank lines; the text is kept as written
(escaped when rendered, not interpreted as Markdown markup). The same
Article comes out as from a newspaper page.
"""

from __future__ import annotations

import tomllib
from datetime import date
from typing import Any

from .i18n import _
from .models import SECTION_NAME_MAX, Article, Byline, article_id
from .pages import ParsedPage, normalize_text

_STRINGS = ("title", "kicker", "subtitle", "dateline", "section")
_LISTS = ("reporters", "correspondents", "interns", "photographers", "captions")
_KEYS = (*_STRINGS, *_LISTS, "date")


class FrontMatterError(ValueError):
    """The front matter is missing, not TOML, or has a wrong key or type."""


def parse_markdown(text: str, day: date, source: str = "") -> ParsedPage:
    """One Markdown file → one article (front matter `date` beats `day`)."""
    text = normalize_text(text)
    meta, body, body_line = _split(text)
    unknown = sorted(set(meta) - set(_KEYS))
    if unknown:
        raise FrontMatterError(
            _("front matter: unknown key {key!r}; expected one of: {keys}").format(
                key=unknown[0], keys=", ".join(_KEYS))
        )
    for key in _STRINGS:
        if key in meta and not isinstance(meta[key], str):
            raise FrontMatterError(_("front matter: {key} must be a string (got {value!r})")
                                   .format(key=key, value=meta[key]))
    for key in _LISTS:
        value = meta.get(key, [])
        if isinstance(value, str):
            meta[key] = [value]
        elif not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise FrontMatterError(
                _("front matter: {key} must be a list of strings (got {value!r})")
                .format(key=key, value=value))
    section = meta.get("section")
    if isinstance(section, str) and (len(section.strip()) > SECTION_NAME_MAX
                                     or "\n" in section.strip()):
        raise FrontMatterError(
            _("front matter: section must be one line of at most {max} characters "
              "(got {value!r})").format(max=SECTION_NAME_MAX, value=section))
    if "date" in meta:
        if not isinstance(meta["date"], date):
            raise FrontMatterError(
                _("front matter: date must be a TOML date such as 2026-11-20 (got {value!r})")
                .format(value=meta["date"])
            )
        day = meta["date"]

    paragraphs = _paragraphs(body)
    title = (meta.get("title") or "").strip()
    if not title and paragraphs and paragraphs[0].startswith("#"):
        title = paragraphs.pop(0).lstrip("#").strip()
    if not title:
        raise FrontMatterError(
            _("line {line}: no title; add title = \"…\" to the front matter or a '# 标题' line")
            .format(line=body_line)
        )
    byline = Byline(**{k: tuple(meta.get(k, [])) for k in _LISTS if k != "captions"})
    article = Article(
        id=article_id(day, title),
        date=day,
        title=title,
        kicker=_opt(meta.get("kicker")),
        subtitle=_opt(meta.get("subtitle")),
        dateline=_opt(meta.get("dateline")),
        byline=byline,
        captions=tuple(meta.get("captions", [])),
        paragraphs=tuple(paragraphs),
        section=_opt(meta.get("section")),
        source=source,
        position=0,
    )
    return ParsedPage([article])


def _opt(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _split(text: str) -> tuple[dict[str, Any], str, int]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "+++":
        return {}, text, 1
    for end in range(1, len(lines)):
        if lines[end].strip() == "+++":
            try:
                meta = tomllib.loads("\n".join(lines[1:end]))
            except tomllib.TOMLDecodeError as exc:
                raise FrontMatterError(
                    _("front matter is not valid TOML: {reason}").format(reason=exc)
                ) from None
            return meta, "\n".join(lines[end + 1:]), end + 2
    raise FrontMatterError(_("front matter opened with +++ on line 1 but never closed"))


def _paragraphs(body: str) -> list[str]:
    paragraphs: list[str] = []
    for block in body.split("\n\n"):
        lines = [ln.strip(" \t\u3000") for ln in block.split("\n") if ln.strip(" \t\u3000")]
        if not lines:
            continue
        text = lines[0]
        for ln in lines[1:]:
            latin = text[-1:].isascii() and ln[:1].isascii()
            text += (" " if latin else "") + ln
        paragraphs.append(text)
    return paragraphs
