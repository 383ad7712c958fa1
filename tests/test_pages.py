"""The page reader against hand-written pages, the real sample page, and unit cases.

Each fixture `tests/fixtures/pages/NAME.*` has a `NAME.expected.json` written by
hand from PAGE-FORMAT: either `{"articles": [...]}` or `{"error": "DecodeError"}`.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gongbao_feed.models import Article, Byline
from gongbao_feed.pages import (
    DecodeError,
    _units,
    decode_page,
    ends_sentence,
    headline_parts,
    normalize_text,
    parse_credits,
    parse_page,
    split_credit,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "pages"
# A page of our own in the shape of the newspaper's sample page (PAGE-FORMAT's
# sample-page.txt): six lead stories, mid-word column breaks, two two-line
# headlines, a photo credit on its own line, blank lines before the first headline.
SAMPLE = Path(__file__).parent / "fixtures" / "sample_page.txt"
DAY = date(2025, 3, 2)
ROLES = ("reporters", "correspondents", "interns", "photographers")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _fixture_names() -> list[str]:
    return sorted(p.name.removesuffix(".expected.json") for p in FIXTURES.glob("*.expected.json"))


def _page_file(name: str) -> Path:
    found = [p for p in FIXTURES.glob(f"{name}.*") if not p.name.endswith(".expected.json")]
    assert len(found) == 1, f"fixture {name}: expected one page file, found {found}"
    return found[0]


def _read(data: bytes) -> list[Article]:
    return parse_page(decode_page(data), DAY, source="fixture").articles


def assert_headline(art: Article, exp: dict[str, Any], where: str) -> None:
    """Compare the headline block; two lines may be read as kicker+title or title+subtitle."""
    lines = [exp[k] for k in ("kicker", "title", "subtitle") if exp[k] is not None]
    if len(lines) == 2:
        assert art.title in lines, f"{where}: title {art.title!r} is not one of {lines}"
        other = next(line for line in lines if line != art.title)
        assert other in (art.kicker, art.subtitle), f"{where}: {other!r} lost"
        assert None in (art.kicker, art.subtitle), f"{where}: a third headline line appeared"
    else:
        got = (art.kicker, art.title, art.subtitle)
        assert got == (exp["kicker"], exp["title"], exp["subtitle"]), where


def assert_articles(got: list[Article], expected: list[dict[str, Any]], label: str) -> None:
    titles = [a.title for a in got]
    assert len(got) == len(expected), f"{label}: {len(got)} articles {titles}"
    for i, (art, exp) in enumerate(zip(got, expected, strict=True)):
        where = f"{label} article {i + 1} ({exp['title']})"
        assert_headline(art, exp, where)
        assert art.dateline == exp["dateline"], where
        assert art.byline.to_dict() == {r: exp["byline"][r] for r in ROLES}, where
        assert list(art.captions) == exp["captions"], where
        assert list(art.paragraphs) == exp["paragraphs"], where
        assert art.date == DAY and art.position == i, where


@pytest.mark.parametrize("name", _fixture_names())
def test_fixture_page(name: str) -> None:
    data = _page_file(name).read_bytes()
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text("utf-8"))
    if "error" in expected:
        with pytest.raises(DecodeError):
            decode_page(data)
        return
    got = _read(data)
    assert_articles(got, expected["articles"], name)
    for art in got:
        blob = json.dumps(art.to_json(), ensure_ascii=False)
        assert not CONTROL.search(blob.replace("\\n", "")), f"{name}: control character kept"


def test_there_are_enough_fixtures() -> None:
    pages = [n for n in _fixture_names() if "error" not in _expected(n)]
    assert len(pages) >= 12
    assert len(_fixture_names()) - len(pages) >= 2  # a binary and an undecodable file


def _expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.expected.json").read_text("utf-8"))
    return data


def _utf8_fixtures() -> list[str]:
    out = []
    for name in _fixture_names():
        data = _page_file(name).read_bytes()
        if "error" in _expected(name) or data.startswith(codecs.BOM_UTF8):
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("encoding", ["gb18030-crlf", "utf-8-sig", "utf-16", "cr"])
@pytest.mark.parametrize("name", _utf8_fixtures())
def test_fixture_in_other_encodings(name: str, encoding: str) -> None:
    """The same page saved by an older newsroom system reads the same."""
    text = _page_file(name).read_bytes().decode("utf-8")
    if encoding == "gb18030-crlf":
        data = text.replace("\n", "\r\n").encode("gb18030")
    elif encoding == "cr":
        data = text.replace("\n", "\r").encode("utf-8")
    else:
        data = text.encode(encoding)
    assert_articles(_read(data), _expected(name)["articles"], f"{name} as {encoding}")


_INDENT = ("\u3000", "\t", "  ")


def _indented_fixtures() -> list[str]:
    """The fixture pages that mark paragraphs by indentation (headlines flush left)."""
    out = []
    for name in _utf8_fixtures():
        lines = [x for x in _page_file(name).read_text("utf-8").split("\n") if x.strip()]
        if 2 * sum(x.startswith(_INDENT) for x in lines) >= len(lines):
            out.append(name)
    return out


@pytest.mark.parametrize("name", _indented_fixtures())
def test_an_indented_page_reads_the_same_with_its_headlines_indented_too(name: str) -> None:
    """Layout systems export pages with every line indented, headlines too: the
    indentation then tells nothing, and the page still reads the same (every
    headline kept, no lead taken for a title)."""
    lines = _page_file(name).read_text("utf-8").split("\n")
    # Indent each flush line that starts a block of its own (a headline, a byline,
    # a credit); a flush line that carries on a broken paragraph stays as it is.
    starts = {u.line for u in _units("\n".join(lines))}
    moved = [
        "\u3000\u3000" + x if x.strip() and n in starts and not x.startswith(_INDENT) else x
        for n, x in enumerate(lines, start=1)
    ]
    assert moved != lines, f"{name}: nothing was flush left"
    got = parse_page("\n".join(moved), DAY, source="fixture").articles
    assert_articles(got, _expected(name)["articles"], f"{name} with indented headlines")


def test_byte_fixtures_really_are_bytes() -> None:
    """The encoding fixtures must stay what they claim to be when edited."""
    gb = _page_file("gb18030_crlf").read_bytes()
    assert b"\r\n" in gb and "　　".encode("gb18030") in gb
    with pytest.raises(UnicodeDecodeError):
        gb.decode("utf-8")
    bom = _page_file("bom_formfeed").read_bytes()
    assert bom.startswith(codecs.BOM_UTF8) and b"\f" in bom
    html = _page_file("html_controls").read_bytes()
    for needle in (b"<script>", b"&", b"\x01", b"\x0b"):
        assert needle in html


# ---------------------------------------------------------------------------
# A page in the sample's shape


@pytest.fixture(scope="module")
def sample() -> list[Article]:
    return parse_page(decode_page(SAMPLE.read_bytes()), DAY, source="sample").articles


def test_sample_articles_and_titles(sample: list[Article]) -> None:
    assert len(sample) == 6
    assert all(a.title for a in sample)
    assert len({a.title for a in sample}) == 6
    lines = [sum(x is not None for x in (a.kicker, a.title, a.subtitle)) for a in sample]
    assert lines == [1, 1, 1, 2, 2, 1]
    assert all(a.dateline == "本报讯" for a in sample)
    assert [len(a.paragraphs) for a in sample] == [5, 3, 3, 3, 4, 3]


def test_sample_bylines(sample: list[Article]) -> None:
    assert [a.byline.reporters for a in sample] == [
        ("程立新",), ("孟可欣",), ("谭子墨",), ("韦书宁",), ("付晓晴",), ("殷若兰",)
    ]
    assert [a.byline.correspondents for a in sample] == [(), (), (), (), (), ("卢晨阳",)]
    assert not any(a.byline.interns for a in sample)


def test_sample_photo_credit_stays_with_its_article(sample: list[Article]) -> None:
    hexi = [a for a in sample if "河西建设" in a.title]
    assert len(hexi) == 1
    assert hexi[0].byline.photographers == ("谭子墨",)
    assert [a for a in sample if a.byline.photographers] == hexi
    assert not any("摄" in p for a in sample for p in a.paragraphs)


def test_sample_column_breaks_are_mended(sample: list[Article]) -> None:
    for art in sample:
        for para in art.paragraphs:
            assert ends_sentence(para), f"{art.title}: unmended {para[-12:]!r}"


def test_sample_text_is_all_kept(sample: list[Article]) -> None:
    """Every character of the page comes out once: in a headline, dateline or paragraph,
    or as a name in a byline （记者 …） or the one photo credit (本报记者 … 摄)."""
    page = re.sub(r"\s", "", normalize_text(SAMPLE.read_text("utf-8")))
    kept = "".join(
        (a.kicker or "") + a.title + (a.subtitle or "") + (a.dateline or "") + "".join(a.paragraphs)
        for a in sample
    )
    bylines = sum(
        len("（记者）") + len("".join(a.byline.reporters))
        + (len("通讯员") + len("".join(a.byline.correspondents)) if a.byline.correspondents else 0)
        for a in sample
    )
    credit = len("本报记者") + len("谭子墨") + len("摄")
    assert len(page) - len(re.sub(r"\s", "", kept)) == bylines + credit


# ---------------------------------------------------------------------------
# Leads: dateline and byline


def _one(text: str) -> Article:
    arts = parse_page(text, DAY).articles
    assert len(arts) == 1, [a.title for a in arts]
    return arts[0]


OPENED = "书屋揭牌。"


@pytest.mark.parametrize(
    ("lead", "dateline", "roles", "paragraph"),
    [
        ("本报讯（记者 张三）书屋揭牌。", "本报讯", {"reporters": ["张三"]}, OPENED),
        (
            "本报讯（记者张三 通讯员李四）书屋揭牌。",
            "本报讯",
            {"reporters": ["张三"], "correspondents": ["李四"]},
            OPENED,
        ),
        (
            "本报讯（记者 张三 李四 通讯员 王五、赵六 实习生 钱七）书屋揭牌。",
            "本报讯",
            {
                "reporters": ["张三", "李四"],
                "correspondents": ["王五", "赵六"],
                "interns": ["钱七"],
            },
            OPENED,
        ),
        (
            "新华社上海3月2日电（记者 张三、李四）职工之家2日揭牌。",
            "新华社上海3月2日电",
            {"reporters": ["张三", "李四"]},
            "职工之家2日揭牌。",
        ),
        (
            "本报北京5月6日电（记者 周文 通讯员 文静）书屋揭牌。",
            "本报北京5月6日电",
            {"reporters": ["周文"], "correspondents": ["文静"]},
            OPENED,
        ),
        ("新华社北京电 书屋揭牌。", "新华社北京电", {}, OPENED),
        ("本报讯（通讯员 李四）书屋揭牌。", "本报讯", {"correspondents": ["李四"]}, OPENED),
        ("本报讯（实习生 钱七）书屋揭牌。", "本报讯", {"interns": ["钱七"]}, OPENED),
        ("本报讯(记者 张三)书屋揭牌。", "本报讯", {"reporters": ["张三"]}, OPENED),
        ("本报讯 书屋揭牌。（王五）", "本报讯", {"reporters": ["王五"]}, OPENED),
        ("本报讯 书屋揭牌。（王五、赵六）", "本报讯", {"reporters": ["王五", "赵六"]}, OPENED),
        ("本报讯 书屋揭牌。（通讯员 王五）", "本报讯", {"correspondents": ["王五"]}, OPENED),
        ("本报讯 书屋揭牌。（据新华社）", "本报讯", {}, OPENED + "（据新华社）"),
        ("本报讯 书屋揭牌。（综合）", "本报讯", {}, OPENED + "（综合）"),
        ("工人日报讯（记者 张三）书屋揭牌。", "工人日报讯", {"reporters": ["张三"]}, OPENED),
    ],
)
def test_lead(lead: str, dateline: str, roles: dict[str, list[str]], paragraph: str) -> None:
    art = _one(f"职工之家揭牌\n\n{lead}\n")
    assert art.title == "职工之家揭牌"
    assert art.dateline == dateline
    assert art.byline == Byline(**{k: tuple(v) for k, v in roles.items()})
    assert art.paragraphs == (paragraph,)


def test_brief_author_after_a_column_break() -> None:
    """（王五） cut off by a column break still ends the brief, and is no headline."""
    page = (
        "甲文\n\n本报讯 日前，甲事办成。\n\n（王五）\n\n"
        "引题在此\n乙文\n\n本报讯（记者 赵六）乙事。\n"
    )
    a, b = parse_page(page, DAY).articles
    assert a.byline == Byline(reporters=("王五",)) and a.paragraphs == ("日前，甲事办成。",)
    assert {b.kicker, b.title, b.subtitle} == {None, "引题在此", "乙文"}
    assert b.paragraphs == ("乙事。",)


def test_brief_author_is_taken_from_the_last_paragraph_only() -> None:
    art = _one("一则简讯\n\n本报讯 日前，职工之家揭牌。\n\n活动还将持续一周。（王五 赵六）\n")
    assert art.byline.reporters == ("王五", "赵六")
    assert art.paragraphs == ("日前，职工之家揭牌。", "活动还将持续一周。")


@pytest.mark.parametrize(
    "para",
    [
        "供销合作社为困难职工家庭送去电暖器和米面油。",
        "区融媒体中心电视台为劳模拍摄专题片，在全区播放后反响热烈。",
        "人民网友纷纷留言点赞，为他们的坚守送去祝福。",
        "本报记者在现场看到，工人们正在紧张施工。",
        "新华社记者在现场看到，工人们正在紧张施工。",
    ],
)
def test_body_text_is_not_taken_for_a_dateline(para: str) -> None:
    page = f"职工之家揭牌\n\n本报讯（记者 张三）近日，职工之家揭牌。\n\n{para}\n\n活动持续一周。\n"
    art = _one(page)
    assert art.paragraphs == ("近日，职工之家揭牌。", para, "活动持续一周。")


def test_feature_byline_line() -> None:
    art = _one("一家三代的工会缘\n\n本报记者 张三 通讯员 李四\n\n在桐林镇，提起邱家，人人称赞。\n")
    assert art.dateline is None
    assert art.byline == Byline(reporters=("张三",), correspondents=("李四",))
    assert art.paragraphs == ("在桐林镇，提起邱家，人人称赞。",)


def test_a_long_dash_subtitle_is_still_a_headline() -> None:
    """A 41-character 副题 must not turn the feature under it into the article above's body."""
    subtitle = "——记全国五一劳动奖章获得者、滨海重工集团焊接车间高级技师、首席技能专家许国强同志"
    page = (
        "甲文\n\n本报讯（记者 张三）甲事。\n\n"
        f"焊花里的青春\n{subtitle}\n\n本报记者 王五\n\n他十八岁进厂。\n"
    )
    a, b = parse_page(page, DAY).articles
    assert a.paragraphs == ("甲事。",)
    assert (b.title, b.subtitle) == ("焊花里的青春", subtitle)
    assert b.byline == Byline(reporters=("王五",)) and b.paragraphs == ("他十八岁进厂。",)


