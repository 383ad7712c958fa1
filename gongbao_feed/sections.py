"""Sections (栏目, 版面): where an article's section comes from, and each section's slug.

Pure. An article's section is, in order: its Markdown front matter's
`section` (handwritten.py), the page header above it (`第3版 要闻`, read by
pages.py), or the first `[sections] files` pattern its file name matches
(`with_file_section`). The feeds, the archive and the digest then group by it.

A section's public folder is `public/sections/<slug>/`. The slug is the one
`[sections.slugs]` gives it, else its pinyin (pypinyin: 要闻 → yaowen,
工会 新闻 → gonghui-xinwen), lowercase ASCII with hyphens. A slug, once
given, is stored (feed_ids, kind "section-slug") and kept, so a pypinyin
release that reads a character differently, or a new section that would
take the same slug, never moves an existing section's feeds; a new section
whose slug is taken gets the first free `-2`, `-3`, ….
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase

from .models import Article

#: The kind under which the stored feed ids keep each section's slug, by section name.
SLUG_KIND = "section-slug"
#: The slug of a section whose name gives no letters or digits at all.
FALLBACK_SLUG = "section"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_BETWEEN_WORDS = re.compile(r"[\W_]+")


def file_section(name: str, patterns: Mapping[str, str]) -> str | None:
    """The section of the first pattern (in the order written) that file `name` matches.

    Shell-style patterns (`*-03.txt`, `2026-??-??-0[1-4].txt`) on the file's
    name only, case-sensitive on every system, so a config means the same
    on the server as on an editor's laptop.
    """
    for pattern, section in patterns.items():
        if fnmatchcase(name, pattern):
            return section
    return None


def with_file_section(articles: Iterable[Article], name: str,
                      patterns: Mapping[str, str]) -> list[Article]:
    """The articles with the file's configured section where they have none of their own."""
    section = file_section(name, patterns) if patterns else None
    return [a if a.section or section is None else replace(a, section=section)
            for a in articles]


def pinyin_slug(name: str) -> str:
    """The section's name as a slug: its pinyin without tones, lowercase ASCII, hyphens.

    Han characters that stand together are written together, the way Chinese
    news sites name their sections (要闻 → yaowen); anything between words
    (spaces, ·, punctuation) becomes one hyphen; Latin letters are folded to
    ASCII (Café → cafe). A name with nothing to keep gives `section`.
    """
    # Imported here: its dictionaries take a quarter of a second to load, and only
    # a section seen for the first time needs them (a slug is stored once made).
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(name, style=Style.NORMAL, errors="default")
    text = _BETWEEN_WORDS.sub("-", "".join(syllables))
    text = unicodedata.normalize("NFKD", text)
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    return _NOT_SLUG.sub("-", text).strip("-") or FALLBACK_SLUG


def assign_slugs(
    names: Sequence[str], configured: Mapping[str, str], stored: Mapping[str, str]
) -> dict[str, str]:
    """Each section's slug, unique: configured, else stored, else its pinyin made unique.

    `names` in the sections' order (first come, first served: an older
    section keeps its slug when a new one would collide with it).
    `configured` is `[sections.slugs]` (unique, checked when the config is
    loaded) and wins; a stored slug a configured one now takes is made anew.
    """
    taken = set(configured.values())
    out = {name: configured[name] for name in names if name in configured}
    for name in names:  # a stored slug stays its section's, wherever the section stands
        slug = stored.get(name)
        if name not in out and slug is not None and slug not in taken:
            out[name] = slug
            taken.add(slug)
    for name in names:
        if name in out:
            continue
        base = pinyin_slug(name)
        slug, n = base, 1
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        taken.add(slug)
        out[name] = slug
    return {name: out[name] for name in names}


def section_title(paper: str, name: str) -> str:
    """A section's feeds' and page's title, as readers see it: `职工时报 · 要闻`."""
    return f"{paper} · {name}"


def section_names(articles: Iterable[Article]) -> list[str]:
    """Every section the articles name, in order of first appearance."""
    return list(dict.fromkeys(a.section for a in articles if a.section))


def grouped(articles: Sequence[Article]) -> list[tuple[str | None, list[Article]]]:
    """The articles by section, each section where its first article stands.

    The articles keep their order within a section; articles with no section
    form a group of their own (None), placed the same way.
    """
    groups: dict[str | None, list[Article]] = {}
    for a in articles:
        groups.setdefault(a.section or None, []).append(a)
    return list(groups.items())
