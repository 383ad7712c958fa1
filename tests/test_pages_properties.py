"""Properties of the page reader: it never crashes, never invents, loses, doubles
or reorders body text, and reads back any page laid out the way PAGE-FORMAT says.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongbao_feed import pages
from gongbao_feed.pages import DecodeError, Kind, decode_page, normalize_text, parse_page

DAY = date(2025, 3, 2)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

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
    blocks, as the reader classified them.
    """
    paras = [p for art in parse_page(text, DAY).articles for p in art.paragraphs]
    normal = normalize_text(text)
    if _in_order(paras, _squash(normal)):
        return
    body = "".join(u.text for u in pages._units(normal) if pages._classify(u) is not Kind.CAPTION)
    assert _in_order(paras, _squash(body)), paras


# ---------------------------------------------------------------------------
# Generated pages read back exactly

# Body and headline text avoids the characters that make datelines, bylines and
# credits (本报 新华社 X报讯 记者 通讯员 实习生 摄 图为) and numbered subheadings
# (一、), so that a fragment cannot honestly be read as anything but body text.
CJK = "职工会劳模技能竞赛送温暖企业车间班组师傅徒弟岗位服务站驿站慰问困难家庭医疗互助安全生产培训"
CJK += "创新工作室集体协商资福利文化宫书屋夜校快递骑手环卫司机建筑地矿港口码头铁路公交园区街道乡村"
CJK += "城市今年以来近日全各级共计万余名为了在和与对把让从向开展举办推动提升加强持续深化的是有"
SURNAMES = "王李张刘陈杨黄吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯曹彭曾田董潘袁蔡蒋余杜叶程魏苏吕"
GIVEN = "文明华静晓伟芳娜敏强磊军洋勇艳杰娟涛超秀霞平刚桂英红玉兰凤梅琳雪婷宇浩然子涵欣怡佳悦"
PLACES = ["北京", "上海", "广州", "杭州", "南京", "成都", "兰州"]

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
    if text.endswith("”"):
        text += draw(words) + "说。"
    return text


_SENTENCE_DONE = re.compile(r"[。！？][”]*$")


def _can_break(text: str, i: int) -> bool:
    """A column break may fall anywhere but just after a sentence (a reader could not
    tell it from a paragraph break), unless what follows starts with punctuation that
    no paragraph starts with (”她说…)."""
    return 0 < i < len(text) and (not _SENTENCE_DONE.search(text[:i]) or text[i] in "”，、。！？%")