def test_feature_byline_above_a_dateline_is_one_article() -> None:
    art = _one("走进工地\n\n本报记者 张三\n\n本报讯（通讯员 李四）近日，工地开工。\n")
    assert art.byline == Byline(reporters=("张三",), correspondents=("李四",))
    assert art.dateline == "本报讯"


# ---------------------------------------------------------------------------
# Bylines and credits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("记者 张三", {"reporters": ["张三"]}),
        ("记者张三 通讯员李四", {"reporters": ["张三"], "correspondents": ["李四"]}),
        ("本报记者 张三、李四 实习生 王五", {"reporters": ["张三", "李四"], "interns": ["王五"]}),
        ("通讯员 刘文 文静", {"correspondents": ["刘文", "文静"]}),
        ("记者 欧阳晓明", {"reporters": ["欧阳晓明"]}),
        ("记者 阿依古丽·买买提", {"reporters": ["阿依古丽·买买提"]}),
        ("王五", {"reporters": ["王五"]}),
        ("王五、赵六", {"reporters": ["王五", "赵六"]}),
        ("据新华社", None),
        ("新华社", None),
        ("综合", None),
        ("本报综合", None),
        ("人民网", None),
        ("图文 张三", None),
        ("记者手记", None),
        ("记者观察", None),
        ("完", None),
        ("记者从市总工会获悉，今年以来全市新建职工之家一百个。", None),
        ("", None),
    ],
)
def test_parse_credits(text: str, expected: dict[str, list[str]] | None) -> None:
    got = parse_credits(text)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert {k: v for k, v in got.items() if v} == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("本报记者 张三 摄", (None, ["张三"])),
        ("通讯员 李四 摄", (None, ["李四"])),
        ("本报记者 张三 通讯员 李四 摄", (None, ["张三", "李四"])),
        ("（通讯员 李四 摄）", (None, ["李四"])),
        ("图为志愿者在社区服务。通讯员 王五 摄", ("图为志愿者在社区服务。", ["王五"])),
        ("图为志愿者在社区服务。（通讯员 王五 摄）", ("图为志愿者在社区服务。", ["王五"])),
        ("图为志愿者在社区服务。王五 摄", ("图为志愿者在社区服务。", ["王五"])),
        ("图为志愿者在社区服务。", ("图为志愿者在社区服务。", [])),
        ("新华社记者 张三 摄", (None, ["张三"])),
        ("职工们在车间里忙着拍摄", None),
        ("近日，职工之家揭牌。", None),
    ],
)
def test_split_credit(text: str, expected: tuple[str | None, list[str]] | None) -> None:
    assert split_credit(text) == expected


