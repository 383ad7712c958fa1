"""Properties of the page reader: it never crashes, never invents, loses, doubles
or reorders body text, and reads back any page laid out the way PAGE-FORMAT says.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongbao_feed import pages
from gongbao_feed.pages import DecodeError, Kind, decode_page, normalize_text, parse_page

DAY = date(2025, 3, 2)
# 200 examples in CI; GONGBAO_EXAMPLES=20000 for a long run offline.
FAST = settings(
    max_examples=int(os.environ.get("GONGBAO_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# ---------------------------------------------------------------------------
# Arbitrary input

# Pieces of the page format, so that random text often looks like a page.
TOKENS = [
    "本报讯", "本报北京3月2日电", "新华社上海电", "（", "）", "(", ")", "记者", "本报记者",
    "通讯员", "实习生", " ", "　　", "、", "，", "。", "！", "？", "“", "”", "……", "摄", "图为",
    "张三", "李四", "王五", "职工", "工会", "劳模", "技能竞赛", "送温暖", "12.6%", "2025年",
    "一、", "——", "\n", "\n\n", "\r\n", "\f", "\v", "\x01", "\ufeff", "<script>", "&", "AED",
]
page_like_text = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=3)), max_size=60).map("".join),
)
_GAPS = re.compile(r"[\s\u200b]")


def _squash(text: str) -> str:
    return _GAPS.sub("", text)


@FAST
@given(page_like_text)
def test_parse_page_never_raises(text: str) -> None:
    parsed = parse_page(text, DAY, source="random.txt")
    for art in parsed.articles:
        assert art.title
        assert all(p for p in art.paragraphs)


@FAST
@given(st.one_of(st.binary(), page_like_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_decode_page_only_raises_decode_error(data: bytes) -> None:
    try:
        text = decode_page(data)
    except DecodeError:
        return
    parse_page(text, DAY)


def _in_order(paragraphs: list[str], page: str) -> bool:
    pos = 0
    for para in paragraphs:
        found = page.find(_squash(para), pos)
        if found < 0:
            return False
        pos = found + len(_squash(para))
    return True


@FAST
@given(page_like_text)
def test_paragraphs_come_from_the_page_in_order(text: str) -> None:
    """Each paragraph is page text, and no paragraph repeats or overtakes another.

    A paragraph cut by a photo and its caption (…她 ⏎⏎ 通讯员 王五 摄 ⏎⏎ 说。) is
    mended across the caption, so the page is also compared without its caption
    blocks and the page headers it skips, as the reader classified them.
    """
    paras = [p for art in parse_page(text, DAY).articles for p in art.paragraphs]
    normal = normalize_text(text)
    if _in_order(paras, _squash(normal)):
        return
    skipped = (Kind.CAPTION, Kind.FURNITURE)  # page headers and nameless credits are dropped
    body = "".join(u.text for u in pages._units(normal) if pages._classify(u) not in skipped)
    assert _in_order(paras, _squash(body)), paras


# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# Generated pages read back exactly
#
# A generated page mixes every kind of article that real pages carry (PAGE-FORMAT,
# "What real pages also carry"): lead stories, wire copy and 本报…讯/电 datelines,
# briefs with and without a dateline, photo news with the credit on its own line or
# glued to its body line, features with and without a byline line, commentaries,
# kickers ending in ：, question headlines, names padded for alignment. Column
# breaks fall at random: mid-word, right after 。, and inside headline-like
# stretches. The generator leaves out only the cuts no reader can see (README, "What
# the reader cannot tell apart"): on a page without indentation, a paragraph that
# follows a finished line, cut so that its first piece is a short line with no
# sentence end, is a headline on the page.

# Body and headline text avoids the characters that make datelines, bylines and
# credits (本报 新华社 X报讯 记者 通讯员 实习生 评论员 摄 图为) and numbered
# subheadings (一、), so that a fragment cannot honestly be read as anything but text.
CJK = "职工会劳模技能竞赛送温暖企业车间班组师傅徒弟岗位服务站驿站慰问困难家庭医疗互助安全生产培训"
CJK += "创新工作室集体协商资福利文化宫书屋夜校快递骑手环卫司机建筑地矿港口码头铁路公交园区街道乡村"
CJK += "城市各级共计万余名为了在和与对把让从向开展举办推动提升加强持续深化的是有"
SURNAMES = "王李张刘陈杨黄吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯曹彭曾田董潘袁蔡蒋余杜叶程魏苏吕"
GIVEN = "文明华静晓伟芳娜敏强磊军洋勇艳杰娟涛超秀霞平刚桂英红玉兰凤梅琳雪婷宇浩然子涵欣怡佳悦"
PLACES = ["北京", "上海", "广州", "杭州", "南京", "成都", "兰州"]
# How a story opens when it has no lead: a time, then a comma.
OPENERS = ["近日，", "日前，", "上周，", "今年以来，", "清晨，", "凌晨五点，", "9月5日，"]

# One draw per word keeps generation cheap: single characters, and 2- to 4-character
# slices of the list above, which run across word boundaries as real text does.
VOCAB = sorted({*CJK, *(CJK[i : i + n] for n in (2, 3, 4) for i in range(0, len(CJK) - n, n))})
words = st.sampled_from(VOCAB)
tokens = st.sampled_from(
    [*VOCAB, *(w + "，" for w in VOCAB[::7]), *(w + "、" for w in VOCAB[::11])]
    + ["12.6%", "300", "2025年", "1.5万", "45%"] * 4
)


@st.composite
def sentences(draw: st.DrawFn) -> str:
    """One sentence, possibly a quotation: “…。”"""
    body = "".join(draw(st.lists(tokens, min_size=1, max_size=5))).rstrip("，、")
    end = draw(st.sampled_from(["。", "。", "。", "！", "？"]))
    if draw(st.integers(0, 3)) == 0:
        return f"“{body}{end}”"
    return body + end


@st.composite
def paragraphs(draw: st.DrawFn) -> str:
    text = "".join(draw(st.lists(sentences(), min_size=1, max_size=2)))
    # No paragraph opens with one character and a comma, or with a particle.
    if re.match(r"^(?:.[，、]|[的着们地得])", text):
        text = draw(words) + text
    if text.endswith("”"):
        text += draw(words) + "说。"
    return text


_DONE = re.compile(r"[。！？][”]*$")
_GOES_ON = "”，、。！？%"  # a piece that starts with one of these finishes the line above


def _short_line(piece: str) -> bool:
    """What a reader must take for a headline when it stands after a finished line:
    short, with no sentence end but perhaps a final ？ or ！."""
    return len(piece) <= 40 and not re.search("[。！？]", piece[:-1] + piece[-1:].strip("？！"))


def _visible(pieces: list[str], after_finished: bool) -> list[str]:
    """Undo the cuts no reader can see: a short unpunctuated piece standing after a
    finished line, with a new sentence after it, is a headline on the page."""
    out = list(pieces)
    m = 0
    while m < len(out):
        follows = after_finished if m == 0 else bool(_DONE.search(out[m - 1]))
        if m == len(out) - 1:  # the last piece: the next paragraph's start is below it
            if m and follows and _short_line(out[m]):
                out[m - 1 :] = [out[m - 1] + out[m]]
            break
        if follows and _short_line(out[m]) and out[m + 1][0] not in _GOES_ON:
            out[m : m + 2] = [out[m] + out[m + 1]]
            continue
        m += 1
    return out


@st.composite
def broken(draw: st.DrawFn, text: str, start: int = 0, after_stop: bool = True) -> list[str]:
    """`text` cut by column breaks at random points at or after `start`; with
    `after_stop` False, never right after a sentence end."""
    points = [
        i
        for i in range(max(start, 1), len(text))
        if after_stop or not _DONE.search(text[:i]) or text[i] in _GOES_ON
    ]
    if not points:
        return [text]
    cuts = sorted(set(draw(st.lists(st.sampled_from(points), max_size=3))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _paragraphs_seen(pieces: list[str], indented: bool) -> list[str]:
    """The paragraphs a reader sees in these pieces: without indentation, a cut right
    after a sentence end looks like (and is read as) a paragraph break."""
    out = [pieces[0]]
    for piece in pieces[1:]:
        if not indented and _DONE.search(out[-1]) and piece[0] not in _GOES_ON:
            out.append(piece)
        else:
            out[-1] += piece
    return out


person = st.builds(
    lambda a, b: a + b, st.sampled_from(SURNAMES), st.text(GIVEN, min_size=1, max_size=2)
)


def _printed(draw: st.DrawFn, name: str) -> str:
    """A two-character name as layout may pad it: 王伟, 王　伟, 王 伟."""
    if len(name) == 2:
        return name[0] + draw(st.sampled_from(["", "", "\u3000", " "])) + name[1]
    return name


def _credit_text(draw: st.DrawFn, roles: dict[str, list[str]], lead: str = "记者") -> str:
    """`记者 张三 李四 通讯员 王五`, roles in random order, names space- or 、-separated."""
    label = {"reporters": lead, "correspondents": "通讯员", "interns": "实习生"}
    order = draw(st.permutations([r for r in label if roles[r]]))
    parts = []
    for role in order:
        gap = draw(st.sampled_from([" ", ""])) if lead == "记者" else " "
        sep = draw(st.sampled_from([" ", "、"]))
        parts.append(label[role] + gap + sep.join(_printed(draw, n) for n in roles[role]))
    return " ".join(parts)


@dataclass
class Expected:
    kind: str
    headline: list[str]
    dateline: str | None
    byline: dict[str, list[str]]
    paragraphs: list[str]
    captions: list[str] = field(default_factory=list)


headline_words = st.one_of(words, words, words, words.map(lambda w: f"“{w}”"))
# A headline does not end on a particle or preposition (…在, …的).
PARTICLES = "的了着和与及或在对把被将向从以由等之其并而让给得地是为"
headline_line = (
    st.lists(headline_words, min_size=1, max_size=4)
    .map("".join)
    .filter(lambda s: s.rstrip("”")[-1:] not in PARTICLES)
    # Two or three characters led by a common surname, under a headline, is the
    # author's name standing alone (韩星海): README, "What it still cannot tell apart".
    .filter(lambda s: not (len(s) <= 3 and s[0] in pages._SURNAMES))
)
headlines = st.lists(
    headline_line.filter(lambda s: len(s) > 1), min_size=1, max_size=3, unique=True
)
# Without a lead or byline below it, a headline has to look like one: 4 characters
# or more (README: shorter lines there are read as text).
free_headlines = st.one_of(
    headline_line.filter(lambda s: len(s) >= 5).map(lambda s: [s]),
    st.lists(headline_line.filter(lambda s: len(s) >= 4), min_size=2, max_size=3, unique=True),
)

KINDS = [
    "lead", "lead", "wire", "ours", "ours_xun", "brief",  # with a dateline
    "feature", "commentary",  # a byline line under the headline
    "photo", "photo_glued", "brief_no_dateline", "no_lead",  # nothing above the text
]


@st.composite
def articles(draw: st.DrawFn, indented: bool) -> tuple[Expected, list[tuple[str, list[str]]]]:
    """An article and its blocks, (kind, pieces), in page order."""
    kind = draw(st.sampled_from(KINDS))
    free = kind in ("photo", "photo_glued", "brief_no_dateline", "no_lead")
    headline = draw(free_headlines if free else headlines)
    if len(headline) == 2 and draw(st.booleans()):
        if draw(st.booleans()):  # a 副题 may run past the usual headline length
            headline[1] = "".join(draw(st.lists(words, min_size=14, max_size=20)))[:60]
        headline[1] = "——" + headline[1]
    elif len(headline) >= 2 and draw(st.integers(0, 3)) == 0:
        headline[0] = draw(st.sampled_from(PLACES)) + "："  # a kicker: 西川：
    if kind == "commentary" and draw(st.booleans()):
        mark = draw(st.sampled_from(["？", "！"]))
        headline = [(draw(headline_line) + "，" + draw(headline_line))[:28] + mark]
    pool = draw(st.lists(person, min_size=6, max_size=6, unique=True))
    counts = [draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(0, 1))]
    if draw(st.booleans()):
        counts[0] = 0  # correspondent- or intern-only bylines
        counts[draw(st.sampled_from([1, 2]))] += 1
    roles = {
        "reporters": pool[: counts[0]],
        "correspondents": pool[counts[0] : counts[0] + counts[1]],
        "interns": pool[counts[0] + counts[1] : sum(counts)],
    }
    nobody: dict[str, list[str]] = {"reporters": [], "correspondents": [], "interns": []}
    body = draw(st.lists(paragraphs(), min_size=1, max_size=6))
    if free and _short_line(body[0][:-1]):
        body[0] += "".join(draw(st.lists(words, min_size=3, max_size=8))) + "。"  # not a cry
    dateline: str | None = None
    prefix = tail = ""
    photo_credit: list[str] = []
    photographers: list[str] = []
    blocks: list[tuple[str, list[str]]] = [("head", headline)]
    after_stop = True
    if kind == "feature":
        blocks.append(("byline", [_credit_text(draw, roles, "本报记者")]))
    elif kind == "commentary":
        roles = {**nobody, "reporters": pool[:1]}
        blocks.append(("byline", [f"本报评论员 {_printed(draw, pool[0])}"]))
    elif kind == "brief":  # 本报讯 日前，…。（王五）
        dateline, prefix = "本报讯", "本报讯 "
        if draw(st.booleans()):
            author = pool[: draw(st.integers(1, 2))]
            roles = {**nobody, "reporters": author}
            tail = "（" + draw(st.sampled_from([" ", "、"])).join(author) + "）"
        else:
            roles = {**nobody, "correspondents": pool[:1]}
            tail = f"（通讯员 {pool[0]}）"
    elif kind == "brief_no_dateline":  # …三百余人参加。（记者甲乙 通讯员丙丁 戊己）
        body = body[:1]
        after_stop = False  # one paragraph, then its authors
        if draw(st.booleans()):
            tail = f"（{_credit_text(draw, roles)}）"
        else:
            roles = {**nobody, "reporters": pool[:2]}
            tail = f"（{_printed(draw, pool[0])} {_printed(draw, pool[1])}）"
    elif kind in ("photo", "photo_glued"):  # headline, one paragraph, a credit
        body = [draw(st.sampled_from(OPENERS)) + body[0]]
        after_stop = False
        roles = nobody
        photographers = pool[:2]
        tail = f"本报记者 {_printed(draw, pool[0])} 本报通讯员 {_printed(draw, pool[1])} 摄"
        photo_credit = [tail]  # the item's caption: its credit, as printed
    elif kind == "no_lead":
        roles = nobody
        if not indented:  # with no lead and no credit, a story opens with its time
            body[0] = draw(st.sampled_from(OPENERS)) + body[0]
    else:
        place = draw(st.sampled_from(PLACES))
        day = f"{draw(st.integers(1, 12))}月{draw(st.integers(1, 28))}日"
        dateline = {
            "lead": "本报讯",
            "wire": f"新华社{place}{draw(st.sampled_from([day, day, '']))}电",
            "ours": f"本报{place}{day}电",
            "ours_xun": f"本报{place}{day}讯",
        }[kind]
        prefix = f"{dateline}（{_credit_text(draw, roles)}）"
    free_start = free or kind == "no_lead"
    seen: list[str] = []
    for i, para in enumerate(body):
        head = prefix if i == 0 else ""
        # A cut inside 近日， would hide the sign that a story opens here.
        opener = next((len(o) for o in OPENERS if i == 0 and para.startswith(o)), 0)
        pieces = draw(broken(head + para, max(len(head), opener), after_stop))
        pieces = _visible(pieces, after_finished=i > 0 or (free_start and not head))
        shown = _paragraphs_seen(pieces, indented)
        shown[0] = shown[0][len(head) :]
        seen += shown
        if i == len(body) - 1 and tail:
            if kind == "photo_glued" or draw(st.booleans()):
                pieces[-1] += tail
            elif kind == "photo":
                blocks.append(("para", pieces))
                blocks.append(("credit", [tail]))
                continue
            else:
                pieces.append(tail)  # a column break just before （王五）
        blocks.append(("para", pieces))

    # A caption keeps its credit as printed; a credit on the line under its caption
    # joins it, and a credit alone is a caption of its own.
    captions: list[str] = photo_credit
    for _ in range(draw(st.integers(0, 2)) if kind not in ("photo", "photo_glued") else 0):
        name = draw(st.sampled_from(pool[:1] + pool[-2:]))
        credit = f"{draw(st.sampled_from(['本报记者', '通讯员']))} {_printed(draw, name)} 摄"
        style = draw(st.sampled_from(["alone", "caption+credit", "caption/credit", "(credit)"]))
        if style == "alone":
            blocks.append(("credit", [credit]))
            captions.append(credit)
        else:
            caption = "图为" + draw(words) + draw(words) + "。"
            if style == "caption+credit":
                blocks.append(("credit", [caption + credit]))
                captions.append(caption + credit)
            elif style == "(credit)":
                blocks.append(("credit", [f"{caption}（{credit}）"]))
                captions.append(f"{caption}（{credit}）")
            else:
                blocks += [("credit", [caption]), ("credit", [credit])]
                captions.append(caption + credit)
        if name not in photographers:
            photographers.append(name)
    byline = {**roles, "photographers": photographers}
    return Expected(kind, headline, dateline, byline, seen, captions), blocks


@st.composite
def generated_pages(draw: st.DrawFn) -> tuple[str, list[Expected]]:
    indented = draw(st.booleans())
    arts = draw(st.lists(articles(indented), min_size=1, max_size=4))
    out: list[str] = []
    for _, blocks in arts:
        for kind, pieces in blocks:
            gap = "\n" * draw(st.integers(1, 3)) if not indented else "\n"
            if kind == "head":
                sep = draw(st.sampled_from(["\n", "\n\n"]))
                out.append(sep.join(pieces) + gap)
            elif kind == "para" and indented:
                joiner = draw(st.sampled_from(["\n", "\n\n"]))
                out.append("　　" + joiner.join(pieces) + "\n")
            elif kind == "para":
                breaks = st.sampled_from(["\n\n", "\n\n", "\n\n\n", "\f", "\n\f\n"])
                out.append("".join(p + draw(breaks) for p in pieces[:-1]) + pieces[-1] + "\n\n")
            else:
                out.append(pieces[0] + gap + ("\n" if not indented else ""))
        if draw(st.booleans()) and draw(st.booleans()):
            out.append("\f")
    text = draw(st.sampled_from(["", "\n\n", "\ufeff"])) + "".join(out)
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return text, [e for e, _ in arts]


def _check_read_back(page: tuple[str, list[Expected]]) -> None:
    text, expected = page
    got = parse_page(text, DAY).articles
    assert [a.title for a in got] and len(got) == len(expected), (
        [a.title for a in got], [(e.kind, e.headline) for e in expected]
    )
    for art, exp in zip(got, expected, strict=True):
        where = exp.kind
        if len(exp.headline) == 3 or exp.headline[0].endswith("："):
            assert [art.kicker, art.title, art.subtitle][: len(exp.headline)] == exp.headline
        elif len(exp.headline) == 2:
            assert art.title in exp.headline, where
            other = next(h for h in exp.headline if h != art.title)
            assert other in (art.kicker, art.subtitle), where
        else:
            assert (art.kicker, art.title, art.subtitle) == (None, exp.headline[0], None), where
        assert art.dateline == exp.dateline, where
        assert list(art.paragraphs) == exp.paragraphs, where
        assert art.byline.to_dict() == exp.byline, where
        assert list(art.captions) == exp.captions, where


@FAST
@given(generated_pages())
def test_generated_pages_read_back(page: tuple[str, list[Expected]]) -> None:
    _check_read_back(page)


@FAST
@given(st.lists(st.sampled_from(KINDS), min_size=1, max_size=1).flatmap(
    lambda _: generated_pages()))
def test_every_kind_is_generated(page: tuple[str, list[Expected]]) -> None:
    """Guards the generator itself: each page's articles are of known kinds."""
    assert {e.kind for e in page[1]} <= set(KINDS)
