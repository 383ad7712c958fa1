"""The newspaper page reader: page text in, articles out.

Pure: no files, no clock. `decode_page` turns bytes into text (UTF-8 with or
without BOM, UTF-16 from Excel's "Unicode text", GB18030 as the fallback);
`parse_page` turns text into Articles. See PAGE-FORMAT in the README.

How a page is read, in four passes:

1. *Lines to units.* Blank lines and form feeds separate units. With
   full-width indentation (one paragraph per line), an unindented line that
   follows an unfinished indented paragraph is its continuation.
2. *Classify.* Each unit is a lead (dateline such as 本报讯 or 新华社…电), a
   byline line (本报记者 张三), a caption or photo credit (图为… / … 摄), a
   headline-like short line, or body text.
3. *Anchor articles on their leads.* An article starts at a lead or byline
   line; the one to three headline-like units just above it are its
   headline, unless the first of them finishes an unfinished paragraph.
4. *Mend column breaks.* Inside an article a paragraph that does not end in
   sentence-ending punctuation continues in the next body unit, and so does one
   whose next unit starts with punctuation no paragraph starts with (”她说…).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from enum import Enum

from .models import Article, Byline, article_id

# ---------------------------------------------------------------------------
# Bytes to text


class DecodeError(ValueError):
    """The bytes are not a text page in any encoding the newsroom uses."""


def decode_page(data: bytes) -> str:
    """Decode a page file, trying the encodings newsroom systems write."""
    if data.startswith(codecs.BOM_UTF8):
        return _checked(data[3:], "utf-8", "UTF-8 (with BOM)")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _checked(data, "utf-16", "UTF-16")
    if b"\x00" in data:
        raise DecodeError("binary data (NUL bytes), not a text page")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                f"neither UTF-8 nor GB18030 (undecodable byte at offset {exc.start})"
            ) from None
    _reject_binary(text)
    return text


def _checked(data: bytes, encoding: str, label: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DecodeError(f"starts like {label} but byte {exc.start} is invalid") from None
    _reject_binary(text)
    return text


def _reject_binary(text: str) -> None:
    sample = text[:4096]
    if not sample:
        return
    controls = len(_CONTROL_CHARS.findall(sample))
    if "\x00" in sample or controls > max(8, len(sample) // 20):
        raise DecodeError("binary data (control bytes), not a text page")


# C0/C1 controls other than the whitespace a text file may hold, and lone surrogates.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


# A BOM inside the text (pages pasted together from several files) is stray too:
# left in, it would hide the 本报讯 right after it.
_STRAY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff\ufffe\uffff]")


def normalize_text(text: str) -> str:
    """One line ending, page breaks as blank lines, no stray control characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\f", "\n\n").replace("\v", "\n").replace("\u2028", "\n")
    text = text.replace("\u2029", "\n\n")
    return _STRAY.sub("", text)


# ---------------------------------------------------------------------------
# Punctuation and patterns

_SPACE = " \t\u3000\xa0\u2002\u2003\u200b"
_CLOSERS = "”’」』）)》〉】]\"'"
_ENDS = "。！？!?…"
_TERMINAL = re.compile(rf"[{_ENDS}][{re.escape(_CLOSERS)}]*$")
# A brief's author at the end: 。（王五）, or alone when a column break fell before it.
_BRIEF_AUTHOR = re.compile(r"(?:(?<=[。！？!?”])|^)[ \u3000]*[（(]([^（）()]{2,40})[）)]$")
_SENTENCE_END = re.compile(rf"[{_ENDS}]")
# No paragraph starts with closing or mid-sentence punctuation, so a block that
# does (”她说… after a column break that fell just after 。) continues the one before.
_CONTINUES = re.compile(r"^[”’」』）》〉】)\]，,、；;：:。！？!?％%]")

