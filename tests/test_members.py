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
from .helpers_mail import make_issue, parse

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


def test_a_file_without_an_address_column_is_refused_whole_saying_what_is_accepted() -> None:
    with pytest.raises(MemberError) as caught:
        read_members_csv("姓名,部门,手机\n张三,一车间,13800000000\n".encode())
    message = caught.value.message
    assert message.startswith("line 1: no address column (found: '姓名', '部门', '手机'); "
                              "accepted headers: email, e-mail, ")
    assert "邮箱, 电子邮箱, 电子邮件, 邮件地址, 邮箱地址" in message


def test_a_sheet_without_a_header_row_is_refused_with_the_way_to_fix_it() -> None:
    with pytest.raises(MemberError) as caught:
        read_members_csv(b"zhang@example.com,Zhang\nli@example.com,Li\n")
    assert "no address column (found: 'zhang@example.com', 'Zhang')" in caught.value.message
    assert caught.value.hint is not None and "the first row must name the columns" in \
        caught.value.hint


def test_one_mailbox_in_any_capitals_is_one_row_under_its_first_spelling() -> None:
    data = (
        b"email,name\nLuo.Bin@Members.Example.ORG,Luo\n  luo.bin@members.example.org ,\n"
        b"LUO.BIN@members.example.org,Luo Bin\nmailto:li@example.org,Li\n"
    )
    sheet = read_members_csv(data)
    assert [(r.line, r.email, r.name) for r in sheet.rows] == [
        (2, "Luo.Bin@members.example.org", "Luo Bin"),  # a later name replaces an earlier
        (5, "li@example.org", "Li"),
    ]
    assert sheet.duplicates == 2
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
    assert (report.imported, report.merged) == (1, 2)  # B@… and b@… are the member b@…
    names = {m.email: m.name for m in room.members()}
    assert names == {"a@example.com": "甲", "b@example.com": "乙二", "c@example.com": "丙"}


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
    assert out == [{"email": "a@example.com", "name": "甲", "status": "active", "since": None,
                    "reason": None}]


def test_cli_add_and_remove(workdir: Path) -> None:
    assert run(workdir, "members", "add", "Zhao@Example.com", "--name", "赵六")[0] == 0
    code, _, err = run(workdir, "members", "add", "bad@", "--name", "x")
    assert code == 1 and "not a valid email address" in err
    code, _, err = run(workdir, "members", "add", "e@example.com", "--name", "A\rB")
    assert code == 1 and "control character" in err

    assert run(workdir, "members", "remove", "Zhao@EXAMPLE.com")[0] == 0
    _, listed, _ = run(workdir, "members", "list", "--json")
    assert isinstance(listed, list)
    assert [{k: v for k, v in m.items() if k != "since"} for m in listed] == [
        {"email": "Zhao@example.com", "name": "赵六", "status": "unsubscribed",
         "reason": "removed"}]
    assert listed[0]["since"].endswith("+00:00")  # when, in UTC

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


# -- sheets as Chinese offices keep them ---------------------------------------------

OFFICE_ROWS = [("罗斌", "Luo.Bin@members.example.org", "一车间"),
               ("周丽", "zhou.li@example.org", "工会办")]


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (codecs.BOM_UTF8 + "姓名,邮箱,部门\r\n罗斌,Luo.Bin@members.example.org,一车间\r\n"
         "周丽,zhou.li@example.org,工会办\r\n".encode(), "UTF-8"),
        ("姓名,邮箱\r\n罗斌,Luo.Bin@members.example.org\r\n周丽,zhou.li@example.org\r\n"
         .encode("gb18030"), "GB18030"),
        ("会员姓名,电子邮箱,部门\n罗斌,Luo.Bin@members.example.org,一车间\n"
         "周丽,zhou.li@example.org,工会办\n".encode(), "UTF-8"),
        ("名字\t电子邮件\r\n罗斌\tLuo.Bin@members.example.org\r\n周丽\tzhou.li@example.org\r\n"
         .encode("utf-16"), "UTF-16"),  # Excel's "Unicode text"
    ],
    ids=["utf-8-bom-邮箱", "gb18030-邮箱", "电子邮箱", "utf-16-tabs-电子邮件"],
)
def test_chinese_headers_in_every_encoding_excel_writes(encoded: bytes, encoding: str) -> None:
    sheet = read_members_csv(encoded)
    assert [(r.email, r.name) for r in sheet.rows] == [
        ("Luo.Bin@members.example.org", "罗斌"), ("zhou.li@example.org", "周丽")]
    assert sheet.failed == ()
    assert sheet.encoding == encoding
    if "部门".encode() in encoded:
        assert sheet.warnings == ("ignored columns: '部门'",)


@pytest.mark.parametrize("address_header", [
    "email", "Email", " E-Mail ", "EMAIL ADDRESS", "e_mail", "mail", "Address", "ＥＭＡＩＬ",
    "邮箱", "电子邮箱", "电子邮件", "邮件地址", "邮箱地址", "电子邮件地址", "邮箱（必填）",
    "Email*", "电子信箱",
])
@pytest.mark.parametrize("name_header", ["name", "Full Name", "姓名", "名字", "会员姓名",
                                         " 姓 名 "])
def test_address_and_name_columns_found_by_any_common_header(
    address_header: str, name_header: str
) -> None:
    data = f"备注,{name_header},{address_header}\n老会员,王芳,wang.fang@example.org\n"
    sheet = read_members_csv(data.encode())
    assert [(r.email, r.name) for r in sheet.rows] == [("wang.fang@example.org", "王芳")]
    assert sheet.warnings == ("ignored columns: '备注'",)


