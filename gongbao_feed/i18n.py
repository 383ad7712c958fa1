"""The operator's language: messages, hints and `--help` in Chinese or English.

The operator's language comes from the locale, as GNU gettext reads it
(`LANGUAGE`, `LC_ALL`, `LC_MESSAGES`, `LANG`, the first one set); a value
starting with `zh` gives Simplified Chinese, anything else English.
`paper.language` is the readers' language and plays no part here.

    _("text")                 translated now, for the current locale
    ngettext("1 thing", "{n} things", n)
    N_("text")                marks text for extraction, translated later

The catalogs are GNU gettext `.po` files under `gongbao_feed/locale/`,
managed with Babel. The locale is read at call time, not at import, so a
library user (or a test) that changes the environment gets the new language.
`--json` output and log field names never go through here: they stay
English and stable for other tools.
"""

from __future__ import annotations

import gettext as _gettext
import os
from functools import lru_cache
from pathlib import Path

DOMAIN = "gongbao_feed"
LOCALE_DIR = Path(__file__).parent / "locale"
_ENV_KEYS = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def operator_language() -> str:
    """`"zh_CN"` or `"en"`, from the first locale variable that is set (GNU order)."""
    for key in _ENV_KEYS:
        value = os.environ.get(key, "")
        if not value:
            continue
        # LANGUAGE may hold a list (zh_CN:en); its first entry decides.
        first = value.split(":")[0]
        return "zh_CN" if first.lower().startswith("zh") else "en"
    return "en"


@lru_cache(maxsize=4)
def _translations(language: str) -> _gettext.NullTranslations:
    if language == "en":
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


def translations() -> _gettext.NullTranslations:
    """The catalog for the current locale (English: no translation)."""
    return _translations(operator_language())


def _(message: str) -> str:
    """`message` in the operator's language."""
    return translations().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of a count's wording that fits `n` (Chinese has one form)."""
    return translations().ngettext(singular, plural, n)


def articles(n: int) -> str:
    """`1 article`, `2 articles`: the count most messages give."""
    return ngettext("{n} article", "{n} articles", n).format(n=n)


def members(n: int) -> str:
    """`1 member`, `2 members`."""
    return ngettext("{n} member", "{n} members", n).format(n=n)


def N_(message: str) -> str:
    """Mark `message` for extraction; translate it where it is shown."""
    return message