_NUM = r"[0-9０-９一二三四五六七八九十〇]{1,3}"
_DATELINE = re.compile(
    r"^(?:"
    r"本报(?:综合|专|特|简)?讯"
    r"|(?:[\u4e00-\u9fff]{2,8}(?:日报|晚报|报))(?:综合|专|特)?讯"
    r"|(?:本报|新华社|中新社|中新网|新华网|人民网|央视网|[\u4e00-\u9fff]{2,10}(?:社|网|台|报))"
    # Without a date, 电 must stand alone (新华社北京电 （记者…）): body text such as
    # 供销合作社为职工送去电暖器 has 社…电 too, and must not start an article.
    rf"[\u4e00-\u9fff]{{0,12}}?(?:{_NUM}月{_NUM}日电|电(?=[\s（(：:]|$))"
    r")"
)
_ROLE_WORDS = (
    "本报特约记者|本报见习记者|本报首席记者|本报记者|本报通讯员|本报实习生|新华社记者|中新社记者"
    "|特约记者|见习记者|首席记者|摄影记者|记者|特约通讯员|通讯员|实习生"
)
_ROLE_SPLIT = re.compile(f"({_ROLE_WORDS})")
_ROLE_OF = {"通讯员": "correspondents", "实习生": "interns"}
_NAME = re.compile(
    r"^(?:[\u4e00-\u9fff]{2,4}|[\u4e00-\u9fff]{1,8}(?:[·•・][\u4e00-\u9fff]{1,8})+"
    r"|[A-Za-z][A-Za-z.\-']{0,30})$"
)
# Words that mark a source or an editor's note, never a person: （据新华社） （综合）
# （本报综合） （人民网） （图文 张三）, and column labels that start with a role word
# (记者手记, 记者观察). Matched as whole words at either end: single characters such
# as 文 or 合 are common in given names (韩文静, 蔡文博).
_NOT_A_NAME = re.compile(
    r"^(?:据|本报|新华|中新|人民|央视|综合|综编|整理|编译|编辑|责编|图文|文图|供图|供稿|来源)"
    r"|(?:社|网|台|报|电|讯|综合|整理|编译|供图|供稿|摄"
    r"|手记|札记|随笔|观察|述评|调查|探访|连线|专访|视点)$"
)
_BULLETS = "□■●◆◇★☆◎○▲△"
_CREDIT_TAIL = re.compile(r"[（(]?([^。！？!?（）()]{2,48}?)[ \u3000]*摄(?:影)?[ \u3000]*[）)]?$")
_CAPTION_START = re.compile(r"^(?:图为|图：|图:|上图|下图|左图|右图|图[①-⑩0-9０-９]|图片说明)")
_HEADLINE_MAX = 40
# A headline may end in ？ or ！ even though a sentence may not; such a line is
# taken as a headline only when it stands alone right above a lead.
_QUESTION_HEADLINE = re.compile(r"^[^。！？!?]{2,38}[？！?!][”’」』]?$")
# A subtitle led by a dash (——记…) is a headline line however long it runs: read as
# body text, it would hide the headline above it and the byline below it.
_DASH_SUBTITLE = re.compile(r"^(?:——|—|－－|--)")
_DASH_SUBTITLE_MAX = 80
# A numbered marker must be followed by its heading: a bare `1.` is the front of a
# number cut by a column break (1. ⏎⏎ 5万名职工…), not a subheading.
_SUBHEADING = re.compile(
    r"^(?:(?:[一二三四五六七八九十]{1,3}[、．.]|[（(][一二三四五六七八九十0-9]{1,3}[）)]"
    r"|[0-9０-９]{1,2}[、．.]|[①-⑳])(?=[^0-9０-９])|【.*】$|第[一二三四五六七八九十]+[部章节]"
    r"|(?:小标题|记者手记|编者按|短评|链接|相关链接)[：:]?$)"
)


def ends_sentence(text: str) -> bool:
    """Does this text end a paragraph (。！？…, closing quotes allowed)?"""
    text = text.rstrip(_SPACE)
    return bool(_TERMINAL.search(text) or _BRIEF_AUTHOR.search(text))


# ---------------------------------------------------------------------------
# Bylines


def parse_credits(text: str) -> dict[str, list[str]] | None:
    """`记者 张三、李四 通讯员 王五` → names by role, or None if it is not a byline.

    Names before any role word count as reporters (a brief's `（王五）`).
    """
    text = text.strip(_SPACE + _BULLETS)
    if not text or len(text) > 60:
        return None
    roles: dict[str, list[str]] = {"reporters": [], "correspondents": [], "interns": []}
    role = "reporters"
    found_role = False
    for i, piece in enumerate(_ROLE_SPLIT.split(text)):
        if i % 2 == 1:
            found_role = True
            role = next((v for k, v in _ROLE_OF.items() if piece.endswith(k)), "reporters")
            continue
        for name in re.split(r"[\s\u3000、，,；;/]+", piece):
            if not name:
                continue
            if not _NAME.match(name) or _NOT_A_NAME.search(name):
                return None
            roles[role].append(name)
    if not any(roles.values()):
        return None
    if not found_role and sum(len(v) for v in roles.values()) > 4:
        return None
    return roles