def test_column_label_after_a_credit_is_a_headline_not_a_byline() -> None:
    page = (
        "甲文\n\n本报讯（记者 张三）甲事。\n\n通讯员 李四 摄\n\n"
        "记者手记\n\n工地上的年夜饭\n\n本报记者 王五\n\n除夕夜，工地食堂。\n"
    )
    a, b = parse_page(page, DAY).articles
    assert a.byline == Byline(reporters=("张三",), photographers=("李四",))
    assert {b.kicker, b.title, b.subtitle} == {None, "记者手记", "工地上的年夜饭"}
    assert b.byline == Byline(reporters=("王五",))


def test_credits_belong_to_the_article_above() -> None:
    page = (
        "甲文标题\n\n本报讯（记者 张三）甲文正文。\n\n通讯员 李四 摄\n\n"
        "乙文标题\n\n本报讯（记者 王五）乙文正文。\n\n图为乙文的照片。赵六 摄\n\n"
        "丙文标题\n\n本报记者 钱七\n\n丙文正文。\n"
    )
    a, b, c = parse_page(page, DAY).articles
    assert a.byline.photographers == ("李四",) and a.paragraphs == ("甲文正文。",)
    assert a.captions == ("通讯员 李四 摄",)
    assert b.byline.photographers == ("赵六",) and b.captions == ("图为乙文的照片。赵六 摄",)
    assert c.byline == Byline(reporters=("钱七",))
    assert c.captions == () and c.paragraphs == ("丙文正文。",)


