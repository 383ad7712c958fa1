"""The member list: CSV import as Excel writes it, checks, merging, unsubscribes."""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongbao_feed.errors import MemberError
from gongbao_feed.members import clean_name, normalise_email, read_members_csv
from gongbao_feed.models import MemberStatus
from gongbao_feed.publish import Newsroom

from .helpers_cli import run

SHEET = "email,name,部门\r\nzhang.san@example.com,张三,一车间\r\nli.si@example.org,李四,工会办\r\n"



@pytest.mark.parametrize(
    "encoded",
    [
        SHEET.encode("utf-8"),
        codecs.BOM_UTF8 + SHEET.encode("utf-8"),  # Excel's "CSV UTF-8"
        SHEET.encode("gb18030"),  # Excel's plain "CSV" on a Chinese Windows
    ],
    ids=["utf-8", "utf-8-bom", "gb18030"],
)
def test_excel_encodings_read_the_same(encoded: bytes) -> None:
    sheet = read_members_csv(encoded)
    assert [(r.email, r.name) for r in sheet.rows] == [
        ("zhang.san@example.com", "张三"),
        ("li.si@example.org", "李四"),
    ]
    assert sheet.failed == ()
    assert sheet.warnings == ("ignored columns: '部门'",)


def test_bad_rows_are_reported_by_line_and_the_rest_read() -> None:
    data = (
        "email,name\n"
        "good@example.com,好人\n"  # line 2
        "not-an-address,无名\n"  # line 3
        '"x@example.com","Eve\nBcc: victim@example.net"\n'  # lines 4-5: a name with LF
        "tab@example.com,\"名\tX\"\n"  # line 6: a control character
        "\n"  # line 7: blank, ignored
        "nobody@localhost,本机\n"  # line 8: no dot in the domain
        "last@example.com,最后\n"  # line 9
    ).encode()
    sheet = read_members_csv(data)
    assert [r.email for r in sheet.rows] == ["good@example.com", "last@example.com"]
    assert [f.line for f in sheet.failed] == [3, 4, 6, 8]
    assert "not a valid email address" in sheet.failed[0].error
    assert "control character (U+000A)" in sheet.failed[1].error
    assert "U+0009" in sheet.failed[2].error


def test_a_file_without_an_email_column_is_refused_whole() -> None:
    with pytest.raises(MemberError, match=r"line 1: no `email` column"):
        read_members_csv("邮箱,姓名\nzhang@example.com,张三\n".encode())


def test_addresses_are_normalised_and_the_domain_compared_without_case() -> None:
    data = (
        b"email,name\nZhang@Example.COM,Zhang\n  Zhang@example.com ,Zhang San\n"
        b"ZHANG@example.com,Z\n"
    )
    sheet = read_members_csv(data)
    # The domain is case-insensitive, the local part is not (RFC 5321).
    assert [(r.email, r.name) for r in sheet.rows] == [
        ("Zhang@example.com", "Zhang San"),
        ("ZHANG@example.com", "Z"),
    ]
    assert sheet.duplicates == 1
    assert normalise_email("li@例子.中国") == "li@xn--fsqu00a.xn--fiqs8s"


@given(st.text(max_size=40))
def test_a_clean_name_never_holds_a_line_break_or_control(name: str) -> None:
    try:
        cleaned = clean_name(name)
    except MemberError:
        assert any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name) or len(name) > 100
        return
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in cleaned)


def test_import_counts_new_and_merged_members(room: Newsroom, tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    first.write_text("email,name\na@example.com,甲\nb@example.com,乙\n", "utf-8")
    report = room.import_members(first)
    assert (report.imported, report.merged, report.failed) == (2, 0, [])
    second = tmp_path / "second.csv"
    second.write_text("email,name\nB@EXAMPLE.com,乙二\nb@example.com,\nc@example.com,丙\n", "utf-8")
    report = room.import_members(second)
    assert (report.imported, report.merged) == (2, 1)  # B@… is another member (RFC 5321)
    names = {m.email: m.name for m in room.members()}
    assert names == {
        "a@example.com": "甲", "b@example.com": "乙", "B@example.com": "乙二", "c@example.com": "丙"
    }


def test_an_unsubscribed_member_stays_out_unless_resubscribed(
    room: Newsroom, tmp_path: Path
) -> None:
    sheet = tmp_path / "members.csv"
    sheet.write_text("email,name\nwang@example.com,王五\n", "utf-8")
    room.import_members(sheet)
    assert room.store.unsubscribe("wang@example.com", room.now(), via="link")

    report = room.import_members(sheet)
    member = room.store.member("wang@example.com")
    assert member is not None and member.status is MemberStatus.UNSUBSCRIBED
    assert member.unsubscribed_via == "link"
    assert report.still_unsubscribed == 1

    room.import_members(sheet, resubscribe=True)
    member = room.store.member("wang@example.com")
    assert member is not None and member.status is MemberStatus.ACTIVE
    assert member.unsubscribed_at is None


def test_cli_import_json_shape_and_exit_status(workdir: Path) -> None:
    sheet = workdir / "members.csv"
    sheet.write_bytes(
        codecs.BOM_UTF8 + "email,name,电话\na@example.com,甲,1\nbroken,乙,2\n".encode()
    )
    code, out, err = run(workdir, "members", "import", str(sheet), "--json")
    assert code == 1  # a row failed: the good one is in all the same
    assert out == {
        "imported": 1,
        "merged": 0,
        "changed": 0,
        "unchanged": 0,
        "failed": [{"line": 3, "error": out["failed"][0]["error"]}],  # type: ignore[index]
    }
    assert "broken" in out["failed"][0]["error"]  # type: ignore[index]
    assert f"{sheet}:3:" in err and "ignored columns: '电话'" in err

    code, out, _ = run(workdir, "members", "list", "--json")
    assert code == 0
    assert out == [{"email": "a@example.com", "name": "甲", "status": "active"}]


def test_cli_add_and_remove(workdir: Path) -> None:
    assert run(workdir, "members", "add", "Zhao@Example.com", "--name", "赵六")[0] == 0
    code, _, err = run(workdir, "members", "add", "bad@", "--name", "x")
    assert code == 1 and "not a valid email address" in err
    code, _, err = run(workdir, "members", "add", "e@example.com", "--name", "A\rB")
    assert code == 1 and "control character" in err

    assert run(workdir, "members", "remove", "Zhao@EXAMPLE.com")[0] == 0
    _, listed, _ = run(workdir, "members", "list", "--json")
    assert listed == [{"email": "Zhao@example.com", "name": "赵六", "status": "unsubscribed"}]

    # A removed member stays removed when an old sheet is imported again ...
    sheet = workdir / "old.csv"
    sheet.write_text("email,name\nZhao@example.com,赵六\n", "utf-8")
    run(workdir, "members", "import", str(sheet))
    _, listed, _ = run(workdir, "members", "list", "--json")
    assert listed[0]["status"] == "unsubscribed"  # type: ignore[index]
    # ... and --forget deletes the record.
    assert run(workdir, "members", "remove", "Zhao@example.com", "--forget")[0] == 0
    assert run(workdir, "members", "list", "--json")[1] == []
    code, _, err = run(workdir, "members", "remove", "nobody@example.com")
    assert code == 1 and "not on the member list" in err