def _byline_of(roles: dict[str, list[str]], photographers: Iterable[str] = ()) -> Byline:
    return Byline(
        reporters=tuple(roles.get("reporters", ())),
        correspondents=tuple(roles.get("correspondents", ())),
        interns=tuple(roles.get("interns", ())),
        photographers=tuple(photographers),
    )


def split_credit(text: str) -> tuple[str | None, list[str]] | None:
    """`图为…。通讯员 王五 摄` → ("图为…。", ["王五"]); None if not a caption/credit."""
    stripped = text.strip(_SPACE)
    tail = max(0, len(stripped) - 60)  # credits are short: search only the end
    m = _CREDIT_TAIL.search(stripped, tail) if "摄" in stripped[-4:] else None
    if m:
        before = stripped[: m.start()].rstrip(_SPACE)
        if not before or _SENTENCE_END.search(before[-1]) or before.endswith(tuple(_CLOSERS)):
            credit = m.group(1)
            roles = parse_credits(credit)
            # A space inside the credit or before 摄 marks it off from running text;
            # `m.group(1)` alone would miss the one in 王五 摄.
            glued = not any(ch in _SPACE for ch in stripped[m.start(1) : m.end()])
            has_role = bool(_ROLE_SPLIT.search(credit))
            if roles and (has_role or not glued or len(stripped) <= 8):
                names = [n for v in roles.values() for n in v]
                return (before or None), names
    if _CAPTION_START.match(stripped):
        return stripped, []
    return None


# ---------------------------------------------------------------------------
# Pass 1: lines to units


class Kind(Enum):
    LEAD = "lead"
    BYLINE = "byline"
    CAPTION = "caption"
    HEADLINE = "headline"
    TEXT = "text"
    FURNITURE = "furniture"


# Page headers a layout system prints at the top of a page or after a page
# break: 第3版, 要闻 第3版, 2026年11月20日 星期五. Not part of any article.
_FURNITURE = re.compile(
    r"^(?:\S{0,8}\s*第\s*[0-9０-９一二三四五六七八九十]{1,3}\s*版(?:\s*\S{0,8})?"
    r"|(?:\S{0,8}\s*)?[0-9０-９]{4}年[0-9０-９]{1,2}月[0-9０-９]{1,2}日\s*(?:星期|周)[一二三四五六日天]"
    r"(?:\s*\S{0,12})?)$"
)


@dataclass
class Unit:
    text: str
    line: int
    indented: bool = False
    kind: Kind = Kind.TEXT


def _units(text: str) -> list[Unit]:
    units: list[Unit] = []
    current: Unit | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        body = raw.strip(_SPACE)
        if not body:
            current = None
            continue
        indented = raw[:1] in ("\u3000", "\t") or raw.startswith("  ")
        if (
            current is not None
            and current.indented
            and not indented
            and (not ends_sentence(current.text) or _CONTINUES.match(body))
            and not _DATELINE.match(body)
        ):
            current.text += body
            continue
        current = Unit(body, number, indented)
        units.append(current)
    return units


# ---------------------------------------------------------------------------
# Pass 2: classify


def _byline_line(text: str) -> dict[str, list[str]] | None:
    stripped = text.strip(_SPACE + _BULLETS)
    if not _ROLE_SPLIT.match(stripped) or stripped.endswith(("摄", "摄影")):
        return None
    return parse_credits(stripped)


def _classify(unit: Unit) -> Kind:
    text = unit.text
    if len(text) <= 40 and _FURNITURE.match(text):
        return Kind.FURNITURE
    if _CONTINUES.match(text):
        return Kind.TEXT  # the rest of a broken paragraph, whatever it looks like
    if _DATELINE.match(text):
        return Kind.LEAD
    if len(text) <= 40 and _byline_line(text) is not None:
        return Kind.BYLINE
    if len(text) <= 200 and split_credit(text) is not None:
        return Kind.CAPTION
    limit = _DASH_SUBTITLE_MAX if _DASH_SUBTITLE.match(text) else _HEADLINE_MAX
    if len(text) <= limit and not _SENTENCE_END.search(text) and not ends_sentence(text):
        return Kind.HEADLINE  # a lone （王五） ends a brief; it is no headline
    return Kind.TEXT


# ---------------------------------------------------------------------------
# Pass 3 and 4: articles


@dataclass
class ParsedPage:
    """What a page gave: its articles, and anything the reader had to guess at."""

    articles: list[Article]
    warnings: list[str] = field(default_factory=list)