# ---------------------------------------------------------------------------
# Headlines


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], (None, "", None)),
        (["标题"], (None, "标题", None)),
        (["引题", "主题", "副题"], ("引题", "主题", "副题")),
        (["暖心托管班开进厂区", "——记某某"], (None, "暖心托管班开进厂区", "——记某某")),
        # A long first line that reports the event is the 主题; the short line under it a 副题.
        (["开发区总工会“巧手杯”焊工技能比武举行", "八十名焊工同场比拼"],
         (None, "开发区总工会“巧手杯”焊工技能比武举行", "八十名焊工同场比拼")),
        # A long first line that frames the news is the 引题 over a short 主题.
        (["聚焦新就业形态劳动者急难愁盼问题", "快递驿站添了暖心角"],
         ("聚焦新就业形态劳动者急难愁盼问题", "快递驿站添了暖心角", None)),
    ],
)
def test_headline_parts(
    lines: list[str], expected: tuple[str | None, str, str | None]
) -> None:
    assert headline_parts(lines) == expected


@pytest.mark.parametrize(
    "lines",
    [["弘扬劳模精神", "全市表彰先进职工"], ["全市表彰先进职工", "百名劳模受表彰"]],
)
def test_two_headline_lines_are_both_kept(lines: list[str]) -> None:
    kicker, title, subtitle = headline_parts(lines)
    assert title in lines
    assert {kicker, subtitle} == {None, next(x for x in lines if x != title)}


