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

from .i18n import _
from .models import Article, Byline, article_id, with_credit

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
        raise DecodeError(_("binary data (NUL bytes), not a text page"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                _("neither UTF-8 nor GB18030 (undecodable byte at offset {offset})")
                .format(offset=exc.start)
            ) from None
    _reject_binary(text)
    return text


def _checked(data: bytes, encoding: str, label: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DecodeError(_("starts like {encoding} but byte {offset} is invalid")
                          .format(encoding=label, offset=exc.start)) from None
    _reject_binary(text)
    return text


def _reject_binary(text: str) -> None:
    sample = text[:4096]
    if not sample:
        return
    controls = len(_CONTROL_CHARS.findall(sample))
    if "\x00" in sample or controls > max(8, len(sample) // 20):
        raise DecodeError(_("binary data (control bytes), not a text page"))


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
    rf"[\u4e00-\u9fff]{{0,12}}?(?:{_NUM}月{_NUM}日[电讯]|电(?=[\s（(：:]|$))"
    r")"
)
_ROLE_WORDS = (
    "本报特约评论员|本报评论员|特约评论员|评论员"
    "|本报特约记者|本报见习记者|本报首席记者|本报记者|本报通讯员|本报实习生|新华社记者|中新社记者"
    "|特约记者|见习记者|首席记者|摄影记者|记者|特约通讯员|通讯员|实习生"
)
_ROLE_SPLIT = re.compile(f"({_ROLE_WORDS})")
_ROLE_ONLY = re.compile(f"^[□■]?(?:{_ROLE_WORDS})$")
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
_CREDIT_TAIL = re.compile(
    r"[（(]?([^。！？!?（）()]{2,48}?)[ \u3000]*摄(?:影)?(?:报道)?[ \u3000]*[）)]?$"
)
_CREDIT_ENDS = ("摄", "摄影", "摄影报道")
_CAPTION_START = re.compile(r"^(?:图为|图：|图:|上图|下图|左图|右图|图[①-⑩0-9０-９]|图片说明)")
_HEADLINE_MAX = 40
_REPORTED_BY = re.compile(
    r"^((?:本报)?(?:记者|通讯员|实习生)[^，。！？（）()]{1,40}?)[ \u3000]*报道[ \u3000]*"
)
_SIGNED = re.compile(r"(?<=[。！？”])[ \u3000]*(?:读者[ \u3000]*)?([\u4e00-\u9fff]{2,3})$")
# A source note closes a paragraph as a full stop does: …政府行为。据《中国青年报》
_SOURCE_END = re.compile(r"(?:据|摘自|来源[:：]?)《[^《》]{1,30}》$")
# A photo credited to an organisation: 仁寿县总工会供图, 受访者供图.
_ORG_CREDIT = re.compile(r"^[^，。！？、]{2,20}(?:供图|提供)$")
# Column labels printed over a story: a headline line whatever their length.
_COLUMN_LABEL = re.compile(
    r"^[■□●◆▲★]?[ \u3000]*(?:图片新闻|新闻图片|开栏的话|开栏语|时事点评|本报评论|短评|快评|简讯"
    r"|快讯|图说|图说新闻|新闻速递|工会动态|基层动态|一线传真|信息|链接)$"
)
# Common surnames, for an author's name standing alone (韩星海 under a headline,
# 。汪诚 after the last sentence). Only those rarely the first character of an
# everyday word: 万 (万余), 高, 文, 安, 和, 时, 明, 方, 全 … would misread text.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾肖董袁潘蒋蔡杜叶程"
    "苏魏吕丁沈姚卢姜崔钟谭陆汪范廖贾夏韦邹孟熊秦邱尹薛闫段侯史陶黎贺顾毛郝龚邵钱"
    "严覃戴莫孔汤康施樊葛邢岳翟殷詹欧耿焦俞柳祝舒阮柯纪梅童凌裴霍涂苗盛翁冉骆蒲滕"
    "饶牟艾尤穆卓缪褚娄窦戚岑宫卜晏臧闵邬卞姬栾隋刁巫寇甄邝"
)
# A paragraph, never a headline, may open with when the story happened and a
# comma: 日前， 上周， 9月5日， 今年以来， 凌晨五点半， 入冬以来，
_OPENER = re.compile(
    r"^(?:日前|近日|近期|近来|连日来|近年来|今年以来|今年|去年|前不久|不久前|日前|目前|眼下|如今"
    r"|上周|本周|上月|本月|昨天|今天|昨日|今日|当天|当日|此前|早在|清晨|凌晨|深夜|傍晚|午后|入[春夏秋冬]以来"
    r"|[0-9０-９一二三四五六七八九十]{1,4}[年月日])"
    r"[^，,。！？、]{0,8}[，,]"
)
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
    """Does this text end a paragraph (。！？…, closing quotes allowed, or a source note)?"""
    text = text.rstrip(_SPACE)
    return bool(_TERMINAL.search(text) or _BRIEF_AUTHOR.search(text) or _SOURCE_END.search(text))


def _signature(text: str) -> re.Match[str] | None:
    """`…。汪诚` or `…。 读者 薛芳玲`: a name signed after the last sentence.

    Only where an article may end (above a headline, at the end of an
    article): mid-page, `…。李书记` may be the front of a sentence a column
    break cut.
    """
    m = _SIGNED.search(text)
    return m if m and m.group(1)[0] in _SURNAMES else None


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
        for name in _padded_names(re.split(r"[\s\u3000、，,；;/]+", piece)):
            if not _NAME.match(name) or _NOT_A_NAME.search(name):
                return None
            roles[role].append(name)
    if not any(roles.values()):
        return None
    if not found_role and sum(len(v) for v in roles.values()) > 4:
        return None
    return roles


def _padded_names(tokens: list[str]) -> list[str]:
    """Names with their alignment padding taken out: `王　芳 李四` → 王芳, 李四.

    Layout pads a two-character name to the width of a three-character one
    (王　芳, 王 芳). A Chinese personal name is never one character, so two lone
    Han characters side by side are the halves of one name. A lone character
    with no partner is left as it is, and fails the name check.
    """
    names: list[str] = []
    pending: str | None = None
    for token in tokens:
        if not token:
            continue
        if len(token) == 1 and "\u4e00" <= token <= "\u9fff":
            if pending is None:
                pending = token
                continue
            names.append(pending + token)
            pending = None
            continue
        if pending is not None:
            names.append(pending)
            pending = None
        names.append(token)
    if pending is not None:
        names.append(pending)
    return names


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
    m = _CREDIT_TAIL.search(stripped, tail) if "摄" in stripped[-6:] else None
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


# A page header that names its page's section (版面): 第3版 要闻, 第3版：要闻, 要闻 第3版,
# 03版 要闻, A03版 要闻, 第三版 · 工会新闻. The name is Han or Latin letters first, at
# most 12 characters, no space or colon inside (社会·民生 is one name).
_HEADER_SEP = r"[\s：:·・•|｜/／—–-]"
_SECTION_NAME = r"(?![第版])[\u4e00-\u9fffA-Za-z][^\s：:|｜/／0-9０-９第版]{0,11}"
_PAGE_HEADERS = (
    # 第3版 要闻, 第3版：要闻, 要闻第3版: the name may touch 第…版.
    re.compile(
        rf"^(?:(?P<before>{_SECTION_NAME}){_HEADER_SEP}*)?"
        rf"第\s*[0-9０-９一二三四五六七八九十]{{1,3}}\s*版"
        rf"(?:{_HEADER_SEP}*(?P<after>{_SECTION_NAME}))?$"
    ),
    # 03版 要闻, A03版 要闻: without 第 the name stands apart, so 5版方案 is no header.
    re.compile(
        rf"^(?:(?P<before>{_SECTION_NAME}){_HEADER_SEP}+)?"
        rf"[A-Za-zＡ-Ｚ]?[0-9０-９]{{1,3}}\s*版"
        rf"(?:{_HEADER_SEP}+(?P<after>{_SECTION_NAME}))?$"
    ),
)


def _page_header(text: str) -> re.Match[str] | None:
    for pattern in _PAGE_HEADERS:
        m = pattern.match(text)
        if m is not None:
            return m
    return None


def header_section(text: str) -> str | None:
    """The section a page header names (`第3版 要闻` → 要闻), or None.

    None for a header that names none (`第3版`, a date line) and for any
    line that is not a page header. A name on both sides of the page number
    (`要闻 第3版 要闻`) is not a header this reads.
    """
    text = text.strip(_SPACE)
    if len(text) > 40:
        return None
    m = _page_header(text)
    if m is None or (m["before"] and m["after"]):
        return None
    return m["before"] or m["after"]


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
            and not _ends_in_credit(current.text)
        ):
            current.text += body
            continue
        current = Unit(body, number, indented)
        units.append(current)
    return units


