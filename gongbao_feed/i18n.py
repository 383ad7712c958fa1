"""The operator's language: messages, hints and `--help` in Chinese or English.

The operator's language comes from the locale, as GNU gettext reads it
(`LANGUAGE`, `LC_ALL`, `LC_MESSAGES`, `LANG`, the first one set); a value
starting with `zh` gives Simplified Chinese, anything else English.
`paper.language` is the readers' language and plays no part here.

    _("text")                 translated now, for the current locale
    ngettext("{n} thing", "{n} things", n).format(n=n)
    N_("text")                marks text for extraction, translated later
    N_plural("1", "{n}")      the same for a count's two forms (click's, see below)

The catalogs are GNU gettext `.po` files under `gongbao_feed/locale/`,
managed with Babel (`make catalog`: extract, update, compile); the runtime
needs only the standard library's `gettext`, reading the compiled `.mo`.
The locale is read at call time, not at import, so a library user (or a
test) that changes the environment gets the new language.

`--json` output and log field names never go through here: they stay
English and stable for other tools. `english()` runs a block in English
whatever the locale (the CLI runs a `--json` command in it, so the texts
inside the JSON, such as an ingest failure's `error`, never change).

click's own words ("Usage:", "Options:", "Error: No such option") are
looked up by click with `gettext.gettext`, in the process's default text
domain; `use_for_click()` makes our catalog that domain (the CLI calls it
at start), and `_click_messages.py` lists those msgids so Babel extracts
them into our catalog.
"""

from __future__ import annotations

import contextlib
import errno
import gettext as _gettext
import os
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

DOMAIN = "gongbao_feed"
LOCALE_DIR = Path(__file__).parent / "locale"
CHINESE = "zh_CN"
ENGLISH = "en"
_ENV_KEYS = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")

# Set inside `english()`: the language whatever the environment says.
_forced: ContextVar[str | None] = ContextVar("gongbao_feed_language", default=None)


def operator_language() -> str:
    """`"zh_CN"` or `"en"`, from the first locale variable that is set (GNU order)."""
    forced = _forced.get()
    if forced is not None:
        return forced
    for key in _ENV_KEYS:
        value = os.environ.get(key, "")
        if not value:
            continue
        # LANGUAGE may hold a list (zh_CN:en); its first entry decides.
        first = value.split(":")[0]
        return CHINESE if first.lower().startswith("zh") else ENGLISH
    return ENGLISH


@contextlib.contextmanager
def english() -> Iterator[None]:
    """Run a block with every message in English, whatever the locale."""
    token = _forced.set(ENGLISH)
    try:
        yield
    finally:
        _forced.reset(token)


@lru_cache(maxsize=4)
def _translations(language: str) -> _gettext.NullTranslations:
    if language == ENGLISH:
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


def translations() -> _gettext.NullTranslations:
    """The catalog for the current locale (English: no translation)."""
    return _translations(operator_language())


def _(message: str) -> str:
    """`message` in the operator's language."""
    return translations().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of a count's wording that fits `n` (Chinese has one form).

    Placeholders are filled by the caller: `ngettext("{n} article",
    "{n} articles", n).format(n=n)`.
    """
    return translations().ngettext(singular, plural, n)


def articles(n: int) -> str:
    """`1 article`, `2 articles`: the count most messages give."""
    return ngettext("{n} article", "{n} articles", n).format(n=n)


def members(n: int) -> str:
    """`1 member`, `2 members`."""
    return ngettext("{n} member", "{n} members", n).format(n=n)


def either(words: Sequence[str]) -> str:
    """`'a', 'b' or 'c'` in the operator's language (`'a'、'b' 或 'c'`): a choice of
    words the caller has quoted as it wants them shown."""
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    first = words[0]
    for word in words[1:-1]:
        first = _("{items}, {item}").format(items=first, item=word)
    return _("{items} or {item}").format(items=first, item=words[-1])


def N_(message: str) -> str:
    """Mark `message` for extraction; translate it where it is shown."""
    return message


def N_plural(singular: str, plural: str) -> tuple[str, str]:
    """Mark a count's two forms for extraction; `ngettext` them where shown."""
    return singular, plural


#: The OS's reasons a file cannot be read, in our words: its strerror is English
#: whatever the locale (Python's C library messages are not translated).
_OS_REASONS = {
    errno.ENOENT: N_("no such file or folder"),
    errno.EACCES: N_("permission denied (this user may not read it)"),
    errno.EPERM: N_("permission denied (this user may not read it)"),
    errno.EISDIR: N_("it is a folder, not a file"),
    errno.ENOTDIR: N_("a part of the path is not a folder"),
}


def os_reason(exc: OSError) -> str:
    """Why an OSError happened, in the operator's language for the common errnos
    (ENOENT, EACCES, EPERM, EISDIR, ENOTDIR), else the OS's own words."""
    known = _OS_REASONS.get(exc.errno or 0)
    return _(known) if known else (exc.strerror or str(exc))


def use_for_click() -> None:
    """Make click's own words ("Usage:", "Options:", its errors) come from our catalog.

    click looks them up with `gettext.gettext(...)`, in the process's
    default text domain; this makes `gongbao_feed` that domain (the GNU
    gettext way, `textdomain` + `bindtextdomain`). The CLI calls it when it
    starts; importing the library changes nothing. gettext then picks the
    catalog from the same variables in the same order as `operator_language()`;
    only a Chinese locale other than zh_CN (zh_TW, zh alone) gives our
    messages in Chinese and click's few words in English.
    """
    _gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    _gettext.textdomain(DOMAIN)
