"""The member list: sheet bytes → checked rows, and rows merged into members.

Pure: the sheet (CSV or .xlsx) arrives as bytes and leaves as rows and
line-numbered failures; merging takes the member already on file and
returns the one to save. The Newsroom does the reading and the saving.

Excel writes "CSV UTF-8" with a byte-order mark and plain "CSV" in the
system code page, which on a Chinese Windows is GB18030 (GBK); both are
read, and so are workbooks (.xlsx, with openpyxl), which offices keep their
lists in. The columns are found by their headers in English or Chinese
(`email`, `邮箱`, `电子邮箱` …; `name`, `姓名` …).

An address is checked for syntax only (no DNS) and normalised by
email-validator (the domain in lower case and IDNA). A member's identity is
the whole address without case (`models.mailbox_key`): `Luo.Bin@…` and
`LUO.BIN@…` are one member, under the spelling that came first.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from .errors import MemberError
from .i18n import N_, _
from .models import Member, MemberStatus, mailbox_key

#: The longest name we accept; a longer cell is a pasted paragraph, not a name.
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class MemberRow:
    """One good CSV row: a normalised address and a clean name."""

    line: int
    email: str
    name: str


@dataclass(frozen=True)
class RowFailure:
    line: int
    error: str


@dataclass(frozen=True)
class MemberCsv:
    """A sheet read: good rows (one per mailbox), bad rows, and notes.

    `unit` is what the numbers in `line` count: "line" (CSV, a file line)
    or "row" (xlsx, Excel's row number). `encoding`: "UTF-8", "UTF-16",
    "GB18030" or "xlsx".
    """

    rows: tuple[MemberRow, ...]
    failed: tuple[RowFailure, ...]
    warnings: tuple[str, ...]
    duplicates: int  # rows merged into an earlier row of the same file (same mailbox)
    unit: str = "line"
    encoding: str = "UTF-8"


@dataclass
class ImportReport:
    """What `members import` did; `to_json` is the shape other tools read.

    `imported`: members new to the list. `merged`: rows that met a member
    already on file or an earlier row of the same file; of the former,
    `changed` got a new name (or were resubscribed) and `unchanged` were
    already on file as the row has them. So `merged - changed - unchanged`
    rows repeated an address earlier in the file.
    """

    imported: int = 0
    merged: int = 0
    failed: list[RowFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    still_unsubscribed: int = 0
    unit: str = "line"  # what a failure's number counts: "line" (CSV) or "row" (xlsx)
    encoding: str = "UTF-8"
    changed: int = 0
    unchanged: int = 0

    @property
    def repeated(self) -> int:
        """Rows that repeated an address earlier in the same file."""
        return self.merged - self.changed - self.unchanged

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "merged": self.merged,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "failed": [{"line": f.line, "error": f.error} for f in self.failed],
        }


#: email_validator's common complaints (its English text, as a pattern; the group
#: is what it quotes) → ours, which the catalog translates.
_ADDRESS_PROBLEMS = (
    (r"An email address must have an @-sign\.", N_("it has no @")),
    (r"There must be something before the @-sign\.", N_("nothing comes before the @")),
    (r"There must be something after the @-sign\.", N_("nothing comes after the @")),
    (r"The part after the @-sign is not valid\. It should have a period\.",
     N_("the domain after the @ has no dot (e.g. example.com)")),
    (r"The part after the @-sign contains invalid characters: (.*)\.",
     N_("the domain after the @ contains characters a domain cannot have: {chars}")),
    (r"The email address contains invalid characters before the @-sign: (.*)\.",
     N_("the part before the @ contains characters an address cannot have: {chars}")),
    (r"Internationali[sz]ed characters before the @-sign are not supported: (.*?)\.?",
     N_("the part before the @ has characters other than ASCII letters: {chars}")),
    (r"An email address cannot have two periods in a row\.", N_("it has two dots in a row")),
    (r"An email address cannot (?:start|end) with a period\.",
     N_("it starts or ends with a dot")),
    (r"An email address cannot have a hyphen immediately after the @-sign\.",
     N_("the domain after the @ starts with a hyphen")),
    (r"The (?:email address|part before the @-sign|part after the @-sign) is too long.*",
     N_("it is too long")),
)
#: Said for the rest in a translated run; an English run keeps the library's own words.
_ANY_ADDRESS_PROBLEM = N_("its form is not that of an email address (e.g. name@example.com)")


def _address_problem(detail: str) -> str:
    """email_validator's reason `detail` in the operator's language."""
    for pattern, ours in _ADDRESS_PROBLEMS:
        found = re.fullmatch(pattern, detail)
        if found:
            return _(ours).format(chars=found[1] if found.groups() else "")
    generic = _(_ANY_ADDRESS_PROBLEM)
    return detail if generic == _ANY_ADDRESS_PROBLEM else generic


def normalise_email(address: str) -> str:
    """The address as stored: syntax-checked, domain lower-cased and in ASCII (IDNA).

    Raises MemberError saying what is wrong with it.
    """
    address = address.strip()
    if address[:7].lower() == "mailto:":  # a cell Excel made a link of
        address = address[7:]
    if not address:
        raise MemberError(_("the email address is empty"))
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise MemberError(_("{address!r} is not a valid email address: {reason}").format(
            address=address, reason=_address_problem(str(exc)))) from None
    return checked.ascii_email or checked.normalized


def clean_name(name: str) -> str:
    """A display name safe for a To header and a greeting; MemberError otherwise.

    CR, LF and other control characters (and Unicode line separators) are
    refused rather than stripped: in a header they are how injection starts,
    and a name containing them is a broken cell, not a name.
    """
    name = name.strip()
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise MemberError(
                _("the name {name!r} contains a control character ({char}); "
                  "expected one line of plain text").format(name=name, char=f"U+{ord(ch):04X}")
            )
    name = unicodedata.normalize("NFC", " ".join(name.split()))
    if len(name) > MAX_NAME_LENGTH:
        raise MemberError(_("the name is {length} characters long; at most {most}").format(
            length=len(name), most=MAX_NAME_LENGTH))
    return name


#: Header cells that name the address column, compared by `_header_key` (no case,
#: spaces, hyphens or underscores; full-width letters as ASCII; "(必填)", "*" dropped).
ADDRESS_HEADERS = (
    "email", "e-mail", "email address", "e-mail address", "mail", "mail address", "mailbox",
    "address", "邮箱", "电子邮箱", "电子邮件", "邮件地址", "邮箱地址", "电子邮件地址",
    "电子邮箱地址", "电子信箱", "电邮", "电邮地址", "邮件", "邮箱账号", "email地址",
)
#: Header cells that name the name column.
NAME_HEADERS = (
    "name", "full name", "member name", "display name", "姓名", "名字", "会员姓名",
    "会员名", "成员姓名", "职工姓名", "员工姓名", "真实姓名", "称呼",
)
#: A sheet's header row is looked for in its first rows: offices put a title above it.
HEADER_SEARCH_ROWS = 10


def _header_key(cell: str) -> str:
    """`E-Mail`, ` email `, `ＥＭＡＩＬ`, `邮箱（必填）` and `Email*` all read `email`/`邮箱`."""
    text = unicodedata.normalize("NFKC", cell).casefold()
    text = re.sub(r"\([^)]*\)|\*|[:：]", "", text)
    return re.sub(r"[\s_\-]+", "", text)


_ADDRESS_KEYS = frozenset(_header_key(h) for h in ADDRESS_HEADERS)
_NAME_KEYS = frozenset(_header_key(h) for h in NAME_HEADERS)
#: A header's place in ADDRESS_HEADERS (its first, for two spellings of one key).
_ADDRESS_ORDER = {k: n for n, k in reversed(list(enumerate(map(_header_key, ADDRESS_HEADERS))))}


def decode_csv(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read in.

    UTF-8 with Excel's BOM, UTF-16 with a BOM (Excel's "Unicode text"),
    UTF-8 without BOM when every byte sequence is valid UTF-8 (GB18030 text
    almost never is), else GB18030, the superset of GBK and GB2312 that
    Excel's plain "CSV" is written in on a Chinese Windows.
    Raises MemberError when none of them reads it.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace"), "UTF-8"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "GB18030"
    except UnicodeDecodeError as exc:
        raise MemberError(
            _("neither UTF-8 nor GB18030 (undecodable byte at offset {offset})").format(
                offset=exc.start),
            hint=_("save the sheet as “CSV UTF-8”, plain CSV or an Excel workbook (.xlsx)"),
        ) from None


def read_members_csv(data: bytes) -> MemberCsv:
    """Parse a member CSV: a header row naming the address column (and usually the
    name), then one member a row. Commas, or tabs (else semicolons) when the first line
    has no comma; a header of names run together by another mark is refused, naming it.

    Raises MemberError only when the file as a whole is unusable (cannot be
    decoded, no address column); a bad row is reported with its line number
    and the rest are still read.
    """
    text, encoding = decode_csv(data)
    first_line = text.split("\n", 1)[0]
    delimiter = ","
    if "," not in first_line:  # Excel's "Unicode text" has tabs; a European Excel's CSV, ";"
        delimiter = "\t" if "\t" in first_line else ";" if ";" in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []
    broken: RowFailure | None = None
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            broken = RowFailure(line, _("not valid CSV: {error}").format(error=exc))
            break
        rows.append((line, cells))
        line = reader.line_num + 1
    sheet = _read_rows(rows, "line")
    failed = sheet.failed + ((broken,) if broken else ())
    return replace(sheet, failed=failed, encoding=encoding)


def read_members_xlsx(data: bytes) -> MemberCsv:
    """Parse a member workbook (.xlsx) the same way: its first sheet, rows numbered as
    Excel numbers them. Raises MemberError when it is not a readable workbook."""
    import openpyxl  # a second's import, only when a workbook comes

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl's own errors: all "not a workbook"
        raise MemberError(
            _("not a readable Excel workbook: {error}").format(error=exc),
            hint=_("open it in Excel or WPS and save it again as .xlsx, or as CSV UTF-8"),
        ) from None
    try:
        sheet = book.worksheets[0]
        rows = [
            (n, [_xlsx_text(v) for v in values])
            for n, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        ]
        names = book.sheetnames
    finally:
        book.close()
    read = _read_rows(rows, "row")
    warnings = read.warnings
    if len(names) > 1:
        first = _("read the first sheet, {sheet!r}; the others are ignored: {others}").format(
            sheet=names[0], others=", ".join(repr(n) for n in names[1:]))
        warnings = (first, *warnings)
    return replace(read, warnings=warnings, encoding="xlsx")


def read_members_sheet(data: bytes) -> MemberCsv:
    """A .xlsx workbook or a CSV file, told apart by their bytes (not their names):
    an .xlsx is a ZIP archive. An old binary .xls is refused with what to do."""
    if data.startswith(b"PK\x03\x04"):
        return read_members_xlsx(data)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise MemberError(
            _("this is an old Excel 97-2003 workbook (.xls), which is not read"),
            hint=_("save it as an Excel workbook (.xlsx) or as CSV UTF-8"),
        )
    return read_members_csv(data)


def _xlsx_text(value: object) -> str:
    """A cell as text: a whole number without ".0", dates as ISO text, empty for none."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _find_header(rows: list[tuple[int, list[str]]]) -> int | None:
    """Index in `rows` of the header row: the first of the first rows naming an address."""
    for i, (_n, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if any(_header_key(c) in _ADDRESS_KEYS for c in cells):
            return i
    return None


#: What separates column names typed into one cell, and how to call it.
_SEPARATORS = {
    "，": N_("full-width commas (，)"),
    "、": N_("enumeration commas (、)"),
    ";": N_("semicolons (;)"),
    "；": N_("full-width semicolons (；)"),
    "\t": N_("tabs"),
    ",": N_("commas (,)"),
    "|": N_("vertical bars (|)"),
}


def _refuse_run_together(rows: list[tuple[int, list[str]]], unit: str) -> None:
    """Raise MemberError when a cell of the first rows holds a known address header run
    together with other names (`姓名，邮箱`): the columns were separated by a mark a
    sheet does not split on. Say which, and what would be right."""
    for n, cells in rows[:HEADER_SEARCH_ROWS]:
        for cell in cells:
            for sep, called in _SEPARATORS.items():
                parts = cell.split(sep)
                if len(parts) > 1 and any(_header_key(p) in _ADDRESS_KEYS for p in parts):
                    if unit == "row":  # a workbook: one cell where there should be several
                        right = _("each column name must be in a cell of its own")
                        hint = _("split the cell into columns (in Excel: Data → Text to "
                                 "Columns), one name a cell, e.g. 邮箱 | 姓名")
                    else:
                        right = _("the columns must be separated by commas (,)")
                        hint = _("replace them with ASCII commas (,) throughout the file, e.g. "
                                 "`邮箱,姓名`, or save the sheet from Excel or WPS as CSV UTF-8")
                    raise MemberError(
                        _("{unit} {n}: the header {cell!r} is column names separated by "
                          "{separator}; {right}").format(
                            unit=_(UNITS[unit]), n=n, cell=cell, separator=_(called),
                            right=right),
                        hint=hint)


def _read_rows(rows: list[tuple[int, list[str]]], unit: str) -> MemberCsv:
    """Rows of cells with their line (CSV) or row (xlsx) numbers → members and failures."""
    rows = [(n, cells) for n, cells in rows if any(c.strip() for c in cells)]
    if not rows:
        raise MemberError(_("the file is empty"), hint=_(_HEADER_HINT))
    at = _find_header(rows)
    if at is None:
        _refuse_run_together(rows, unit)
        n, header = rows[0]
        found = ", ".join(repr(h) for h in header if h.strip()) or _("nothing")
        hint = _(_HEADER_HINT)
        if any("@" in c for c in header):
            hint = _("the first row must name the columns (it holds an address); "
                     "add a row such as `email,name` above the members")
        raise MemberError(
            _("{unit} {n}: no address column (found: {found}); "
              "accepted headers: {accepted}").format(
                unit=_(UNITS[unit]), n=n, found=found,
                accepted=", ".join(ADDRESS_HEADERS)),
            hint=hint,
        )
    header_line, header = rows[at]
    keys = [_header_key(h) for h in header]
    # Two candidates (`Email` and a postal `Address`): the more specific header, as listed.
    email_at = min((i for i, k in enumerate(keys) if k in _ADDRESS_KEYS),
                   key=lambda i: _ADDRESS_ORDER[keys[i]])
    name_at = next((i for i, k in enumerate(keys) if k in _NAME_KEYS), None)
    warnings = []
    ignored = [h for i, h in enumerate(header) if i not in (email_at, name_at) and h.strip()]
    if ignored:
        warnings.append(_("ignored columns: {columns}").format(
            columns=", ".join(repr(h) for h in ignored)))
    if at:
        warnings.append(_("{unit} {n} taken as the header row; the rows above it are "
                          "ignored").format(unit=_(UNITS[unit]), n=header_line))

    by_key: dict[str, MemberRow] = {}
    failed: list[RowFailure] = []
    duplicates = 0
    for line, cells in rows[at + 1:]:
        try:
            email = normalise_email(_cell(cells, email_at))
            name = clean_name(_cell(cells, name_at))
        except MemberError as exc:
            failed.append(RowFailure(line, exc.message))
            continue
        key = mailbox_key(email)
        earlier = by_key.get(key)
        if earlier is not None:  # the first spelling stays; a later name replaces
            duplicates += 1
            if name and name != earlier.name:
                by_key[key] = replace(earlier, name=name)
            continue
        by_key[key] = MemberRow(line, email, name)
    return MemberCsv(tuple(by_key.values()), tuple(failed), tuple(warnings), duplicates,
                     unit=unit)


def merge_member(
    existing: Member | None, email: str, name: str, now: datetime, *, resubscribe: bool
) -> Member:
    """The member to save for one imported or added address.

    A new address joins as active. A known one keeps its join date, takes
    the new name when one is given, and stays unsubscribed (or bounced) unless
    `resubscribe` says the member asked to come back (or the address works again).
    One that signed up on the web and has not confirmed yet (pending) becomes
    active: the operator's own list vouches for the address.
    """
    if existing is None:
        return Member(email=email, name=name, status=MemberStatus.ACTIVE, joined=now)
    merged = replace(existing, name=name or existing.name)
    if existing.status is MemberStatus.PENDING:
        merged = replace(merged, status=MemberStatus.ACTIVE)
    if resubscribe and existing.status in (MemberStatus.UNSUBSCRIBED, MemberStatus.BOUNCED):
        merged = replace(
            merged, status=MemberStatus.ACTIVE, unsubscribed_at=None, unsubscribed_via=None,
            bounced_at=None, bounce_reason=None, soft_bounces=0,
        )
    return merged


def _cell(cells: list[str], at: int | None) -> str:
    return cells[at] if at is not None and at < len(cells) else ""


#: What a failure's number counts, as the messages say it.
UNITS = {"line": N_("line"), "row": N_("row")}
_HEADER_HINT = N_("the first row must name the columns, e.g. `email,name` or `邮箱,姓名`")