def _ends_in_credit(text: str) -> bool:
    """Does this line end in a photo credit (…叫好。本报记者 甲乙 摄)? Then it is finished."""
    return text.rstrip(_SPACE + "）)").endswith(_CREDIT_ENDS) and split_credit(text) is not None


# ---------------------------------------------------------------------------
# Pass 2: classify


def _byline_line(text: str) -> dict[str, list[str]] | None:
    stripped = text.strip(_SPACE + _BULLETS)
    if not _ROLE_SPLIT.match(stripped) or stripped.endswith(_CREDIT_ENDS):
        return None
    return parse_credits(stripped)


def _headline_shaped(text: str) -> bool:
    """Short, and no sentence ends inside it: what a headline line looks like.

    A question or exclamation may end a headline (夜班，谁来守护？), but not a
    quotation (“为什么要这样做？”), which is speech in the body.
    """
    limit = _DASH_SUBTITLE_MAX if _DASH_SUBTITLE.match(text) else _HEADLINE_MAX
    if len(text) > limit or _OPENER.match(text):
        return False
    if not _SENTENCE_END.search(text) and not ends_sentence(text):
        return True  # a lone （王五） ends a brief; it is no headline
    quoted = text.startswith(("“", '"', "「")) and text.endswith(("”", '"', "」"))
    return bool(_QUESTION_HEADLINE.match(text)) and not quoted