def test_headline_may_end_in_a_closing_quote() -> None:
    art = _one("为建设者送“福”\n\n本报讯（记者 张三）近日，工地迎来书法家。\n")
    assert art.title == "为建设者送“福”"


# ---------------------------------------------------------------------------
# Column breaks and layout


@pytest.mark.parametrize(
    ("pieces", "joined"),
    [
        (["参保人数同比增长", "12.6%，达到四万人。"], "参保人数同比增长12.6%，达到四万人。"),
        (["“这笔补助真及时。", "”她说，心里踏实多了。"], "“这笔补助真及时。”她说，心里踏实多了。"),
        (["有了更精", "准了解。"], "有了更精准了解。"),
        (["在区总工会的协调", "下，网点开通免费通道。"], "在区总工会的协调下，网点开通免费通道。"),
        (["讲的都是", "现场用得上的", "真本事。"], "讲的都是现场用得上的真本事。"),
        (["已累计培训职工1", "5万人次。"], "已累计培训职工15万人次。"),
        (["他说：“好。", "”随后离开。"], "他说：“好。”随后离开。"),
        (["1.", "5万名职工参加。"], "1.5万名职工参加。"),
        (["一", "、二两个车间参加。"], "一、二两个车间参加。"),
    ],
)
def test_column_break_is_mended(pieces: list[str], joined: str) -> None:
    body = "\n\n".join(pieces)
    page = f"职工之家揭牌\n\n本报讯（记者 张三）近日，职工之家揭牌。\n\n{body}\n\n活动持续一周。\n"
    assert _one(page).paragraphs == ("近日，职工之家揭牌。", joined, "活动持续一周。")


