"""The kinds of article real pages carry besides the lead story (PAGE-FORMAT, "What
real pages also carry"), and the one decision the reader guesses at: is a short line
without a full stop a headline, or a piece of a paragraph cut by a column break?

Every page here is written for these tests. The four `ISSUE_*` pages are the issue's
examples; each stands for a whole kind and is read in both layouts.
"""

from __future__ import annotations

from datetime import date

import pytest

from gongbao_feed.models import Article, Byline
from gongbao_feed.pages import parse_credits, parse_page

DAY = date(2026, 9, 6)


def read(text: str) -> list[Article]:
    return parse_page(text, DAY).articles


def blank_lines(indented: str) -> str:
    """The same page laid out with blank lines between flush-left blocks."""
    return "\n\n".join(line.lstrip("\u3000") for line in indented.splitlines()) + "\n"


def layouts(page: str) -> list[str]:
    return [page, blank_lines(page)]


ISSUE_TWO_ARTICLES = (
    "东湖区工会举办读书会\n"
    "　　本报讯（记者 周一）日前，东湖区工会举办职工读书会。\n"
    "西岭厂开展消防演练\n"
    "　　上周，西岭厂组织职工开展消防演练，百余人参加。\n"
)
ISSUE_PHOTO_NEWS = (
    "车间里的练兵场\n"
    "　　9月5日，南桥机械厂钳工在车间比武，工友们围观叫好。本报记者 吴二 本报通讯员 郑三 摄\n"
)
ISSUE_BRIEF = (
    "北桥镇职工踊跃参加技能比武\n"
    "　　北桥镇总工会组织职工开展技能比武，300余人参赛。（记者孙六 通讯员冯七 陈八）\n"
)
ISSUE_COMMENTARY = (
    "加班费，为何总是算不清？\n"
    "　　本报评论员 梁十\n"
    "　　一些企业把加班费藏在绩效里，职工很难算明白。\n"
)


@pytest.mark.parametrize("page", layouts(ISSUE_TWO_ARTICLES))
def test_an_article_with_no_dateline_and_no_author_is_its_own_article(page: str) -> None:
    first, second = read(page)
    assert (first.title, first.dateline, first.byline.reporters) == (
        "东湖区工会举办读书会", "本报讯", ("周一",)
    )
    assert first.paragraphs == ("日前，东湖区工会举办职工读书会。",)
    assert (second.title, second.dateline, second.byline) == ("西岭厂开展消防演练", None, Byline())
    assert second.paragraphs == ("上周，西岭厂组织职工开展消防演练，百余人参加。",)


@pytest.mark.parametrize("page", layouts(ISSUE_PHOTO_NEWS))
def test_photo_news_with_its_credit_at_the_end_of_its_body_line(page: str) -> None:
    (art,) = read(page)
    assert art.title == "车间里的练兵场"
    assert art.byline == Byline(photographers=("吴二", "郑三"))
    assert art.paragraphs == ("9月5日，南桥机械厂钳工在车间比武，工友们围观叫好。",)
    assert art.captions == ("本报记者 吴二 本报通讯员 郑三 摄",)  # the credit, as printed


@pytest.mark.parametrize("page", layouts(ISSUE_BRIEF))
def test_a_brief_without_a_dateline_takes_its_authors_from_the_end(page: str) -> None:
    (art,) = read(page)
    assert art.dateline is None
    assert art.byline == Byline(reporters=("孙六",), correspondents=("冯七", "陈八"))
    assert art.paragraphs == ("北桥镇总工会组织职工开展技能比武，300余人参赛。",)


@pytest.mark.parametrize("page", layouts(ISSUE_COMMENTARY))
def test_a_commentary_keeps_its_question_headline_and_its_commentator(page: str) -> None:
    (art,) = read(page)
    assert (art.kicker, art.title, art.subtitle) == (None, "加班费，为何总是算不清？", None)
    assert art.byline == Byline(reporters=("梁十",))
    assert art.paragraphs == ("一些企业把加班费藏在绩效里，职工很难算明白。",)


def test_a_page_mixing_every_kind_reads_as_it_was_written() -> None:
    page = "\n".join([
        ISSUE_TWO_ARTICLES.rstrip("\n"),
        ISSUE_COMMENTARY.rstrip("\n"),
        ISSUE_PHOTO_NEWS.rstrip("\n"),
        ISSUE_BRIEF.rstrip("\n"),
    ])
    titles = [a.title for a in read(page)]
    assert titles == [
        "东湖区工会举办读书会", "西岭厂开展消防演练", "加班费，为何总是算不清？",
        "车间里的练兵场", "北桥镇职工踊跃参加技能比武",
    ]
    assert [a.title for a in read(blank_lines(page))] == titles


# ---------------------------------------------------------------------------
# Datelines, credits, names