def _classify(unit: Unit) -> Kind:
    text = unit.text
    if ((len(text) <= 40 and (_FURNITURE.match(text) or _page_header(text)))
            or _ROLE_ONLY.match(text)):
        return Kind.FURNITURE  # a page header, or a credit that lost its name
    if _CONTINUES.match(text):
        # The rest of a broken paragraph, whatever it looks like; its photo
        # credit may still be glued to its end.
        return Kind.CAPTION if _ends_in_credit(text) else Kind.TEXT
    if _DATELINE.match(text):
        return Kind.LEAD
    if len(text) <= 40 and _byline_line(text) is not None:
        return Kind.BYLINE
    if (len(text) <= 200 and split_credit(text) is not None) or _ORG_CREDIT.match(text):
        return Kind.CAPTION
    if _headline_shaped(text):
        return Kind.HEADLINE
    return Kind.TEXT


def _indented_layout(units: list[Unit]) -> bool:
    """Does this page mark paragraphs by full-width indentation (headlines flush left)?

    Only where the indentation tells something: a page exported with every
    line indented, headlines too (layout systems do this), says nothing by
    it, and is read as a page with no layout marks at all.
    """
    heads = [u for u in units if u.kind is Kind.HEADLINE]
    if heads and all(u.indented for u in heads):
        return False
    text = [u for u in units if u.kind in (Kind.TEXT, Kind.LEAD) or u.indented]
    # Continuations after a column break are flush left too, so the share is low.
    return bool(text) and 5 * sum(u.indented for u in text) >= len(text)


# ---------------------------------------------------------------------------
# Pass 3: where articles start


@dataclass
class ParsedPage:
    """What a page gave: its articles, and anything the reader had to guess at."""

    articles: list[Article]
    warnings: list[str] = field(default_factory=list)
    #: No headline block or dateline anywhere: the page was read as one article.
    no_headline: bool = False


#: A headline block whose score reaches this starts an article (see `headline_score`).
HEADLINE_THRESHOLD = 3