def test_indented_layout_with_unindented_continuation() -> None:
    page = (
        "职工之家揭牌\n"
        "　　本报讯（记者 张三）近日，职工之家\n"
        "揭牌。\n"
        "　　“真好。\n"
        "”职工说。\n"
        "　　活动持续一周。\n"
    )
    art = _one(page)
    assert art.paragraphs == ("近日，职工之家揭牌。", "“真好。”职工说。", "活动持续一周。")


def test_numbered_subheading_stands_alone() -> None:
    page = (
        "职工之家揭牌\n\n本报讯（记者 张三）近日，职工之家揭牌。\n\n"
        "一、建好阵地\n\n阵地建设有序推进。\n"
    )
    assert _one(page).paragraphs == ("近日，职工之家揭牌。", "一、建好阵地", "阵地建设有序推进。")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("结束。", True),
        ("结束！”", True),
        ("结束。”", True),
        ("结束……", True),
        ("结束。（王五）", True),
        ("职工子女托", False),
        ("为建设者送“福”", False),
        ("", False),
    ],
)
def test_ends_sentence(text: str, expected: bool) -> None:
    assert ends_sentence(text) is expected


# ---------------------------------------------------------------------------
# Text and bytes


def test_normalize_text() -> None:
    assert normalize_text("\ufeff甲\r\n乙\r丙\f丁") == "甲\n乙\n丙\n\n丁"
    assert normalize_text("职\x01工\x1f之\x7f家") == "职工之家"
    assert normalize_text("甲\ufeff乙") == "甲乙"