def make_xlsx(path: Path, rows: list[tuple[object, ...]], *, title: str | None = None,
              more_sheets: tuple[str, ...] = ()) -> Path:
    """An Excel workbook written by openpyxl: an optional title row, then `rows`."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "会员名单"
    if title:
        sheet.append([title])
    for row in rows:
        sheet.append(list(row))
    for name in more_sheets:
        book.create_sheet(name).append(["说明"])
    book.save(path)
    return path


def test_an_xlsx_workbook_with_chinese_headers_imports(room: Newsroom, tmp_path: Path) -> None:
    book = make_xlsx(tmp_path / "会员.xlsx", [
        ("序号", "姓名", "电子邮箱", "部门"),
        (1, "罗斌", "Luo.Bin@members.example.org", "一车间"),
        (2, "周丽", "not an address", "工会办"),  # Excel row 4 (the title is row 1)
        (3, 12345, "LUO.BIN@members.example.org", None),  # the same mailbox: merged
        (4, None, "mailto:qian@example.org", "财务"),
    ], title="2026年会员名单", more_sheets=("说明",))

    report = room.import_members(book)

    assert (report.imported, report.merged) == (2, 1)
    assert report.unit == "row" and report.encoding == "xlsx"
    assert [(f.line, "not a valid email address" in f.error) for f in report.failed] == [
        (4, True)]
    assert report.warnings == [
        "read the first sheet, '会员名单'; the others are ignored: '说明'",
        "ignored columns: '序号', '部门'",
        "row 2 taken as the header row; the rows above it are ignored",
    ]
    assert [(m.email, m.name) for m in room.members()] == [
        ("Luo.Bin@members.example.org", "12345"), ("qian@example.org", "")]


def test_cli_imports_xlsx_and_gb18030_naming_rows_and_the_encoding(workdir: Path) -> None:
    book = make_xlsx(workdir / "members.xlsx", [
        ("姓名", "邮箱"), ("罗斌", "Luo.Bin@members.example.org"), ("坏行", "broken@"),
    ])
    code, out, err = run(workdir, "members", "import", str(book))
    assert code == 1
    assert out == "members: 1 new, 0 changed, 0 already present, 1 failed\n"
    assert f"error: {book}: row 3: 'broken@' is not a valid email address" in err

    sheet = workdir / "gb.csv"
    sheet.write_bytes("姓名,邮箱\r\n周丽,zhou.li@example.org\r\n".encode("gb18030"))
    code, out, err = run(workdir, "members", "import", str(sheet), "--json")
    assert code == 0
    assert out == {"imported": 1, "merged": 0, "changed": 0, "unchanged": 0, "failed": []}
    assert f"note: {sheet}: read as GB18030 (not UTF-8)" in err


def test_an_old_xls_or_a_broken_workbook_is_refused_with_what_to_do(
    room: Newsroom, tmp_path: Path
) -> None:
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    with pytest.raises(MemberError, match="Excel 97-2003 workbook") as caught:
        room.import_members(old)
    assert caught.value.hint == "save it as an Excel workbook (.xlsx) or as CSV UTF-8"
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(MemberError, match=r"broken\.xlsx: not a readable Excel workbook"):
        room.import_members(broken)


SPELLINGS = ("Luo.Bin@members.example.org", "luo.bin@members.example.org",
             "LUO.BIN@members.example.org")


def test_a_postal_address_column_does_not_hide_the_email_column() -> None:
    sheet = read_members_csv(b"Name,Address,Email\nWang,1 Main St,wang@example.org\n")
    assert [(r.email, r.name) for r in sheet.rows] == [("wang@example.org", "Wang")]
    assert sheet.warnings == ("ignored columns: 'Address'",)


def test_three_capitalisations_are_one_member_who_gets_one_copy(
    room: Newsroom, tmp_path: Path
) -> None:
    sheet = tmp_path / "members.csv"
    sheet.write_text("姓名,邮箱\n" + "".join(f"罗斌,{e}\n" for e in SPELLINGS), "utf-8")
    room.import_members(sheet)
    make_issue(room, 1)
    report = room.send(via="outbox")
    assert (report.sent, report.failed) == (1, [])
    files = list((room.config.outbox_dir / "0001").glob("*.eml"))
    assert [str(parse(f)["To"]) for f in files] == [f"罗斌 <{SPELLINGS[0]}>"]
    assert room.send(via="outbox").sent == 0


def test_three_capitalisations_are_one_member_on_the_command_line(workdir: Path) -> None:
    sheet = workdir / "members.csv"
    sheet.write_text("姓名,邮箱\n" + "".join(f"罗斌,{e}\n" for e in SPELLINGS), "utf-8")
    code, out, _ = run(workdir, "members", "import", str(sheet), "--json")
    assert code == 0 and out["imported"] == 1 and out["merged"] == 2  # type: ignore[index]
    for spelling in SPELLINGS[1:]:  # again, one at a time, in the other spellings
        assert run(workdir, "members", "add", spelling)[0] == 0
    code, listed, _ = run(workdir, "members", "list", "--json")
    assert listed == [{"email": SPELLINGS[0], "name": "罗斌", "status": "active",
                       "since": None, "reason": None}]

    # Removing any one spelling removes the mailbox.
    assert run(workdir, "members", "remove", SPELLINGS[2])[0] == 0
    _, listed, _ = run(workdir, "members", "list", "--json")
    assert [(m["status"], m["reason"]) for m in listed] == [  # type: ignore[index]
        ("unsubscribed", "removed")]
    run(workdir, "members", "import", str(sheet))  # an old sheet brings no spelling back
    _, listed, _ = run(workdir, "members", "list", "--json")
    assert [m["status"] for m in listed] == ["unsubscribed"]  # type: ignore[index]