def parse_page(text: str, day: date, source: str = "") -> ParsedPage:
    """Read one page of text into its articles, in page order."""
    units = _units(normalize_text(text))
    for u in units:
        u.kind = _classify(u)
    warnings = [
        (_("line {line}: skipped a credit with no name {text!r}") if _ROLE_ONLY.match(u.text)
         else _("line {line}: skipped page header {text!r}")).format(line=u.line, text=u.text)
        for u in units
        if u.kind is Kind.FURNITURE and header_section(u.text) is None
    ]
    headers = _section_marks(units)
    units = [u for u in units if u.kind is not Kind.FURNITURE]
    indented = _indented_layout(units)
    starts = _article_starts(units, indented)

    spans: list[tuple[int, int, int]] = []
    if not starts:
        if not units:
            return ParsedPage([], [_("no text on the page")] if source else [])
        warnings.append(
            _("no headline block or dateline found; the page is read as one article")
        )
        spans.append((0, len(_leading_headlines(units)), len(units)))
    elif starts[0][0] > 0:
        pre = units[: starts[0][0]]
        if any(u.kind in (Kind.TEXT, Kind.CAPTION) for u in pre):
            spans.append((0, len(_leading_headlines(pre)), starts[0][0]))
            warnings.append(
                _("line {line}: text before the first headline is kept as its own article")
                .format(line=pre[0].line)
            )
        else:
            warnings.append(
                _("line {line}: skipped page furniture before the first headline: {text}")
                .format(line=pre[0].line, text=" / ".join(u.text for u in pre))
            )
    for i, (start, body) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(units)
        spans.append((start, body, end))

    articles: list[Article] = []
    seen_ids: dict[str, int] = {}
    for start, body_start, end in spans:
        art = _article(
            units[start:body_start], units[body_start:end], day, source, len(articles), indented
        )
        n = seen_ids.get(art.id, 0)
        seen_ids[art.id] = n + 1
        if n:
            art = replace(art, id=f"{art.id}-{n + 1}")
        section = _section_at(headers, units[start].line)
        if section is not None:
            art = replace(art, section=section)
        articles.append(art)
    return ParsedPage(articles, warnings, no_headline=not starts)


def _section_marks(units: list[Unit]) -> list[tuple[int, str | None]]:
    """(line, section) for every page-number header, in page order.

    A header that names a section starts it; one that gives only a page
    number (`第4版`) starts a page whose section is unknown, so it ends the
    one before. A date line changes nothing.
    """
    marks: list[tuple[int, str | None]] = []
    for u in units:
        if u.kind is not Kind.FURNITURE or _ROLE_ONLY.match(u.text):
            continue
        section = header_section(u.text)
        if section is not None or ("版" in u.text and not _DATE_HEADER.search(u.text)):
            marks.append((u.line, section))
    return marks


_DATE_HEADER = re.compile(r"[0-9０-９]{4}年")


def _section_at(marks: list[tuple[int, str | None]], line: int) -> str | None:
    """The section of the last header above `line`: the articles under a header are its."""
    section = None
    for at, name in marks:
        if at > line:
            break
        section = name
    return section


def _article_starts(units: list[Unit], indented: bool) -> list[tuple[int, int]]:
    """(first headline unit, first body unit) of each article, in page order.

    An article starts at a headline block that `_headline_block` accepts, or,
    with no headline above, at a lead (or a byline line after a credit) once
    the article before has body text of its own.
    """
    starts: list[tuple[int, int]] = []
    has_body = False  # has the article being read any text yet?
    i, n = 0, len(units)
    while i < n:
        u = units[i]
        if u.kind is Kind.HEADLINE and not (indented and u.indented):
            j = i + 1  # on an indented page an indented line is never a headline
            while j < n and units[j].kind is Kind.HEADLINE and not (indented and units[j].indented):
                j += 1
            block = _headline_block(units, i, j, indented)
            if block is not None:
                starts.append(block)
                has_body = False
                i = block[1]
            else:
                has_body = True
                i = j
            continue
        # A lead, or a byline line after a credit, with no headline above it. A lead
        # right under a headline and one short line is that article's: the line is
        # a caption set between them.
        after_credit = i == 0 or units[i - 1].kind is Kind.CAPTION
        caption_above = (
            u.kind is Kind.LEAD and bool(starts) and starts[-1][1] == i - 1 < i
            and starts[-1][0] < starts[-1][1] and _caption_like(units[i - 1])
        )
        if (has_body or not starts) and not caption_above and (
            u.kind is Kind.LEAD or (u.kind is Kind.BYLINE and after_credit)
        ):
            starts.append((i, i))
        has_body = has_body or u.kind is not Kind.BYLINE
        i += 1
    return starts


