"""The store on SQLite and on a real PostgreSQL: the same calls, the same answers.

Every test runs twice: on a SQLite file and on a fresh database of the test's
own PostgreSQL server (tests/pg.py, collating text with ICU zh-CN rules, so
an order that depends on the database's collation shows up here). Expected
values are written down, not compared between the two.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError

from gongbao_feed import ledger
from gongbao_feed.errors import StoreError
from gongbao_feed.models import (
    Article,
    Byline,
    Delivery,
    DeliveryState,
    Issue,
    Member,
    MemberStatus,
    article_id,
)
from gongbao_feed.store import GoneArticle, SaveResult, Store, deliveries_t

from .helpers_cli import run

BEIJING = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 22)
# Beijing time with microseconds: stored in UTC, read back aware, to the microsecond.
T0 = datetime(2026, 11, 22, 9, 0, 0, 123456, tzinfo=BEIJING)
T1 = T0 + timedelta(hours=1)

# Page sources whose byte order (SQLite's) differs from any natural-language
# collation: upper case before lower case, 一 (U+4E00) before 八 (U+516B).
SRC_UPPER = "inbox/B.txt"
SRC_LOWER = "inbox/a.txt"
SRC_ONE = "inbox/一版.txt"
SRC_EIGHT = "inbox/八版.txt"

BODY_A = ("河西区总工会在区环卫所举办户外劳动者冬季安全培训，120余名环卫工人参加。",)
BODY_B = (
    "南湖区总工会为辖区200余名外卖骑手免费提供健康体检，并为每人建立了健康档案。",
    "区总工会还在骑手集中的商圈设立了3个爱心驿站，提供热水和手机充电服务。",
)
BODY_C = ("北岸街道工会近日在社区党群服务中心开办职工夜校，已有160多名职工报名。",)


def make_article(title: str, source: str, position: int, paragraphs: tuple[str, ...],
                 day: date = DAY) -> Article:
    return Article(
        id=article_id(day, title), date=day, title=title, source=source, position=position,
        paragraphs=paragraphs, byline=Byline(reporters=("方远",), correspondents=("李可",)),
        captions=("图为培训现场。",), kicker="本报讯", section="要闻",
    )


A = make_article("河西区环卫工人冬季安全培训开班", SRC_ONE, 0, BODY_A)
B = make_article("南湖区总工会为外卖骑手免费体检", SRC_ONE, 1, BODY_B)
C = make_article("北岸街道工会开办职工夜校", SRC_ONE, 2, BODY_C)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'gongbao.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(url: str):
    with Store(url) as s:
        yield s


def test_the_store_is_on_the_dialect_asked_for(store: Store, url: str) -> None:
    assert store.engine.dialect.name == url.split(":")[0].split("+")[0]


# -- articles ----------------------------------------------------------------


def test_articles_saved_and_read_back_as_written(store: Store) -> None:
    assert store.save_articles([A, B, C], T0) == SaveResult(new=3, updated=0, unchanged=0)
    got = store.article(A.id)
    assert got is not None
    assert (got.id, got.date, got.title, got.kicker, got.section) == (
        "2026-11-22-db354ec2", DAY, "河西区环卫工人冬季安全培训开班", "本报讯", "要闻"
    )
    assert got.byline == Byline(reporters=("方远",), correspondents=("李可",))
    assert got.captions == ("图为培训现场。",) and got.paragraphs == BODY_A
    assert got.subtitle is None and got.dateline is None and got.issue is None
    assert (got.source, got.position, got.revision) == (SRC_ONE, 0, 1)
    # Beijing 09:00:00.123456 is 01:00:00.123456 UTC, and comes back as UTC.
    assert got.first_seen == got.updated == datetime(2026, 11, 22, 1, 0, 0, 123456, tzinfo=UTC)
    assert got.first_seen is not None and got.first_seen.tzinfo is UTC
    assert store.article("2026-11-22-00000000") is None
    # In the order asked for, unknown ids skipped.
    assert [a.id for a in store.articles([C.id, "nope", A.id])] == [C.id, A.id]


def test_articles_in_page_order_by_bytes_not_by_collation(store: Store) -> None:
    pages = [
        make_article("八版头条", SRC_EIGHT, 0, BODY_A),
        make_article("一版头条", SRC_ONE, 0, BODY_B),
        make_article("小写页", SRC_LOWER, 0, BODY_C),
        make_article("大写页", SRC_UPPER, 0, BODY_A),
        make_article("大写页第二条", SRC_UPPER, 1, BODY_B),
        make_article("前一天", SRC_EIGHT, 0, BODY_C, day=date(2026, 11, 21)),
    ]
    for source, day in dict.fromkeys((a.source, a.date) for a in pages):
        page = [a for a in pages if (a.source, a.date) == (source, day)]
        assert store.save_articles(page, T0) == SaveResult(new=len(page))
    expected = ["前一天", "大写页", "大写页第二条", "小写页", "一版头条", "八版头条"]
    assert [a.title for a in store.all_articles()] == expected
    assert [a.title for a in store.unissued_articles()] == expected


def test_resave_updates_renames_and_reports_gone_once(store: Store) -> None:
    store.save_articles([A, B, C], T0)
    # Later edition: A's body corrected, B's headline corrected over the same
    # body (same article, new title), C no longer on the page.
    a2 = make_article(A.title, SRC_ONE, 0, (BODY_A[0].replace("120余名", "130余名"),))
    b2 = make_article("南湖区总工会为外卖骑手免费健康体检", SRC_ONE, 1, BODY_B)
    assert b2.id != B.id

    result = store.save_articles([a2, b2], T1)

    assert result == SaveResult(
        new=0, updated=2, unchanged=0, gone=[GoneArticle(C.id, C.title, SRC_ONE)]
    )
    fixed = store.article(A.id)
    assert fixed is not None and fixed.revision == 2 and fixed.paragraphs == a2.paragraphs
    assert fixed.first_seen == T0 and fixed.updated == T1
    renamed = store.article(B.id)
    assert renamed is not None and renamed.title == b2.title and renamed.revision == 2
    assert store.article(b2.id) is None
    kept = store.article(C.id)  # reported, not deleted
    assert kept is not None and kept.revision == 1 and kept.updated == T0
    assert [a.id for a in store.all_articles()] == [A.id, B.id, C.id]

    # Read again: nothing changed, C not reported again.
    assert store.save_articles([a2, b2], T1) == SaveResult(0, 0, 2, [])
    # C back on the page: unchanged, nothing gone; dropped again: reported again.
    assert store.save_articles([a2, b2, C], T1) == SaveResult(0, 0, 3, [])
    assert store.save_articles([a2, b2], T1) == SaveResult(
        0, 0, 2, [GoneArticle(C.id, C.title, SRC_ONE)]
    )


def test_a_different_story_in_an_old_place_is_new(store: Store) -> None:
    store.save_articles([A, B], T0)
    other = make_article("北岸街道工会开办职工夜校", SRC_ONE, 1, BODY_C)
    result = store.save_articles([A, other], T1)
    assert result == SaveResult(1, 0, 1, [GoneArticle(B.id, B.title, SRC_ONE)])
    # Two rows at one place: by id after (date, source, position).
    assert (B.id, other.id) == ("2026-11-22-29c26220", "2026-11-22-ed0d3e07")
    assert [a.title for a in store.all_articles()] == [A.title, B.title, other.title]


# -- issues ------------------------------------------------------------------


def test_issues_claim_articles_and_come_back_in_order(store: Store) -> None:
    store.save_articles([A, B, C], T0)
    assert store.last_issue_number() == 0 and store.issues() == [] and store.issue(1) is None

    store.add_issue(Issue(1, DAY, "职工时报 第1期", (B.id, A.id), T0))
    store.add_issue(Issue(2, date(2026, 11, 23), "职工时报 第2期", (C.id,), T1))

    one = store.issue(1)
    assert one == Issue(1, DAY, "职工时报 第1期", (B.id, A.id), T0)
    assert one is not None and one.created.tzinfo is UTC
    assert store.last_issue_number() == 2
    assert [i.number for i in store.issues()] == [2, 1]
    assert [i.number for i in store.issues(newest_first=False)] == [1, 2]
    assert store.issues(limit=1) == [Issue(2, date(2026, 11, 23), "职工时报 第2期", (C.id,), T1)]
    assert [(a.id, a.issue) for a in store.all_articles()] == [(A.id, 1), (B.id, 1), (C.id, 2)]
    assert store.unissued_articles() == []


def test_add_issue_refuses_taken_articles_old_numbers_and_failed_publish(store: Store) -> None:
    store.save_articles([A, B, C], T0)
    store.add_issue(Issue(1, DAY, "第1期", (A.id,), T0))
    with pytest.raises(StoreError, match="already in an issue"):
        store.add_issue(Issue(2, DAY, "第2期", (A.id, B.id), T0))
    with pytest.raises(StoreError, match="not after the last issue"):
        store.add_issue(Issue(1, DAY, "又一期", (B.id,), T0))
    with pytest.raises(StoreError, match="issue 2 was not recorded"):  # no such article
        store.add_issue(Issue(2, DAY, "第2期", (B.id, "2026-11-22-00000000"), T0))
    assert store.issue(2) is None

    def broken(_issue: Issue) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.add_issue(Issue(2, DAY, "第2期", (B.id, C.id), T0), publish=broken)
    assert store.issue(2) is None and store.last_issue_number() == 1
    assert [a.id for a in store.unissued_articles()] == [B.id, C.id]


# -- members -----------------------------------------------------------------

# Byte order of the addresses (what SQLite gives and the store promises).
EMAILS_IN_ORDER = [
    "Bob@example.org",
    "WANG.Fang@members.example.org",
    "a.b@example.org",
    "a_b@example.org",
    "ab@example.org",
    "alice@example.org",
    "zoe@example.org",
]


def members_joined() -> list[Member]:
    out = []
    # Reverse order, two at the same instant: members() sorts by joined, then address.
    for n, email in enumerate(reversed(EMAILS_IN_ORDER)):
        out.append(Member(email, f"会员{n}", MemberStatus.ACTIVE, T0 + timedelta(minutes=n // 2)))
    return out


def test_members_saved_iterated_in_address_order_and_counted(store: Store) -> None:
    store.save_members(members_joined())
    assert [m.email for m in store.iter_members()] == EMAILS_IN_ORDER
    for batch in (1, 2, 3, 7, 500):
        assert [m.email for m in store.iter_members(batch=batch)] == EMAILS_IN_ORDER
    assert [m.email for m in store.members()] == [
        "alice@example.org", "zoe@example.org",  # joined T0
        "a_b@example.org", "ab@example.org",  # T0 + 1 min
        "WANG.Fang@members.example.org", "a.b@example.org",  # T0 + 2 min
        "Bob@example.org",  # T0 + 3 min
    ]
    assert store.count_members() == 7 and store.count_members(active_only=True) == 7

    bob = store.member("Bob@example.org")
    assert bob == Member("Bob@example.org", "会员6", MemberStatus.ACTIVE, T0 + timedelta(minutes=3))
    assert bob is not None and bob.joined is not None and bob.joined.tzinfo is UTC
    assert store.member("bob@example.org") == bob  # one mailbox, whatever the case

    store.save_member(Member("BOB@example.org", "鲍勃", MemberStatus.ACTIVE, T1))
    again = store.member("Bob@example.org")
    assert again is not None and (again.email, again.name, again.joined) == (
        "Bob@example.org", "鲍勃", T1)  # the spelling first saved stays
    assert store.count_members() == 7


def test_one_mailbox_in_three_spellings_is_one_member(store: Store) -> None:
    spellings = ["Luo.Bin@members.example.org", "luo.bin@members.example.org",
                 "LUO.BIN@members.example.org"]
    store.save_members([Member(spellings[0], "罗斌", MemberStatus.ACTIVE, T0)])
    store.save_members([Member(e, "", MemberStatus.ACTIVE, T1) for e in spellings[1:]])
    store.save_member(Member(spellings[2], "罗 斌", MemberStatus.ACTIVE, T1))
    assert [(m.email, m.name) for m in store.members()] == [(spellings[0], "罗 斌")]
    for spelling in spellings:
        assert store.is_active(spelling)

    assert store.unsubscribe(spellings[2], T1, "one-click") is True  # any spelling's link
    assert [m.status for m in store.members()] == [MemberStatus.UNSUBSCRIBED]
    assert not any(store.is_active(e) for e in spellings)
    assert store.remove_member(spellings[1]) is True
    assert store.members() == []


def test_unsubscribe_and_remove(store: Store) -> None:
    store.save_members(members_joined())
    assert store.unsubscribe("ab@example.org", T1, "web") is True
    assert store.unsubscribe("ab@example.org", T1, "web") is False  # already out
    assert store.unsubscribe("nobody@example.org", T1, "web") is False
    out = store.member("ab@example.org")
    assert out is not None and out.status is MemberStatus.UNSUBSCRIBED
    assert (out.unsubscribed_at, out.unsubscribed_via) == (T1, "web")
    assert out.unsubscribed_at is not None and out.unsubscribed_at.tzinfo is UTC

    assert store.count_members() == 7 and store.count_members(active_only=True) == 6
    active = [m.email for m in store.iter_members(active_only=True, batch=2)]
    assert active == [e for e in EMAILS_IN_ORDER if e != "ab@example.org"]
    assert [m.email for m in store.members(active_only=True)] == [
        "alice@example.org", "zoe@example.org", "a_b@example.org",
        "WANG.Fang@members.example.org", "a.b@example.org", "Bob@example.org",
    ]
    assert store.is_active("alice@example.org") and not store.is_active("ab@example.org")
    assert not store.is_active("nobody@example.org")
    with store.activity_checker() as is_active:
        assert is_active("zoe@example.org") and not is_active("ab@example.org")
        store.unsubscribe("zoe@example.org", T1, "mailto")  # seen at once
        assert not is_active("zoe@example.org")

    assert store.remove_member("alice@example.org") is True
    assert store.remove_member("alice@example.org") is False
    assert store.count_members() == 6 and store.count_members(active_only=True) == 4


# -- the delivery ledger's rows ----------------------------------------------
# Written here as a send leaves them (ledger.py owns the writing: claims and
# settlements); read back through the store and the ledger's questions.


def put(store: Store, *rows: Delivery) -> None:
    with store.transaction() as conn:
        for d in rows:
            values = {
                "state": d.state.value, "transport": d.transport, "attempts": d.attempts,
                "permanent": d.permanent, "code": d.code, "detail": d.detail,
                "message_id": d.message_id, "updated": d.updated,
            }
            done = conn.execute(
                deliveries_t.update()
                .where(deliveries_t.c.issue == d.issue, deliveries_t.c.email == d.email)
                .values(**values)
            ).rowcount
            if not done:
                conn.execute(deliveries_t.insert().values(issue=d.issue, email=d.email, **values))


@pytest.fixture
def issued(store: Store) -> Store:
    store.save_articles([A, B, C], T0)
    store.add_issue(Issue(1, DAY, "第1期", (A.id,), T0))
    store.add_issue(Issue(2, DAY, "第2期", (B.id, C.id), T0))
    return store


def test_a_delivery_row_reads_back_as_written(issued: Store) -> None:
    store = issued
    assert store.delivery(1, "Bob@example.org") is None
    put(store, Delivery(1, "Bob@example.org", DeliveryState.PENDING, "smtp", updated=T0))
    assert store.delivery(1, "Bob@example.org") == Delivery(
        1, "Bob@example.org", DeliveryState.PENDING, "smtp", 0, False, None, "", "", T0
    )
    refused = Delivery(1, "Bob@example.org", DeliveryState.FAILED, "smtp", attempts=1,
                       permanent=True, code=550, detail="550 5.1.1 没有这个用户",
                       message_id="<1.bob@news.example.org>", updated=T1)
    put(store, refused)
    got = store.delivery(1, "Bob@example.org")
    assert got == refused
    assert got is not None and got.permanent is True and got.updated is not None
    assert got.updated.tzinfo is UTC
    assert store.deliveries() == [refused] and store.deliveries(2) == []


def test_settled_counts_and_ledger_order(issued: Store) -> None:
    store = issued
    rows = [
        Delivery(1, "zoe@example.org", DeliveryState.SENT, "smtp", 1, updated=T1),
        Delivery(1, "Bob@example.org", DeliveryState.SENT, "smtp", 1, updated=T1),
        Delivery(1, "alice@example.org", DeliveryState.FAILED, "smtp", 2, True, 550,
                 "550 unknown user", updated=T1),
        Delivery(1, "a.b@example.org", DeliveryState.FAILED, "smtp", 3, False, 451,
                 "451 try later", updated=T1),
        Delivery(1, "ab@example.org", DeliveryState.PENDING, "smtp", 0, updated=T1),
        Delivery(2, "Bob@example.org", DeliveryState.SENT, "outbox", 1, updated=T1),
    ]
    put(store, *rows)

    assert ledger.settled_emails(store, 1) == {
        "zoe@example.org", "Bob@example.org", "alice@example.org"
    }
    assert ledger.settled_emails(store, 1, retry_failed=True) == {
        "zoe@example.org", "Bob@example.org"
    }
    assert ledger.settled_emails(store, 2) == {"Bob@example.org"}
    assert ledger.settled_emails(store, 3) == set()
    assert ledger.counts(store, 1) == {"pending": 1, "sent": 2, "failed": 2}
    assert ledger.counts(store, 2) == {"pending": 0, "sent": 1, "failed": 0}
    assert ledger.counts(store, 3) == {"pending": 0, "sent": 0, "failed": 0}
    assert ledger.counts(store) == {"pending": 1, "sent": 3, "failed": 2}
    # By issue, then address in byte order.
    assert [(d.issue, d.email) for d in store.deliveries()] == [
        (1, "Bob@example.org"), (1, "a.b@example.org"), (1, "ab@example.org"),
        (1, "alice@example.org"), (1, "zoe@example.org"), (2, "Bob@example.org"),
    ]
    assert store.deliveries(1)[3] == rows[2] and store.deliveries(2) == [rows[5]]

    store.save_members(members_joined())
    store.unsubscribe("zoe@example.org", T1, "web")
    assert ledger.settled_active_count(store, 1) == 2  # Bob, alice (zoe left)
    assert ledger.settled_active_count(store, 1, retry_failed=True) == 1


def test_a_ledger_row_needs_its_issue(store: Store) -> None:
    """The foreign key holds on both (SQLite's is switched on per connection)."""
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        put(store, Delivery(9, "a@example.org", DeliveryState.SENT, updated=T0))
    assert store.deliveries() == []


# -- the commands, end to end ------------------------------------------------

EXAMPLE_ISSUE = [
    "2026-11-20-cfe1df6a", "2026-11-20-289fa8fd", "2026-11-20-d2ca8534",
    "2026-11-21-2be80f85", "2026-11-21-9d423d33", "2026-11-21-74dc8bf9",
    "2026-11-21-19e9e52a", "2026-11-22-c333b3d6", "2026-11-22-4f6b73c5",
]


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_cli_ingest_assemble_send_on_the_configured_database(
    workdir: Path, dialect: str, request: pytest.FixtureRequest
) -> None:
    config = workdir / "config.toml"
    if dialect == "postgres":
        url = request.getfixturevalue("pg_url")
        text = config.read_text("utf-8")
        assert text.count('\nurl = ""\n') == 1
        config.write_text(text.replace('\nurl = ""\n', f'\nurl = "{url}"\n'), "utf-8")
        (workdir / "state" / "gongbao.db").unlink()  # made by `init`, on the default URL
    members = Path(__file__).resolve().parent.parent / "examples" / "members.csv"

    code, out, err = run(workdir, "members", "import", str(members), "--json")
    assert code == 0, err
    assert out == {"imported": 5, "merged": 0, "changed": 0, "unchanged": 0, "failed": []}
    code, out, err = run(workdir, "ingest", "--json")
    assert code == 0, err
    assert out == {"new": 9, "updated": 0, "unchanged": 0, "failed": [], "gone": []}
    code, out, err = run(workdir, "assemble", "--json")
    assert code == 0, err
    assert out == {"issue": 1, "articles": EXAMPLE_ISSUE, "reason": "issue 1 with 9 articles"}
    code, out, err = run(workdir, "send", "--via", "outbox", "--json")
    assert code == 0, err
    assert out == {"issue": 1, "sent": 5, "skipped": 0, "failed": []}
    code, out, err = run(workdir, "send", "--via", "outbox", "--json")
    assert code == 0, err
    assert out == {"issue": 1, "sent": 0, "skipped": 5, "failed": []}
    code, out, err = run(workdir, "deliveries", "--json")
    assert code == 0, err
    assert isinstance(out, dict) and out["total"] == {"pending": 0, "sent": 5, "failed": 0}
    assert len(list((workdir / "outbox").rglob("*.eml"))) == 5

    # The data went where the config said, and only there.
    assert (workdir / "state" / "gongbao.db").exists() is (dialect == "sqlite")
    if dialect == "postgres":
        with Store(url) as store:
            assert store.last_issue_number() == 1
            assert len(store.deliveries(1)) == 5 and store.count_members() == 5
