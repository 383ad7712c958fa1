"""Is a changed article the same story? `same_story` on text written for these tests."""

from __future__ import annotations

from datetime import date

import pytest

from gongbao_feed.models import (
    SAME_STORY_THRESHOLD,
    Article,
    article_id,
    same_story,
    story_similarity,
)

DAY = date(2026, 11, 18)

# A three-paragraph story: a district union trains street cleaners for winter.
CLEANERS = (
    "11月18日，河西区总工会在区环卫所举办户外劳动者冬季安全培训，120余名环卫工人参加。"
    "培训邀请消防和医护人员现场讲解防滑防冻、急救包扎等知识。",
    "培训结束后，区总工会为每名参训工人发放了防寒手套、反光背心和暖贴。"
    "环卫工人李桂芳说，冬天清扫路面最怕结冰，学了这些办法心里更有底。",
    "区总工会有关负责人介绍，今冬将分批组织全区环卫、绿化等岗位职工参加安全培训，"
    "力争年底前实现全覆盖。",
)

# A different story on the same beat: another district union, another training,
# and a closing paragraph on the same template as the one above.
ELECTRICIANS = (
    "11月19日，东湖区总工会联合区人社局举办职工电工技能提升培训班，"
    "来自辖区28家企业的90名职工参加学习。培训为期三天，内容包括低压配电、安全用电规范和故障排查。",
    "培训采用理论讲解与实操训练相结合的方式，学员在实训室里分组完成接线和检测任务。"
    "参训职工王海涛说，老师讲的都是工作中常遇到的问题，回去就能用上。",
    "区总工会有关负责人表示，下一步将围绕企业用工需求开设更多技能培训课程，帮助职工提升本领、增加收入。",
)

BRIEF = "11月21日，南湖区总工会为辖区200余名外卖骑手免费提供健康体检。"
PHOTO = "11月20日，市总工会志愿者在火车站广场为返岗农民工送上热姜茶。"


def story(
    title: str, paragraphs: tuple[str, ...] = (), captions: tuple[str, ...] = ()
) -> Article:
    return Article(
        id=article_id(DAY, title), date=DAY, title=title,
        paragraphs=paragraphs, captions=captions,
    )


OLD = story("河西区环卫工人冬季安全培训开班", CLEANERS)


def test_identical_body_under_a_corrected_headline_is_the_same_story() -> None:
    new = story("河西区总工会为环卫工人开展冬季安全培训", CLEANERS)
    assert story_similarity(OLD, new) == 1.0
    assert same_story(OLD, new)


def test_layout_differences_do_not_count() -> None:
    """Another line-break, spacing and punctuation of the same words is the same text."""
    relaid = tuple(p.replace("，", ", ").replace("。", ".\n") for p in CLEANERS)
    assert story_similarity(OLD, story("另一标题", relaid)) == 1.0


def test_one_sentence_reworded_and_a_figure_corrected_is_the_same_story() -> None:
    edited = (
        CLEANERS[0].replace("120余名", "130余名"),
        "培训结束后，区总工会为每名参训工人发放了防寒手套、反光背心和暖贴。"
        "参训的环卫工人李桂芳告诉记者，冬天扫马路最怕路面结冰，今天学到的办法很实用。",
        CLEANERS[2],
    )
    score = story_similarity(OLD, story("另一标题", edited))
    assert 0.8 < score < 0.9  # 0.85
    assert same_story(OLD, story("另一标题", edited))


def test_a_paragraph_appended_is_the_same_story() -> None:
    longer = (*CLEANERS, "据了解，河西区总工会今年已建成户外劳动者服务站点36个，"
              "为环卫工人提供热水、加热午餐和临时休息场所。")
    score = story_similarity(OLD, story("另一标题", longer))
    assert 0.85 < score < 0.95  # 0.90
    assert same_story(OLD, story("另一标题", longer))


def test_the_last_paragraph_cut_is_the_same_story() -> None:
    score = story_similarity(OLD, story("另一标题", CLEANERS[:2]))
    assert 0.8 < score < 0.9  # 0.87
    assert same_story(OLD, story("另一标题", CLEANERS[:2]))