def _headline_block(
    units: list[Unit], i: int, j: int, indented: bool
) -> tuple[int, int] | None:
    """(start, body) if some of the headline-shaped run units[i:j] is a headline block.

    A block is at most three lines, the last ones of the run. Right above a
    lead or a byline line it is always a headline (only its top line may
    instead finish an open paragraph above); captions between the two belong
    to the article. Above anything else it is scored by `headline_score`.
    """
    n = len(units)
    if j < n and _CONTINUES.match(units[j].text) and j - i >= 2:
        j -= 1  # the run's last line is the front of the paragraph that goes on below
    if (
        j - i >= 2 and j < n and _bare_name(units[j - 1].text)
        and not _open_above(units, i)  # a headline stands after finished text
        and not units[j - 2].text.endswith(("：", ":"))  # a kicker needs its title
        and units[j].kind in (Kind.TEXT, Kind.LEAD, Kind.CAPTION)
    ):
        units[j - 1].kind = Kind.BYLINE  # the author's name alone under the headline
        j -= 1
    k = j
    while k < n and units[k].kind is Kind.CAPTION:
        k += 1
    s = max(i, j - 3)
    if s == i and _open_above(units, s):
        s += 1  # the top line finishes the paragraph above
    # A question or cry is a title: only a ——subtitle may stand below it.
    for c in range(j - 2, s - 1, -1):
        if _CRY.search(units[c].text) and not _DASH_SUBTITLE.match(units[c + 1].text):
            s = c + 1
            break
    if k < n and units[k].kind in (Kind.LEAD, Kind.BYLINE):
        return min(s, j - 1), j
    if s >= j or j >= n:
        return None
    opener = units[j]
    bare_credit = opener.kind is Kind.CAPTION and not (split_credit(opener.text) or (None,))[0]
    if bare_credit and not any(_DASH_SUBTITLE.match(u.text) for u in units[s:j]):
        return None  # text follows a headline, not a credit (but a photo spread's may)
    if headline_score(units, s, j, indented) >= HEADLINE_THRESHOLD:
        return s, j
    return None


_CRY = re.compile(r"[？！?!][”’」』]?$")


def _caption_like(unit: Unit) -> bool:
    """A short finished line that could describe a photo (not a lead, not a headline)."""
    return unit.kind is Kind.TEXT and len(unit.text) <= 60 and ends_sentence(unit.text)


def _bare_name(text: str) -> bool:
    """A person's name alone on a line (韩星海): a common surname and one or two more."""
    return (
        2 <= len(text) <= 3
        and text[0] in _SURNAMES
        and all("\u4e00" <= c <= "\u9fff" for c in text)
    )


def _open_above(units: list[Unit], k: int) -> bool:
    prev = units[k - 1] if k else None
    if prev is not None and prev.kind is Kind.BYLINE:
        return True  # a byline line stands over its article's text
    return (
        prev is not None and prev.kind in (Kind.TEXT, Kind.LEAD)
        and not ends_sentence(prev.text) and not _signature(prev.text)
    )