def parse_page(text: str, day: date, source: str = "") -> ParsedPage:
    """Read one page of text into its articles, in page order."""
    units = _units(normalize_text(text))
    for u in units:
        u.kind = _classify(u)
    warnings = [
        f"line {u.line}: skipped page header {u.text!r}" for u in units if u.kind is Kind.FURNITURE
    ]
    units = [u for u in units if u.kind is not Kind.FURNITURE]

    anchors = _anchors(units)
    if not anchors:
        if not units:
            return ParsedPage([], ["no text on the page"] if source else [])
        warnings.append("no dateline or byline found; the page is read as one article")
        heads = _leading_headlines(units)
        spans = [(0, len(heads), len(units))]
    else:
        spans = []
        floor = 0  # first unit the next headline may claim
        starts: list[int] = []
        splits: list[int] = []
        for a in anchors:
            start, split = _headline_start(units, a, floor)
            starts.append(start)
            splits.append(split)
            floor = a + 1
        if starts[0] > 0:
            pre = units[: starts[0]]
            if any(u.kind in (Kind.TEXT, Kind.CAPTION) for u in pre):
                heads = _leading_headlines(pre)
                spans.append((0, len(heads), starts[0]))
                warnings.append(
                    f"line {pre[0].line}: text before the first headline is kept as its own article"
                )
            else:
                warnings.append(
                    f"line {pre[0].line}: skipped page furniture before the first headline: "
                    + " / ".join(u.text for u in pre)
                )
        for i, (start, split) in enumerate(zip(starts, splits, strict=True)):
            end = starts[i + 1] if i + 1 < len(starts) else len(units)
            spans.append((start, split, end))

    articles: list[Article] = []
    seen_ids: dict[str, int] = {}
    for start, body_start, end in spans:
        art = _article(units[start:body_start], units[body_start:end], day, source, len(articles))
        n = seen_ids.get(art.id, 0)
        seen_ids[art.id] = n + 1
        if n:
            art = replace(art, id=f"{art.id}-{n + 1}")
        articles.append(art)
    return ParsedPage(articles, warnings)


def _anchors(units: list[Unit]) -> list[int]:
    anchors: list[int] = []
    for i, u in enumerate(units):
        if u.kind is Kind.LEAD:
            if anchors and anchors[-1] == i - 1 and units[i - 1].kind is Kind.BYLINE:
                continue  # 本报记者 张三 above its own dateline: one article
            anchors.append(i)
        elif u.kind is Kind.BYLINE:
            prev = units[i - 1] if i else None
            if (prev is not None and prev.kind in (Kind.HEADLINE, Kind.CAPTION)) or i == 0:
                anchors.append(i)
    return anchors


def _headline_start(units: list[Unit], anchor: int, floor: int) -> tuple[int, int]:
    """(first headline line, first body unit) for the article anchored at `anchor`.

    Captions between a headline and its lead belong to this article; captions
    above a lead with no headline belong to the article before.
    """
    split = anchor
    while split - 1 >= floor and units[split - 1].kind is Kind.CAPTION:
        if not _has_headline_above(units, split - 1, floor):
            split = anchor
            break
        split -= 1
    start = split
    while start - 1 >= floor and split - start < 3 and units[start - 1].kind is Kind.HEADLINE:
        start -= 1
    if start == split and start - 1 >= floor and _QUESTION_HEADLINE.match(units[start - 1].text):
        start -= 1  # 职工福利如何更暖心？ right above a lead is its headline
    # The topmost line may instead finish the previous article's unfinished paragraph.
    while start < split - 1 and start - 1 >= floor:
        prev = units[start - 1]
        if prev.kind in (Kind.TEXT, Kind.LEAD) and not ends_sentence(prev.text):
            start += 1
        else:
            break
    return start, (split if start < split else anchor)


def _has_headline_above(units: list[Unit], i: int, floor: int) -> bool:
    while i - 1 >= floor and units[i - 1].kind is Kind.CAPTION:
        i -= 1
    return i - 1 >= floor and units[i - 1].kind is Kind.HEADLINE


def _leading_headlines(units: list[Unit]) -> list[Unit]:
    heads: list[Unit] = []
    for u in units[:3]:
        if u.kind is not Kind.HEADLINE:
            break
        heads.append(u)
    if len(heads) == len(units):  # nothing but short lines: keep the last as body
        heads = heads[:1]
    return heads


