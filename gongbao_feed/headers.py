"""Header values made from literal text: what a name says is what a client shows.

The email package folds an address header by printing it and parsing the
print again; an ASCII display name such as `=?utf-8?q?x=2C_a=40evil.example?=`
is decoded on the way and written back as `x, a@evil.example`, two more
recipients (Python 3.11-3.13). A subject holding `=?utf-8?q?=0D=0A…?=` comes
out as a line break. So the headers built from configuration or member data
(From, Reply-To, To, Subject, List-Id) are written here, from the text as
given, never parsed:

    phrase            a display name: plain words as they are; other ASCII as a
                      quoted string; anything else, and anything holding `=?`,
                      as RFC 2047 encoded words of the literal text
    address_header()  `To: phrase <addr-spec>` (RFC 5322 3.4), folded
    text_header()     an unstructured value (Subject), the same rules
    list_id_header()  `List-Id: phrase <list-id>` (RFC 2919)

Lines are folded at 78 characters (RFC 5322 2.1.1) between words; an
encoded word is at most 75 characters and never splits a UTF-8 character
(RFC 2047 2, 5). Text with a line break or another control character is
refused (`one_line_problem`), here and when the configuration is loaded.

Pure: the standard library only. Raises HeaderError (a ValueError) naming
what is wrong; the digest turns it into a DeliveryError, the config loader
into a message naming the key.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from urllib.parse import urlsplit

from .i18n import _

#: RFC 5322's recommended line length, CRLF not counted.
MAX_LINE = 78
#: RFC 2047: an encoded word is at most 75 characters.
MAX_WORD = 75

#: An addr-spec as the member list and config keep them: a dot-atom local part
#: (RFC 5322 3.2.3) and an ASCII (IDNA) domain with at least one dot.
ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
#: A list-id's label and namespace (RFC 2919 2): dot-separated words.
LIST_ID = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+")
#: Words written as they are in a phrase: letters, digits, ' _ - (all atext).
_PLAIN_WORDS = re.compile(r"[A-Za-z0-9'_-]+(?: [A-Za-z0-9'_-]+)*")
#: Bytes RFC 2047 5(3) lets "Q" write as themselves in a phrase (space is "_").
_Q_SAFE = frozenset(b"-!*+/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
#: Characters a URL in a header must not hold: they end or split the <URL>.
_URL_FORBIDDEN = set(' <>"{}|\\^`')


class HeaderError(ValueError):
    """A value that cannot go into a header as it is."""


def one_line_problem(value: str) -> str | None:
    """What makes `value` unfit for one header line, or None.

    Every line break Python or a mail client may honour (CR, LF, VT, FF,
    U+001C-U+001E, NEL U+0085, U+2028, U+2029) and every other control
    character (tab included), and unpaired surrogates, which have no UTF-8.
    """
    found = _UNFIT.search(value)
    if found is None:
        return None
    ch = found.group()
    category = unicodedata.category(ch)
    kind = _("a line break") if ch in _BREAKS or category in ("Zl", "Zp") else (
        _("a control character") if category == "Cc" else _("an unpaired surrogate"))
    return f"{kind} (U+{ord(ch):04X})"


_BREAKS = set("\r\n\v\f\x1c\x1d\x1e\x85")
#: Every character of the categories Cc, Zl, Zp and Cs: one C search finds the
#: first, where looking up each character's category took 15 µs a header.
_UNFIT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def check_one_line(value: str) -> str:
    """`value` if it fits one header line; HeaderError saying which character not."""
    problem = one_line_problem(value)
    if problem:
        raise HeaderError(_("contains {problem}; expected one line of text").format(
            problem=problem))
    return value


def check_url(url: str) -> str:
    """An absolute http(s) URL fit for <…> in List-Unsubscribe and for links.

    No line breaks or controls, no spaces, `<`, `>`, `"` and the other
    characters RFC 3986 never allows, a host, and no query or fragment (paths
    are appended to it). Raises HeaderError saying what is wrong.
    """
    check_one_line(url)
    bad = sorted({ch for ch in url if ch in _URL_FORBIDDEN or not ch.isascii()})
    if bad:
        raise HeaderError(
            _("contains {characters}; expected a URL such as https://news.example.org/ "
              "(percent-encode other characters)").format(
                characters=", ".join(repr(ch) for ch in bad))
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HeaderError(
            _("expected an absolute http(s) URL such as https://news.example.org/"))
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise HeaderError(_("expected no ?query or #fragment: paths are added to it"))
    if parts.username is not None or parts.password is not None:
        raise HeaderError(_("expected no user name or password in the URL"))
    return url


def split_mailbox(value: str) -> tuple[str, str]:
    """`Name <addr>` or a bare `addr` → (name, addr), read literally.

    The name is everything before the last `<`, trimmed; one pair of double
    quotes around it is taken off (with `\\"` and `\\\\` unescaped). Encoded
    words are not decoded: `=?utf-8?q?…?=` is the name's text. Raises
    HeaderError for anything else (two addresses, `<` or `>` in the name,
    an address that is not user@domain.tld).
    """
    check_one_line(value)
    text = value.strip()
    if text.endswith(">") and "<" in text:
        at = text.rindex("<")
        name, addr = text[:at].strip(), text[at + 1:-1].strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        elif "," in name or "@" in name:  # `a@x.example, <b@y.example>`: two addresses
            raise HeaderError(
                _("{value!r}: expected one address, as Name <user@example.org> (a name "
                  "holding , or @ goes in double quotes)").format(value=value)
            )
    else:
        name, addr = "", text
    if "<" in name or ">" in name:
        raise HeaderError(_("{value!r}: expected one address, as Name <user@example.org>")
                          .format(value=value))
    if not ADDR_SPEC.fullmatch(addr):
        raise HeaderError(
            _("{addr!r} is not an email address; expected e.g. 职工时报 <digest@news.example.org>")
            .format(addr=addr)
        )
    return name, addr


def address_header(header: str, name: str, addr: str) -> bytes:
    """`Header: name <addr>` (or `Header: addr`), folded, CRLF-ended, ASCII.

    The name is the literal text (a phrase, see the module docstring); the
    address must be a plain addr-spec. Raises HeaderError.
    """
    check_one_line(name)
    if not ADDR_SPEC.fullmatch(addr):
        raise HeaderError(_("{addr!r} is not a plain email address").format(addr=addr))
    # A long name may start on the next line, whole, rather than split in two words.
    tokens = _phrase(name, room=MAX_LINE - len(header) - 2, next_line=True) if name else []
    return _fold(header, [*tokens, f"<{addr}>" if name else addr], fold_first=True)


def text_header(header: str, text: str) -> bytes:
    """An unstructured header (Subject) showing exactly `text`. Raises HeaderError."""
    check_one_line(text)
    words = text.split(" ")
    room = MAX_LINE - len(header) - 2
    if (text.isascii() and text.isprintable() and "=?" not in text and all(words)
            and all(len(w) <= room for w in words)):
        return _fold(header, words)
    return _fold(header, _encoded_words(text, MAX_LINE - len(header) - 2))


def list_id_header(name: str, list_id: str) -> bytes:
    """`List-Id: name <list-id>` (RFC 2919). Raises HeaderError."""
    check_one_line(name)
    if not LIST_ID.fullmatch(list_id):
        raise HeaderError(_("{list_id!r} is not a list id such as digest.news.example.org")
                          .format(list_id=list_id))
    tokens = _phrase(name, room=MAX_LINE - len("List-Id") - 2) if name else []
    return _fold("List-Id", [*tokens, f"<{list_id}>"])


def _phrase(name: str, room: int, next_line: bool = False) -> list[str]:
    """A display name as tokens: plain words, one quoted string, or encoded words."""
    if _PLAIN_WORDS.fullmatch(name) and all(len(w) <= room for w in name.split(" ")):
        return name.split(" ")
    if name.isascii() and name.isprintable() and "=?" not in name and len(name) + 2 <= room:
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _encoded_words(name, room, next_line)


def _encoded_words(text: str, room: int, next_line: bool = False) -> list[str]:
    """The text as RFC 2047 encoded words, UTF-8, "Q" or "B", whichever takes fewer
    words (then fewer characters; "Q" on a tie, as it stays readable).

    Fewer words matter: RFC 2047 drops the space between two encoded words,
    but Python's address parser (3.11-3.13) shows one there. The first word
    fits in `room` (the rest of the first line) when that is at least 20
    characters, or, with `next_line`, may take a whole line of its own; the
    others are up to 75. Each holds whole characters, so every word decodes
    on its own.
    """
    rooms = (room, MAX_WORD) if next_line else (room,)
    options = [_encoded_as(text, r, q=q) for r in rooms for q in (True, False)]
    return min(options, key=lambda words: (len(words), sum(map(len, words))))


def _encoded_as(text: str, room: int, *, q: bool) -> list[str]:
    words: list[str] = []
    limit = room if room >= 20 else MAX_WORD
    chunk = b""
    for ch in text:
        raw = ch.encode("utf-8")
        if chunk and _word_length(chunk + raw, q) > min(limit, MAX_WORD):
            words.append(_encode(chunk, q))
            chunk, limit = b"", MAX_WORD
        chunk += raw
    if chunk or not words:
        words.append(_encode(chunk, q))
    return words


def _word_length(raw: bytes, q: bool) -> int:
    body = sum(1 if b in _Q_SAFE or b == 0x20 else 3 for b in raw) if q else \
        4 * ((len(raw) + 2) // 3)
    return len("=?utf-8?q??=") + body


def _encode(raw: bytes, q: bool) -> str:
    if q:
        body = "".join(
            "_" if b == 0x20 else chr(b) if b in _Q_SAFE else f"={b:02X}" for b in raw
        )
        return f"=?utf-8?q?{body}?="
    return f"=?utf-8?b?{base64.b64encode(raw).decode('ascii')}?="


def _fold(header: str, tokens: list[str], fold_first: bool = False) -> bytes:
    """`Header: t1 t2 …`, a line break before a token that would pass MAX_LINE.

    `fold_first`: the first token too (an address header's body may start on
    the next line, RFC 5322 3.2.2; in an unstructured one, parsers would keep
    that line break as a leading space).
    """
    lines = [f"{header}:"]
    for token in tokens:
        first = lines[-1] == f"{header}:"
        if len(lines[-1]) + 1 + len(token) > MAX_LINE and (fold_first or not first):
            lines.append(" " + token)
        else:
            lines[-1] += " " + token
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