def headline_score(units: list[Unit], s: int, j: int, indented: bool) -> int:
    """How strongly the short lines units[s:j] read as a headline over units[j].

    Used only where nothing decides it outright (no lead or byline follows).
    Plain text cannot always tell a headline from a column-break fragment
    (the first piece of a paragraph cut at the bottom of a column), so the
    neighbourhood votes; a score of `HEADLINE_THRESHOLD` or more is a headline.
    A headline-sized line after a finished paragraph is taken as a headline
    unless something says it is the front of a cut sentence.

    =========================================================  =====
    what the neighbourhood shows                               score
    =========================================================  =====
    the page starts here                                        +2
    a photo credit or caption closes the unit above             +3
    a brief's author （王五） closes the unit above              +2
    the unit above runs on (no sentence end)                    -10
    indented layout: the block is flush left                    +2
    indented layout: a block line is indented                   -10
    indented layout: the text below is indented / flush         +2 / -4
    lines of a headline's size: one of 5–20 characters, or      +3
    two or three of 4–30 (a ——subtitle may be longer)
    one line of 1–3 / 4 / 21–24 / over 24 characters            -4 / 0 / +1 / -1
    a line with a ， that does not end in ？！                   -3
    a line ends in ？ or ！ (it is speech, unless a lead,         -4
    a byline or the layout says headline)
    a line ends where no headline ends (的 和 在 把, a digit)    -4
    a ——subtitle in the block                                   +5
    a column label in the block (图片新闻 开栏的话 时事点评)     +4
    a kicker line ending in ： above the title                  +3
    the block's last line ends in ： (it introduces text)       -6
    a numbered subheading or column label (一、 记者手记)        -6
    a line opens with a time, as sentences do (今年的…)          -3
    a line opens a quotation it does not close (“协商)          -4
    the text below starts with 。 ” ， (it finishes a line)      -10
    … starts like the rest of a sentence (下， 12.6%， 的)       -4
    … opens a story (近日， 9月5日， 清晨，)                       +2
    … is a whole paragraph of five characters or fewer          -3
    its first paragraph ends in a credit or （author）          +2
    =========================================================  =====
    """
    block = units[s:j]
    below = units[j]
    prev = units[s - 1] if s else None
    score = 0
    if prev is None:
        score += 2
    elif prev.kind is Kind.CAPTION:
        score += 3
    elif not ends_sentence(prev.text) and not _signature(prev.text):
        score -= 10
    elif _BRIEF_AUTHOR.search(prev.text):
        score += 2
    if indented:
        score += -10 if any(u.indented for u in block) else 2
        score += 2 if below.indented else -4
    lines = [u.text for u in block]
    if any(_COLUMN_LABEL.match(t) for t in lines):
        score += 4
    if len(lines) == 1:
        size = len(lines[0])
        score += _SIZE_SCORE[min(size, len(_SIZE_SCORE) - 1)]
    elif all(4 <= len(t) <= 30 or _DASH_SUBTITLE.match(t) for t in lines):
        score += 3
    for t in lines:
        if t.endswith(("？", "！", "?", "!")):
            score -= 4
        elif "，" in t:
            score -= 3
        if _NOT_A_HEADLINE_END.search(t):
            score -= 4
        if t.count("“") != t.count("”"):
            score -= 4
        if _SUBHEADING.match(t):
            score -= 6
        if _TIME_START.match(t) and not t.endswith(("？", "！", "?", "!")):
            score -= 3
    if any(_DASH_SUBTITLE.match(t) for t in lines[1:]):
        score += 5
    if len(lines) > 1 and lines[0].endswith(("：", ":")):
        score += 3
    if lines[-1].endswith(("：", ":")):
        score -= 6
    if _CONTINUES.match(below.text):
        score -= 10
    elif _OPENER.match(below.text):
        score += 2
    elif _RUNS_ON.match(below.text):
        score -= 4
    goes_on = j + 1 < len(units) and _CONTINUES.match(units[j + 1].text)
    if len(below.text) <= 5 and ends_sentence(below.text) and not goes_on:
        score -= 3
    if _ends_with_credit(units, j):
        score += 2
    return score