_KICKER_START = re.compile(
    r"^(?:探索|聚焦|坚持|推动|助力|深化|践行|弘扬|打造|立足|围绕|以|用|让|为|做|当|把|从|在|向|"
    r"奋力|全力|着力|持续|加快|推进|携手|凝聚|喜迎|礼赞|致敬|守护|筑牢|书写|争当|争做)"
)


def headline_parts(lines: list[str]) -> tuple[str | None, str, str | None]:
    """(kicker, title, subtitle) from one to three headline lines."""
    if not lines:
        return None, "", None
    if len(lines) == 1:
        return None, lines[0], None
    if len(lines) == 2:
        first, second = lines
        if second.startswith(("——", "—", "－－", "--")):
            return None, first, second
        if _KICKER_START.match(first) and not _KICKER_START.match(second):
            return first, second, None
        return None, first, second
    return lines[0], lines[1], " ".join(lines[2:])


def _article(head: list[Unit], body: list[Unit], day: date, source: str, position: int) -> Article:
    kicker, title, subtitle = headline_parts([u.text for u in head])
    roles: dict[str, list[str]] = {}
    dateline: str | None = None
    photographers: list[str] = []
    captions: list[str] = []
    paragraphs: list[str] = []
    open_para = False  # is the last paragraph waiting for its continuation?

    for u in body:
        if u.kind is Kind.BYLINE and not paragraphs and not roles:
            roles = _byline_line(u.text) or {}
            continue
        if u.kind is Kind.CAPTION:
            caption, names = split_credit(u.text) or (u.text, [])
            if caption:
                captions.append(caption)
            photographers.extend(n for n in names if n not in photographers)
            continue
        if paragraphs and (open_para or _CONTINUES.match(u.text)):
            paragraphs[-1] = _join(paragraphs[-1], u.text)
        else:
            paragraphs.append(u.text)
        last = paragraphs[-1]
        # A numbered or bracketed subheading stands alone; any other short
        # unpunctuated line is more likely a paragraph cut by a column break.
        standalone = (
            u.kind is Kind.HEADLINE
            and not open_para
            and len(paragraphs) > 1
            and bool(_SUBHEADING.match(u.text))
        )
        open_para = not standalone and not ends_sentence(last)

    if paragraphs and (m := _DATELINE.match(paragraphs[0])):
        dateline = m.group(0)
        rest = paragraphs[0][m.end():].lstrip(_SPACE + "：:")
        pm = re.match(r"^[（(]([^（）()]{1,60})[）)]", rest)
        lead_roles = parse_credits(pm.group(1)) if pm else None
        if pm and lead_roles is not None:
            _merge(roles, lead_roles)
            rest = rest[pm.end():].lstrip(_SPACE + "：:")
        elif not any(roles.values()):
            tail = _BRIEF_AUTHOR.search(paragraphs[-1])
            author = parse_credits(tail.group(1)) if tail else None
            if tail and author is not None:
                _merge(roles, author)
                paragraphs[-1] = paragraphs[-1][: tail.start()].rstrip(_SPACE)
                if len(paragraphs) == 1:
                    rest = paragraphs[0][m.end():].lstrip(_SPACE + "：:")
        paragraphs[0] = rest
        paragraphs = [p for p in paragraphs if p]

    if not title:
        title = _derived_title(paragraphs or captions)
    return Article(
        id=article_id(day, title),
        date=day,
        title=title,
        kicker=kicker,
        subtitle=subtitle,
        dateline=dateline,
        byline=_byline_of(roles, photographers),
        captions=tuple(captions),
        paragraphs=tuple(paragraphs),
        source=source,
        position=position,
    )


def _merge(into: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for role, names in more.items():
        bucket = into.setdefault(role, [])
        bucket.extend(n for n in names if n not in bucket)


def _join(left: str, right: str) -> str:
    """Mend a paragraph split by a column break.

    The break falls inside the text (`5⏎⏎G网络`, `托⏎⏎育`), so the pieces go
    back together as they were, with nothing added between them.
    """
    return left + right


def _derived_title(texts: list[str] | tuple[str, ...]) -> str:
    """A title for an article printed without a headline: its first non-empty clause.

    Never empty (the id and every feed need one), even for text that is all
    punctuation such as 「……」.
    """
    for text in texts:
        for clause in _SENTENCE_END.split(text):
            cut = clause.strip("，,；;" + _SPACE)
            if cut:
                return cut if len(cut) <= 30 else cut[:30] + "…"
    return "无题"
