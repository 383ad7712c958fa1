"""The member list: CSV bytes → checked rows, and rows merged into members.

Pure: the CSV arrives as bytes and leaves as rows and line-numbered
failures; merging takes the member already on file and returns the one to
save. The Newsroom does the reading and the saving.

Excel writes "CSV UTF-8" with a byte-order mark and plain "CSV" in the
system code page, which on a Chinese Windows is GB18030 (GBK); both are read.
An address is checked for syntax only (no DNS) and normalised by
email-validator, so `Zhang@Example.COM` and `Zhang@example.com` are the same
member (the domain is case-insensitive; the local part is not).
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from .errors import MemberError
from .i18n import N_, _
from .models import Member, MemberStatus

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
    """A CSV file read: good rows (duplicates merged), bad rows, and notes."""

    rows: tuple[MemberRow, ...]
    failed: tuple[RowFailure, ...]
    warnings: tuple[str, ...]
    duplicates: int  # rows merged into an earlier row of the same file


@dataclass
class ImportReport:
    """What `members import` did; `to_json` is the shape other tools read."""

    imported: int = 0
    merged: int = 0
    failed: list[RowFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    still_unsubscribed: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "merged": self.merged,
            "failed": [{"line": f.line, "error": f.error} for f in self.failed],
        }


def normalise_email(address: str) -> str:
    """The address as stored: syntax-checked, domain lower-cased and in ASCII (IDNA).

    Raises MemberError saying what is wrong with it.
    """
    address = address.strip()
    if not address:
        raise MemberError(_("the email address is empty"))
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise MemberError(_("{address!r} is not a valid email address: {reason}").format(
            address=address, reason=exc)) from None
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


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without Excel's BOM), else GB18030."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise MemberError(
            _("neither UTF-8 nor GB18030 (undecodable byte at offset {offset})").format(
                offset=exc.start),
            hint=_("save the sheet as “CSV UTF-8” or plain CSV"),
        ) from None


def read_members_csv(data: bytes) -> MemberCsv:
    """Parse a member CSV: a header row with `email` (and usually `name`), then one member a row.

    Raises MemberError only when the file as a whole is unusable (cannot be
    decoded, no `email` column); a bad row is reported with its line number
    and the rest are still read.
    """
    text = decode_csv(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise MemberError(_("the file is empty"), hint=_(_HEADER_HINT)) from None
    except csv.Error as exc:
        raise MemberError(_("line {line}: {reason}").format(line=1, reason=exc),
                          hint=_(_HEADER_HINT)) from None
    columns = [h.strip().lower() for h in header]
    if "email" not in columns:
        raise MemberError(
            _("line 1: no `email` column (found: {found})").format(
                found=", ".join(repr(h) for h in header) or _("nothing")),
            hint=_(_HEADER_HINT),
        )
    email_at = columns.index("email")
    name_at = columns.index("name") if "name" in columns else None
    warnings = []
    ignored = [h for h in header if h.strip().lower() not in ("email", "name")]
    if ignored:
        warnings.append(_("ignored columns: {columns}").format(
            columns=", ".join(repr(h) for h in ignored)))

    by_email: dict[str, MemberRow] = {}
    failed: list[RowFailure] = []
    duplicates = 0
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            failed.append(RowFailure(line, _("not valid CSV: {reason}").format(reason=exc)))
            break
        start, line = line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        try:
            email = normalise_email(_cell(cells, email_at))
            name = clean_name(_cell(cells, name_at))
        except MemberError as exc:
            failed.append(RowFailure(start, exc.message))
            continue
        earlier = by_email.get(email)
        if earlier is not None:
            duplicates += 1
            if name and name != earlier.name:
                by_email[email] = replace(earlier, name=name)
            continue
        by_email[email] = MemberRow(start, email, name)
    return MemberCsv(tuple(by_email.values()), tuple(failed), tuple(warnings), duplicates)


def merge_member(
    existing: Member | None, email: str, name: str, now: datetime, *, resubscribe: bool
) -> Member:
    """The member to save for one imported or added address.

    A new address joins as active. A known one keeps its join date, takes
    the new name when one is given, and stays unsubscribed unless
    `resubscribe` says the member asked to come back.
    """
    if existing is None:
        return Member(email=email, name=name, status=MemberStatus.ACTIVE, joined=now)
    merged = replace(existing, name=name or existing.name)
    if resubscribe and existing.status is MemberStatus.UNSUBSCRIBED:
        merged = replace(
            merged, status=MemberStatus.ACTIVE, unsubscribed_at=None, unsubscribed_via=None
        )
    return merged


def _cell(cells: list[str], at: int | None) -> str:
    return cells[at] if at is not None and at < len(cells) else ""


_HEADER_HINT = N_("the first row must name the columns, e.g. `email,name`")