def test_decode_page_encodings() -> None:
    text = "职工之家揭牌\n\n本报讯（记者 张三）近日，职工之家揭牌。\n"
    assert decode_page(text.encode("utf-8")) == text
    assert decode_page(codecs.BOM_UTF8 + text.encode("utf-8")) == text
    assert decode_page(text.encode("gb18030")) == text
    assert decode_page(text.encode("utf-16")) == text
    assert decode_page(b"") == ""


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"%PDF-1.7\n" + bytes(range(256)),
        "职工".encode("gb18030") + b"\xff\xff\x80",
        codecs.BOM_UTF8 + b"\xff\xfe\xfd",
        codecs.BOM_UTF16_LE + b"\x00\xd8",
        bytes(range(1, 32)) * 4,
    ],
)
def test_decode_page_rejects(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_page(data)


def test_day_only_sets_date_and_id() -> None:
    text = _page_file("mixed_page").read_text("utf-8")
    one = parse_page(text, date(2025, 1, 1)).articles
    two = parse_page(text, date(2026, 6, 30)).articles
    assert [a.content() for a in one] == [a.content() for a in two]
    assert {a.date for a in one} == {date(2025, 1, 1)}
    assert [a.id for a in one] != [a.id for a in two]
    assert [replace(a, id="", date=DAY) for a in one] == [replace(a, id="", date=DAY) for a in two]


def test_empty_and_headline_only_pages() -> None:
    assert parse_page("", DAY).articles == []
    assert parse_page("\n\n　　\n\f", DAY).articles == []
    (art,) = parse_page("只有一行字", DAY).articles
    assert art.paragraphs == ("只有一行字",) or art.title == "只有一行字"


@pytest.mark.parametrize("text", ["……", "本报讯 ……", "？", "）", "（王五）"])
def test_a_derived_title_is_never_empty(text: str) -> None:
    for art in parse_page(text, DAY).articles:
        assert art.title.strip()


def test_ids_are_unique_when_titles_repeat() -> None:
    page = "简讯\n\n本报讯 甲事。（王五）\n\n简讯\n\n本报讯 乙事。（赵六）\n"
    arts = parse_page(page, DAY).articles
    assert [a.title for a in arts] == ["简讯", "简讯"]
    assert len({a.id for a in arts}) == 2


def test_a_question_headline_right_above_a_lead_is_the_title() -> None:
    text = (
        "职工福利如何更暖心？\n\n本报讯（记者 柯文）近日，区总工会召开座谈会。\n\n"
        "代表们说，要把实事办好。\n\n“为什么要这样做？”\n\n他笑着解释了原因。\n"
    )
    (article,) = parse_page(text, date(2026, 11, 20)).articles
    assert article.title == "职工福利如何更暖心？"
    assert article.paragraphs[-2:] == ("“为什么要这样做？”", "他笑着解释了原因。")


def test_page_headers_are_skipped_and_do_not_split_a_paragraph() -> None:
    text = (
        "第3版 要闻\n\n2026年11月20日 星期五\n\n园区职工食堂开张\n\n"
        "本报讯（记者 柯文）园区第一家职工食堂开\n\n\f\n要闻 第4版\n\n张，每天供应三餐。\n"
    )
    page = parse_page(text, date(2026, 11, 20))
    (article,) = page.articles
    assert (article.kicker, article.title) == (None, "园区职工食堂开张")
    assert article.paragraphs == ("园区第一家职工食堂开张，每天供应三餐。",)
    assert article.section == "要闻"
    # The headers that name the section are read, not skipped: only the date line is.
    assert page.warnings == ["line 3: skipped page header '2026年11月20日 星期五'"]


def test_the_demos_own_page_keeps_every_headline() -> None:
    """inbox/2026-11-21-02.txt (GB18030, every line indented, headlines too), as
    `make demo` publishes it: three articles under their own headlines."""
    data = (ROOT / "inbox" / "2026-11-21-02.txt").read_bytes()
    got = parse_page(decode_page(data), date(2026, 11, 21), source="demo").articles
    assert [a.title for a in got] == [
        "“金牌工人”的三十年",
        "市职工服务中心上线“一键办”平台",
        "东港区为货车司机发放“司机之家”服务卡",
    ]
    assert [a.dateline for a in got] == [None, "本报讯", "本报讯"]
    assert got[0].paragraphs[-1].startswith("谈到今后的打算")  # no headline folded into the text