@st.composite
def broken(draw: st.DrawFn, text: str, start: int = 0) -> list[str]:
    """`text` cut by column breaks at random points at or after `start`."""
    points = [i for i in range(max(start, 1), len(text)) if _can_break(text, i)]
    if not points:
        return [text]
    cuts = sorted(set(draw(st.lists(st.sampled_from(points), max_size=3))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


person = st.builds(
    lambda a, b: a + b, st.sampled_from(SURNAMES), st.text(GIVEN, min_size=1, max_size=2)
)


def _credit_text(draw: st.DrawFn, roles: dict[str, list[str]], lead: str = "记者") -> str:
    """`记者 张三 李四 通讯员 王五`, roles in random order, names space- or 、-separated."""
    label = {"reporters": lead, "correspondents": "通讯员", "interns": "实习生"}
    order = draw(st.permutations([r for r in label if roles[r]]))
    parts = []
    for role in order:
        gap = draw(st.sampled_from([" ", ""])) if lead == "记者" else " "
        sep = draw(st.sampled_from([" ", "、"]))
        parts.append(label[role] + gap + sep.join(roles[role]))
    return " ".join(parts)


@dataclass
class Expected:
    headline: list[str]
    dateline: str | None
    byline: dict[str, list[str]]
    paragraphs: list[str]
    captions: list[str] = field(default_factory=list)


headline_words = st.one_of(words, words, words, words.map(lambda w: f"“{w}”"))
headlines = st.lists(
    st.lists(headline_words, min_size=1, max_size=4).map("".join).filter(lambda s: len(s) > 1),
    min_size=1,
    max_size=3,
    unique=True,
)


@st.composite
def articles(draw: st.DrawFn) -> tuple[Expected, list[tuple[str, list[str]]]]:
    """An article and its blocks, (kind, pieces), in page order."""
    headline = draw(headlines)
    if len(headline) == 2 and draw(st.booleans()):
        if draw(st.booleans()):  # a 副题 may run past the usual headline length
            headline[1] = "".join(draw(st.lists(words, min_size=14, max_size=20)))[:60]
        headline[1] = "——" + headline[1]
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
    body = draw(st.lists(paragraphs(), min_size=1, max_size=6))
    kind = draw(st.sampled_from(["lead", "lead", "wire", "ours", "brief", "feature"]))
    dateline: str | None = None
    prefix = tail = ""
    blocks: list[tuple[str, list[str]]] = [("head", headline)]
    if kind == "feature":
        blocks.append(("byline", [_credit_text(draw, roles, "本报记者")]))
    elif kind == "brief":  # 本报讯 日前，…。（王五）
        dateline, prefix = "本报讯", "本报讯 "
        if draw(st.booleans()):
            author = pool[: draw(st.integers(1, 2))]
            roles = {"reporters": author, "correspondents": [], "interns": []}
            tail = "（" + draw(st.sampled_from([" ", "、"])).join(author) + "）"
        else:
            roles = {"reporters": [], "correspondents": pool[:1], "interns": []}
            tail = f"（通讯员 {pool[0]}）"
    else:
        place = draw(st.sampled_from(PLACES))
        day = f"{draw(st.integers(1, 12))}月{draw(st.integers(1, 28))}日"
        dateline = {
            "lead": "本报讯",
            "wire": f"新华社{place}{draw(st.sampled_from([day, day, '']))}电",
            "ours": f"本报{place}{day}电",
        }[kind]
        prefix = f"{dateline}（{_credit_text(draw, roles)}）"
    for i, para in enumerate(body):
        head = prefix if i == 0 else ""
        pieces = draw(broken(head + para, len(head)))
        if i == len(body) - 1 and tail:
            if draw(st.booleans()):
                pieces[-1] += tail
            else:
                pieces.append(tail)  # a column break just before （王五）
        blocks.append(("para", pieces))

    photographers: list[str] = []
    captions: list[str] = []
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(pool[:1] + pool[-2:]))
        credit = f"{draw(st.sampled_from(['本报记者', '通讯员']))} {name} 摄"
        style = draw(st.sampled_from(["alone", "caption+credit", "caption/credit"]))
        if style == "alone":
            blocks.append(("credit", [credit]))
        else:
            caption = "图为" + draw(words) + draw(words) + "。"
            captions.append(caption)
            if style == "caption+credit":
                blocks.append(("credit", [caption + credit]))
            else:
                blocks += [("credit", [caption]), ("credit", [credit])]
        if name not in photographers:
            photographers.append(name)
    byline = {**roles, "photographers": photographers}
    return Expected(headline, dateline, byline, body, captions), blocks


@st.composite
def generated_pages(draw: st.DrawFn) -> tuple[str, list[Expected]]:
    arts = draw(st.lists(articles(), min_size=1, max_size=3))
    indented = draw(st.booleans())
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


@FAST
@given(generated_pages())
def test_generated_pages_read_back(page: tuple[str, list[Expected]]) -> None:
    text, expected = page
    got = parse_page(text, DAY).articles
    assert [a.title for a in got] and len(got) == len(expected), [a.title for a in got]
    for art, exp in zip(got, expected, strict=True):
        if len(exp.headline) == 3:
            assert (art.kicker, art.title, art.subtitle) == tuple(exp.headline)
        elif len(exp.headline) == 2:
            assert art.title in exp.headline
            other = next(h for h in exp.headline if h != art.title)
            assert other in (art.kicker, art.subtitle)
        else:
            assert (art.kicker, art.title, art.subtitle) == (None, exp.headline[0], None)
        assert art.dateline == exp.dateline
        assert list(art.paragraphs) == exp.paragraphs
        assert art.byline.to_dict() == exp.byline
        assert list(art.captions) == exp.captions
