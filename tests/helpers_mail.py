"""Issues and members for the digest and outbox tests, without the page reader.

The articles are written here (our own sample text), saved with
`store.save_articles` and gathered with `store.add_issue`, so these tests
depend only on the store.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

from gongbao_feed.models import Article, Byline, Delivery, Issue, article_id
from gongbao_feed.publish import Newsroom
from gongbao_feed.store import Store, deliveries_t

DAY = date(2026, 11, 22)

_SENTENCES = (
    "今年以来，市总工会围绕职工群众最关心的问题，推出技能培训、困难帮扶和法律援助等服务。",
    "在滨江物流园，新建的户外劳动者驿站备有热水、微波炉和充电桩，快递员歇脚时能吃上热饭。",
    "“以前下雨只能躲在屋檐下，现在有了自己的‘家’。”外卖骑手小陈笑着说。",
    "区总工会负责人表示，下一步将把驿站建设纳入年度重点工作，推动服务向社区和园区延伸。",
    "据统计，全市已建成服务站点二百余个，累计服务职工超过十五万人次。",
)


def article(n: int, paragraphs: int = 4, sentences: int = 3, day: date = DAY) -> Article:
    """Article number n: a kicker, a subtitle, a full byline, a caption and long paragraphs."""
    title = f"第{n}篇：市总工会推出服务职工新举措"
    body = tuple(
        f"〔{n}-{p + 1}〕"
        + "".join(_SENTENCES[(n + p + s) % len(_SENTENCES)] for s in range(sentences))
        for p in range(paragraphs)
    )
    return Article(
        id=article_id(day, title),
        date=day,
        title=title,
        kicker="聚焦民生",
        subtitle="覆盖全市百万职工",
        dateline="本报讯",
        byline=Byline(
            reporters=("林晓",), correspondents=("郑凯", "何清"), photographers=("吴峰",)
        ),
        captions=("职工在驿站休息。",),
        paragraphs=body,
        source="sample.txt",
        position=n,
    )


def make_issue(room: Newsroom, count: int = 3, first: int = 1, **kwargs: int) -> Issue:
    """Save `count` articles (numbered from `first`) and gather them into the next issue."""
    arts = [article(n, **kwargs) for n in range(first, first + count)]
    room.store.save_articles(arts, room.now())
    number = room.store.last_issue_number() + 1
    issue = Issue(
        number=number,
        date=DAY,
        title=f"职工时报 第{number}期",
        article_ids=tuple(a.id for a in arts),
        created=datetime(2026, 11, 22, 0, 30, tzinfo=UTC),
    )
    room.store.add_issue(issue)
    return issue


def parse(data: bytes | Path) -> EmailMessage:
    """An .eml as a mail client reads it: the email package's default policy."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def bodies(msg: EmailMessage) -> tuple[str, str]:
    """(plain text, HTML) of a digest, decoded, with LF line ends."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return (
        text.get_content().replace("\r\n", "\n"),
        html.get_content().replace("\r\n", "\n"),
    )


def put_delivery(store: Store, row: Delivery) -> None:
    """Set up a ledger row as an earlier send (or an older version) left it."""
    with store.transaction() as conn:
        conn.execute(deliveries_t.insert().values(
            issue=row.issue, email=row.email, state=row.state.value, transport=row.transport,
            attempts=row.attempts, permanent=row.permanent, code=row.code, detail=row.detail,
            message_id=row.message_id, updated=row.updated,
        ))