@pytest.mark.parametrize(
    ("lead", "dateline"),
    [
        ("本报西川4月9日讯（记者 甲乙）书屋揭牌。", "本报西川4月9日讯"),
        ("本报西川4月9日电（记者 甲乙）书屋揭牌。", "本报西川4月9日电"),
        ("本报讯（记者 甲乙）书屋揭牌。", "本报讯"),
    ],
)
def test_datelines_with_a_place_and_a_date(lead: str, dateline: str) -> None:
    (art,) = read(f"河畔书屋揭牌\n\n{lead}\n")
    assert art.dateline == dateline and art.byline.reporters == ("甲乙",)
    assert art.paragraphs == ("书屋揭牌。",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("记者 王　芳 通讯员 石　磊", {"reporters": ["王芳"], "correspondents": ["石磊"]}),
        ("记者 王 芳 李小川", {"reporters": ["王芳", "李小川"]}),
        ("本报记者 王 芳、石 磊", {"reporters": ["王芳", "石磊"]}),
        ("通讯员 卓雅　龚伟", {"correspondents": ["卓雅", "龚伟"]}),
        ("本报评论员 梁十", {"reporters": ["梁十"]}),
        ("记者 王", None),  # one character is never a name
    ],
)
def test_names_padded_for_alignment_are_one_name(
    text: str, expected: dict[str, list[str]] | None
) -> None:
    got = parse_credits(text)
    assert (None if got is None else {k: v for k, v in got.items() if v}) == expected


def test_a_credit_in_parentheses_after_a_caption_and_a_photo_news_credit_alone() -> None:
    page = (
        "夜校开课\n\n本报讯（记者 甲乙）夜校昨晚开课。\n\n"
        "职工在夜校上课。（本报记者 甲乙 摄）\n\n"
        "码头上的“老师傅”\n\n9月3日，码头工人在检修吊机。\n\n本报记者 丙丁 本报通讯员 戊己 摄\n"
    )
    a, b = read(page)
    assert a.captions == ("职工在夜校上课。（本报记者 甲乙 摄）",)
    assert a.byline.photographers == ("甲乙",)
    assert b.paragraphs == ("9月3日，码头工人在检修吊机。",)
    assert b.captions == ("本报记者 丙丁 本报通讯员 戊己 摄",)
    assert b.byline == Byline(photographers=("丙丁", "戊己"))


def test_a_kicker_ending_in_a_colon_is_the_kicker() -> None:
    (art,) = read("西川：\n职工驿站开到地铁口\n\n本报讯（记者 甲乙）驿站今天启用。\n")
    assert (art.kicker, art.title) == ("西川：", "职工驿站开到地铁口")


def test_a_feature_with_no_lead_and_a_dash_subtitle() -> None:
    page = (
        "甲文\n\n本报讯（记者 甲乙）甲事办成了。\n\n"
        "守夜的人\n——记公交场站调度员\n\n"
        "深夜的场站很安静，调度室的灯还亮着。\n\n她在这里守了六年。\n"
    )
    a, b = read(page)
    assert a.paragraphs == ("甲事办成了。",)
    assert (b.title, b.subtitle, b.dateline) == ("守夜的人", "——记公交场站调度员", None)
    assert b.paragraphs == ("深夜的场站很安静，调度室的灯还亮着。", "她在这里守了六年。")


# ---------------------------------------------------------------------------
# Headline or column-break fragment: the neighbourhood decides (headline_score)

LEAD = "职工之家揭牌\n\n本报讯（记者 甲乙）近日，职工之家揭牌。\n\n"


@pytest.mark.parametrize(
    ("middle", "paragraphs"),
    [
        # A long unpunctuated front of a paragraph, cut at the bottom of a column.
        (
            "南湖区第一人民医院是市属三级甲等综合医院新院\n\n区于今年开诊，职工之家同时启用。",
            ("南湖区第一人民医院是市属三级甲等综合医院新院区于今年开诊，职工之家同时启用。",),
        ),
        # Opens with a time, as a sentence does.
        ("今年的比赛首次设\n\n置了新工种。", ("今年的比赛首次设置了新工种。",)),
        # Stops on a particle or half a number.
        ("在区总工会的协调\n\n下，网点开通。", ("在区总工会的协调下，网点开通。",)),
        ("已累计培训职工1\n\n5万人次。", ("已累计培训职工15万人次。",)),
        # Has a comma, and the rest of the sentence goes on below.
        ("截至目前，全区书屋累计\n\n藏书十万册。", ("截至目前，全区书屋累计藏书十万册。",)),
        # A short question in the body is speech, not a headline.
        ("这是为什么呢？\n\n原来，驿站就在地铁口。", ("这是为什么呢？", "原来，驿站就在地铁口。")),
    ],
)
def test_fragments_stay_in_their_paragraph(middle: str, paragraphs: tuple[str, ...]) -> None:
    (art,) = read(LEAD + middle + "\n")
    assert art.paragraphs == ("近日，职工之家揭牌。", *paragraphs)


@pytest.mark.parametrize(
    "page",
    [
        # After a photo credit, a short line opens the next article.
        LEAD + "本报记者 甲乙 摄\n\n暖心车厢\n\n列车上，乘务员为旅客送上热水。\n",
        # A story that opens with its time.
        LEAD + "环卫工人的暖心早餐\n\n清晨，早餐点排起了长队。\n",
        # A brief signed at its end.
        LEAD + "快递驿站添了微波炉\n\n驿站为骑手添了微波炉和饮水机。（丙丁 戊己）\n",
        # The indented layout: flush left over an indented paragraph.
        "职工之家揭牌\n　　本报讯（记者 甲乙）近日，职工之家揭牌。\n"
        "环卫工人的暖心早餐\n　　早餐点前排起了长队。\n",
    ],
)
def test_a_short_line_after_a_finished_story_is_the_next_headline(page: str) -> None:
    first, second = read(page)
    assert first.paragraphs == ("近日，职工之家揭牌。",)
    assert second.title in {"暖心车厢", "环卫工人的暖心早餐", "快递驿站添了微波炉"}
    assert len(second.paragraphs) == 1 and second.dateline is None