def test_a_short_story_that_grew_a_second_paragraph_is_still_the_same_story() -> None:
    """Near the edge the threshold was set for: a body that nearly doubled (67 → 122 characters)."""
    one = story("环卫工人冬训", CLEANERS[:1])
    grown = story("环卫工人冬训开班", (
        CLEANERS[0],
        "现场，消防员手把手教大家使用灭火器，医护人员示范了心肺复苏的要领。"
        "不少工人说，这样的培训来得及时，冬天上早班心里踏实多了。",
    ))
    score = story_similarity(one, grown)
    assert SAME_STORY_THRESHOLD <= score < 0.8  # 0.73
    assert same_story(one, grown)


def test_a_different_story_on_the_same_beat_is_not_the_same_story() -> None:
    other = story("东湖区职工电工技能提升培训班开班", ELECTRICIANS)
    score = story_similarity(OLD, other)
    assert score < 0.2  # 0.12, though both speak of 区总工会, 职工, 培训, 负责人
    assert not same_story(OLD, other)
    assert not same_story(other, OLD)


def test_empty_bodies_are_never_the_same_story() -> None:
    """Nothing to recognise a story by: a new id is the safe answer."""
    assert story_similarity(story("甲"), story("乙")) == 0.0
    assert not same_story(story("甲"), story("乙"))
    assert not same_story(OLD, story("乙"))
    assert not same_story(story("甲"), OLD)


def test_photo_news_compares_its_caption() -> None:
    old = story("热姜茶暖人心", captions=(PHOTO,))
    fixed = story("一碗姜汤暖人心", captions=(PHOTO.replace("姜茶", "姜汤"),))
    assert story_similarity(old, fixed) > 0.95  # 0.97: one character in a sentence
    assert same_story(old, fixed)
    other = story("暖心围巾送给返乡职工",
                  captions=("11月20日，市总工会志愿者在长途汽车站为返乡职工发放御寒围巾。",))
    score = story_similarity(old, other)
    assert 0.45 < score < SAME_STORY_THRESHOLD  # 0.52: same day, same union, same volunteers
    assert not same_story(old, other)


def test_one_line_brief_with_a_figure_corrected_is_the_same_story() -> None:
    old = story("南湖区外卖骑手免费体检", (BRIEF,))
    fixed = story("南湖区为外卖骑手免费体检", (BRIEF.replace("200余名", "260余名"),))
    assert story_similarity(old, fixed) > 0.9  # 0.94
    assert same_story(old, fixed)


def test_two_briefs_on_one_template_are_not_the_same_story() -> None:
    """Short items share their who-and-when opening; that alone must not make them one."""
    old = story("南湖区外卖骑手免费体检", (BRIEF,))
    other = story("南湖区家政服务员技能培训",
                  ("11月21日，南湖区总工会为辖区150名家政服务员开展职业技能培训。",))
    score = story_similarity(old, other)
    assert 0.4 < score < 0.5  # 0.45
    assert not same_story(old, other)


def test_a_brief_that_differs_only_in_its_last_words_counts_as_a_correction() -> None:
    """The known blind spot: text alone cannot tell this from an editor's fix."""
    old = story("南湖区外卖骑手免费体检", (BRIEF,))
    reworded = story("南湖区外卖骑手领到冬季慰问品",
                     (BRIEF.replace("免费提供健康体检", "发放冬季慰问品"),))
    assert 0.7 < story_similarity(old, reworded) < 0.8  # 0.75
    assert same_story(old, reworded)


def test_a_brief_where_a_long_story_stood_is_not_the_same_story() -> None:
    """Its words all occur in the long story (overlap 0.84), but it is a different item."""
    brief = story("河西区环卫工人领到防寒用品", ("河西区总工会为环卫工人发放防寒手套和暖贴。",))
    assert story_similarity(OLD, brief) < 0.2  # 0.19
    assert not same_story(OLD, brief)


def test_paragraphs_are_compared_before_captions() -> None:
    """A caption added under an unchanged story changes nothing."""
    with_photo = story("另一标题", CLEANERS, captions=("图为消防员演示灭火器使用方法。",))
    assert story_similarity(OLD, with_photo) == 1.0


@pytest.mark.parametrize("a,b", [(OLD, story("x", ELECTRICIANS)), (OLD, story("y", CLEANERS[:2]))])
def test_similarity_is_symmetric(a: Article, b: Article) -> None:
    assert story_similarity(a, b) == story_similarity(b, a)