# A headline does not stop on a particle, a preposition or half a number; a
# sentence cut by a column break often does (…的协调 / …职工1).
_PARTICLES = "的了着和与及或在对把被将向从以由等之其并而让给得地是为"
_NOT_A_HEADLINE_END = re.compile(rf"[{_PARTICLES}][”’]?$|[0-9０-９.．%％]$")
# …and the rest of a cut sentence may start with one character and a comma (下，),
# a figure (12.6%，), or a particle (的 们).
_RUNS_ON = re.compile(
    r"^(?:[\u4e00-\u9fff][，、]|[0-9０-９.．]+[%％万亿千百]?[，、]|[的着们地得])"
)
# A sentence, not a headline, opens with when it happened (今年的大赛首次设…).
_TIME_START = re.compile(
    r"^(?:今年|去年|近日|日前|近期|近年来|目前|上周|本周|昨天|当天|此前"
    r"|[0-9０-９]{1,2}月[0-9０-９]{1,2}日)"
)


# The score of a one-line block by its length in characters: 0–3, 4, 5–20, 21–24, more.
_SIZE_SCORE = [-4] * 4 + [0] + [3] * 16 + [1] * 4 + [-1]


def _ends_with_credit(units: list[Unit], j: int) -> bool:
    """Does the paragraph starting at units[j] close with a photo credit or an author?

    Photo news and briefs are one paragraph and a credit; that credit is what
    sets them apart from a paragraph of the story above.
    """
    n = len(units)
    k = j
    while k + 1 < n and units[k + 1].kind in (Kind.TEXT, Kind.HEADLINE, Kind.CAPTION) and (
        not ends_sentence(units[k].text) or _CONTINUES.match(units[k + 1].text)
    ):
        k += 1
    for unit in units[k : k + 2]:
        if unit.kind is Kind.CAPTION:
            return True
        tail = _BRIEF_AUTHOR.search(unit.text)
        if tail and parse_credits(tail.group(1)) is not None:
            return True
    return False


def _leading_headlines(units: list[Unit]) -> list[Unit]:
    heads: list[Unit] = []
    for u in units[:3]:
        if u.kind is not Kind.HEADLINE:
            break
        heads.append(u)
    if len(heads) == len(units):  # nothing but short lines: keep the last as body
        heads = heads[:1]
    return heads


#: A headline line that ends by reporting what happened (…技能竞赛举行, …入围人选揭晓)
#: is the 主题 itself: a 引题 frames the news and never ends on its event.
_NEWS_DONE = re.compile(
    r"(?:举行|举办|召开|揭晓|开幕|闭幕|落幕|启动|开班|开课|开赛|开展|发布|出台|成立|揭牌|"
    r"签约|亮相|上线|开通|表彰|颁奖|启用|竣工|开工|通过|印发)[”’」』]?$"
)
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
        if first.endswith(("：", ":")) or _COLUMN_LABEL.match(first):
            return first, second, None
        if len(first) <= 5 and len(second) > len(first) + 2 and not _CRY.search(first):
            return first, second, None  # a place over the title: 湖南岳阳 / 艺术节请劳模坐前排
        if _NEWS_DONE.search(first) and not _KICKER_START.match(first):
            return None, first, second  # the first line reports the event: 主题 over 副题
        if len(first) >= len(second) + 4 and not _CRY.search(first):
            return first, second, None  # a long 引题 over a short 主题; a 副题 runs longer
        if _KICKER_START.match(first) and not _KICKER_START.match(second):
            return first, second, None
        return None, first, second
    return lines[0], lines[1], " ".join(lines[2:])


def _article(
    head: list[Unit],
    body: list[Unit],
    day: date,
    source: str,
    position: int,
    indented: bool = False,
) -> Article:
    """Pass 4: one article from its headline units and body units.

    Mends column breaks: a paragraph that does not end a sentence continues in
    the next body unit, and so does one whose next unit starts with
    punctuation no paragraph starts with (”她说…), and, on an indented page,
    one whose next line is flush left.

    Captions keep their photo credits as printed (`图为…。通讯员 吴海峰 摄`,
    `图为…。（张三 摄）`): the role is part of the credit, and a credit belongs
    with its picture, not in the byline. A credit on the line under its
    caption is joined to it (`models.with_credit`); a credit with no caption
    above it (a photo news item's `本报记者 甲乙 摄`, alone or glued to its one
    paragraph) is a caption of its own. `byline.photographers` names the same
    people, names only, for the feeds' authors.
    """
    kicker, title, subtitle = headline_parts([u.text for u in head])
    roles: dict[str, list[str]] = {}
    dateline: str | None = None
    photographers: list[str] = []
    captions: list[str] = []
    paragraphs: list[str] = []
    open_para = False  # is the last paragraph waiting for its continuation?
    uncredited: int | None = None  # the caption just read, if no credit followed it yet

    for u in body:
        if u.kind is Kind.BYLINE and not paragraphs and not roles:
            roles = _byline_line(u.text) or parse_credits(u.text) or {}
            continue
        if (
            u.kind is Kind.TEXT and not paragraphs and len(body) > 1 and u is body[0]
            and body[1].kind is Kind.LEAD and _caption_like(u)
        ):
            captions.append(u.text)  # a caption set between the headline and the lead
            uncredited = 0
            continue
        text = u.text
        after_caption, uncredited = uncredited, None
        if u.kind is Kind.CAPTION:
            caption, names = split_credit(text) or (text, [])
            photographers.extend(n for n in names if n not in photographers)
            # Photo news: its one body line carries the credit (…叫好。本报记者 甲乙 摄),
            # and so does the last piece of a paragraph cut by a column break. The
            # text is body; the credit, as printed, is the item's caption.
            if caption and names and not _CAPTION_START.match(caption) and (
                open_para or not paragraphs or _CONTINUES.match(caption)
            ):
                captions.append(text[len(caption):].strip(_SPACE))
                text = caption
            elif caption and not names and not _ORG_CREDIT.match(text):
                captions.append(caption)  # a caption whose credit may follow on its own
                uncredited = len(captions) - 1
                continue
            else:
                # A caption with its credit, kept as printed; or a credit alone (通讯员
                # 王五 摄, 某某供图), which belongs to the caption right above it.
                if after_caption is not None and (caption is None or not names):
                    captions[after_caption] = with_credit(captions[after_caption], text)
                else:
                    captions.append(text)
                continue
        runs_on = (
            indented
            and not u.indented
            and u.kind in (Kind.TEXT, Kind.HEADLINE)
            and not _SUBHEADING.match(text)
        )
        if paragraphs and (open_para or runs_on or _CONTINUES.match(text)):
            paragraphs[-1] = _join(paragraphs[-1], text)
        else:
            paragraphs.append(text)
        last = paragraphs[-1]
        # A numbered or bracketed subheading stands alone; any other short
        # unpunctuated line is more likely a paragraph cut by a column break.
        standalone = (
            u.kind is Kind.HEADLINE
            and not open_para
            and len(paragraphs) > 1
            and bool(_SUBHEADING.match(text))
        )
        open_para = not standalone and not ends_sentence(last)

    if paragraphs and (m := _DATELINE.match(paragraphs[0])):
        dateline = m.group(0)
        rest = paragraphs[0][m.end():].lstrip(_SPACE + "：:")
        pm = re.match(r"^[（(]([^（）()]{1,60})[）)]", rest)
        lead_roles = parse_credits(pm.group(1)) if pm else None
        reported = None if pm else _REPORTED_BY.match(rest)
        if reported:  # 本报讯 记者甲乙 通讯员丙丁报道 …, a house style without parentheses
            lead_roles = parse_credits(reported.group(1))
        if pm and lead_roles is not None:
            _merge(roles, lead_roles)
            rest = rest[pm.end():].lstrip(_SPACE + "：:")
        elif reported and lead_roles is not None:
            _merge(roles, lead_roles)
            rest = rest[reported.end():].lstrip(_SPACE + "：:")
        paragraphs[0] = rest
    if paragraphs and not any(roles.values()):
        # A brief's authors stand in parentheses at its end: …。（记者甲乙 通讯员丙丁）
        tail = _BRIEF_AUTHOR.search(paragraphs[-1]) or _signature(paragraphs[-1])
        author = parse_credits(tail.group(1)) if tail else None
        if tail and author is not None:
            _merge(roles, author)
            paragraphs[-1] = paragraphs[-1][: tail.start()].rstrip(_SPACE)
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
