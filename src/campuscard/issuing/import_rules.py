"""Student-record import files (seed 004 step 1): the frame, the sheet layout, row rules and the
canonical form both sides compare. Pure: no database, no network.

The upload is a frame: a start field with the payload length, the payload (the xlsx or CSV
bytes), and an end field carrying the payload's SHA-256. The server checks all three before it
looks at the payload; the client compares the server's canonical echo with its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from campuscard.platform import uploads
from campuscard.platform.errors import ValidationFailed

FRAME_START = b"CCIMPORT/1 START "
FRAME_END = b"\nCCIMPORT/1 END "
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_ROWS = 200_000
MAX_COLUMNS = 50
LIMITS = uploads.SheetLimits(rows=MAX_ROWS, columns=MAX_COLUMNS)

NUMBER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
CARD_NO = re.compile(r"^[0-9]{6,20}$")
FIELDS = ("seq", "province", "school", "name", "class_name", "number", "card_no")

# Seed 004's header row, and the English variant; matched after trimming and lower-casing.
HEADERS_ZH = ("序号", "学校所在省份", "学校名称", "学生姓名", "学生班级", "学生学号", "IC卡号")
HEADERS_EN = (
    "No.",
    "Province",
    "School",
    "Student name",
    "Class",
    "Student number",
    "IC card number",
)
_ALIASES: dict[str, str] = {}
for _field, _names in zip(
    FIELDS,
    (
        ("序号", "no.", "no", "#", "seq"),
        ("学校所在省份", "省份", "province"),
        ("学校名称", "学校", "school", "school name"),
        ("学生姓名", "姓名", "student name", "name"),
        ("学生班级", "班级", "class", "class name"),
        ("学生学号", "学号", "student number", "student no.", "student no", "number"),
        ("ic卡号", "卡号", "ic card number", "ic card no.", "card number", "card no."),
    ),
    strict=True,
):
    for _name in _names:
        _ALIASES[_name] = _field
REQUIRED = ("province", "school", "name", "class_name", "number")
FIELD_LABELS = {
    "province": "学校所在省份 province",
    "school": "学校名称 school",
    "name": "学生姓名 student name",
    "class_name": "学生班级 class",
    "number": "学生学号 student number",
    "card_no": "IC卡号 IC card number",
}


@dataclass(frozen=True)
class ImportRow:
    row: int  # the row number in the sheet, header = 1
    province: str
    school: str
    name: str
    class_name: str
    number: str
    card_no: str | None

    def canonical(self) -> str:
        return canonical_line(
            self.province, self.school, self.class_name, self.number, self.name, self.card_no
        )


@dataclass(frozen=True)
class RowError:
    """A bad row: its number, the field, the reason in English, and (where a page words it
    in its own language) a code with the values the wording names."""

    row: int
    field: str
    reason: str
    code: str = ""
    params: dict[str, str] = dataclasses.field(default_factory=dict)  # `field` is a column here

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"row": self.row, "field": self.field, "reason": self.reason}
        if self.code:
            answer |= {"code": self.code, "params": self.params}
        return answer


@dataclass(frozen=True)
class SchoolNames:
    """What the file may call the importing school and its province."""

    known_provinces: frozenset[str]  # every province name/code the platform knows
    province: frozenset[str]  # the school's province: name, English name, code
    school: frozenset[str]  # the school: name, English name, code


# ---------------------------------------------------------------- frame


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_frame(payload: bytes) -> bytes:
    return (
        FRAME_START
        + str(len(payload)).encode()
        + b"\n"
        + payload
        + FRAME_END
        + sha256_hex(payload).encode()
        + b"\n"
    )


def open_frame(frame: bytes) -> tuple[bytes, str]:
    """The payload and its digest, after checking start field, length, end field and checksum."""
    if not frame.startswith(FRAME_START):
        raise ValidationFailed(
            "the upload does not begin with the start field", code="FRAME_INVALID", field="file"
        )
    head_end = frame.find(b"\n", len(FRAME_START))
    length_text = frame[len(FRAME_START) : head_end] if head_end > 0 else b""
    if not length_text.isdigit() or len(length_text) > 10:
        raise ValidationFailed(
            "the start field has no payload length", code="FRAME_INVALID", field="file"
        )
    length = int(length_text)
    if length > MAX_FILE_BYTES:
        raise ValidationFailed(
            f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            code="FILE_TOO_LARGE",
            field="file",
        )
    body_start = head_end + 1
    payload = frame[body_start : body_start + length]
    tail = frame[body_start + length :]
    if len(payload) != length or not tail.startswith(FRAME_END):
        raise ValidationFailed(
            "the end field is missing or the payload length is wrong (truncated upload)",
            code="FRAME_INVALID",
            field="file",
        )
    declared = tail[len(FRAME_END) :].strip().decode("ascii", "replace")
    actual = sha256_hex(payload)
    if declared != actual:
        raise ValidationFailed(
            "the file's SHA-256 does not match the checksum sent with it (damaged in transit)",
            code="DIGEST_MISMATCH",
            field="file",
            details={"declared": declared, "received": actual},
        )
    return payload, actual


# ---------------------------------------------------------------- reading the sheet


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        # spreadsheet programs store digit-only columns as numbers
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return unicodedata.normalize("NFC", str(value)).strip()


@dataclass(frozen=True)
class Note:
    """Something the reader did to the file so it could be read as the teacher meant it:
    ``code`` names it (pages translate ``import.note.<code>``), ``message`` says it in English,
    ``rows`` are the sheet rows it touched (header = 1), ``value`` the encoding or sheet."""

    code: str
    message: str
    rows: tuple[int, ...] = ()
    value: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "rows": list(self.rows)} | (
            {"value": self.value} if self.value else {}
        )


# Characters nobody can see that spreadsheets and chat apps leave behind: zero-width space,
# joiners, word joiner, BOM, soft hyphen, direction marks.
INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f\u202a-\u202e]")


def _is_visible(meta: Any) -> bool:
    return str(getattr(meta, "visible", "Visible")).endswith("Visible")


def _read_xlsx(content: bytes) -> tuple[list[list[str]], list[Note]]:
    """The sheet whose first row is the header, else the first visible sheet; never a
    hidden one (templates often hide a sheet of lists or instructions). Read within
    ``LIMITS``: calamine only for a workbook ``uploads.checked_xlsx`` passed (it sizes its
    grid from the file), else the first sheet streamed (platform/uploads.py)."""
    from python_calamine import CalamineWorkbook

    safe = uploads.checked_xlsx(content, LIMITS)
    if safe is None:
        return [[_cell_text(v) for v in r] for r in uploads.xlsx_rows(content, LIMITS)], []
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(safe))
        metas = list(book.sheets_metadata)
        sheets = [
            (
                m.name,
                [
                    [_cell_text(v) for v in r]
                    for r in book.get_sheet_by_name(m.name).to_python(skip_empty_area=False)
                ],
            )
            for m in metas
            if _is_visible(m)
        ]
    except Exception as err:  # calamine raises several kinds for a damaged workbook
        raise ValidationFailed(
            f"the file is not a readable xlsx workbook: {err}",
            code="FILE_UNREADABLE",
            field="file",
        ) from err
    if not sheets:
        raise ValidationFailed(
            "the workbook has no visible sheet", code="FILE_UNREADABLE", field="file"
        )
    chosen = next((s for s in sheets if _header_row(s[1])), sheets[0])
    notes = []
    if metas and chosen[0] != metas[0].name:
        hidden = [m.name for m in metas if not _is_visible(m)]
        why = f"; hidden sheets skipped: {', '.join(hidden)}" if hidden else ""
        notes.append(
            Note(
                "sheet",
                f"read the sheet {chosen[0]!r} (it has the header row){why}",
                value=chosen[0],
            )
        )
    return chosen[1], notes


def _header_row(rows: list[list[str]]) -> bool:
    first = next((r for r in rows if any(r)), None)
    if first is None:
        return False
    found = {_ALIASES.get(_clean(t).lower()) for t in first}
    return all(f in found for f in REQUIRED)


def _read_csv(content: bytes) -> tuple[list[list[str]], list[Note]]:
    """UTF-8 (with or without a BOM), else GBK/GB18030 as Excel saves it on Chinese Windows."""
    notes = []
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = content.decode("gb18030")
        except UnicodeDecodeError as err:
            raise ValidationFailed(
                "the file is neither an xlsx workbook nor CSV text in UTF-8 or GBK",
                code="FILE_UNREADABLE",
                field="file",
            ) from err
        notes.append(
            Note(
                "encoding",
                "read the CSV as GBK text (as Excel saves it on Chinese Windows)",
                value="GBK",
            )
        )
    return [[_cell_text(v) for v in r] for r in uploads.csv_rows(text, LIMITS)], notes


def _clean(text: str) -> str:
    return INVISIBLE.sub("", text).strip()


def read_file(content: bytes) -> tuple[list[list[str]], list[Note]]:
    """The table of an xlsx or CSV file as rows of trimmed text, and what was done to read it
    (within ``LIMITS``: the workbook's declared size is not trusted, platform/uploads.py)."""
    if len(content) > MAX_FILE_BYTES:
        raise uploads.too_large(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    rows, notes = _read_xlsx(content) if content.startswith(b"PK") else _read_csv(content)
    while rows and not any(rows[-1]):
        rows.pop()
    return rows, notes


def read_table(content: bytes) -> list[list[str]]:
    """The table of an xlsx or CSV file as rows of trimmed text."""
    return read_file(content)[0]


def map_header(header: Sequence[str]) -> dict[str, int]:
    """Column index of each field, from seed 004's Chinese header or the English variant."""
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        key = _ALIASES.get(title.strip().lower())
        if key is not None and key not in columns:
            columns[key] = index
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        raise ValidationFailed(
            "the header row must be 序号, 学校所在省份, 学校名称, 学生姓名, 学生班级, 学生学号, "
            "IC卡号 (or No., Province, School, Student name, Class, Student number, "
            f"IC card number); missing: {', '.join(FIELD_LABELS[f] for f in missing)}",
            code="HEADER_INVALID",
            field="file",
        )
    return columns


# Sheets of other kinds (bill sheets, payroll sheets) read through the same reader, the same
# header mapping and the same whole-file refusal as the student import.
MAX_REPORTED_ERRORS = 1000


@dataclass(frozen=True)
class Sheet:
    """The non-empty rows of a sheet (with their row numbers) and its header's columns."""

    rows: list[tuple[int, list[str]]]
    columns: dict[str, int]

    def cell(self, row: list[str], field: str) -> str:
        """The field's cell of the row, without invisible characters; "" when absent."""
        i = self.columns.get(field)
        return INVISIBLE.sub("", row[i]).strip() if i is not None and i < len(row) else ""


def read_sheet(
    content: bytes,
    *,
    aliases: dict[str, str],
    required: Sequence[str],
    labels: dict[str, str],
    max_rows: int,
    kind: str = "sheet",
) -> Sheet:
    """Read a sheet and find its columns by their titles (``aliases``: title -> field). Refuses
    an empty file, a header without a ``required`` field, and more than ``max_rows`` rows."""
    table, _ = read_file(content)
    rows = [(i, r) for i, r in enumerate(table, start=1) if any(c.strip() for c in r)]
    if not rows:
        raise ValidationFailed("the file has no rows", code="FILE_EMPTY", field="file")
    header_line, header = rows[0]
    columns: dict[str, int] = {}
    for idx, text in enumerate(header):
        key = aliases.get(INVISIBLE.sub("", text).strip().lower())
        if key and key not in columns:
            columns[key] = idx
    missing = [f for f in required if f not in columns]
    if missing:
        raise ValidationFailed(
            "the header row lacks " + ", ".join(labels[f] for f in missing),
            code="HEADER_INVALID",
            field="file",
            details={"missing": missing, "row": header_line},
        )
    if len(rows) - 1 > max_rows:
        raise ValidationFailed(
            f"a {kind} has at most {max_rows} rows", code="FILE_TOO_LARGE", field="file"
        )
    return Sheet(rows=rows, columns=columns)


def refuse_rows(errors: Sequence[RowError], *, what: str, outcome: str) -> ValidationFailed:
    """The one refusal of a file with bad rows: nothing of it is kept, and every bad row (up to
    ``MAX_REPORTED_ERRORS``) is named with its code and values, in row order."""
    ordered = sorted(errors, key=lambda e: (e.row, e.field))
    first = ordered[0]
    return ValidationFailed(
        f"{len(ordered)} problem(s) in {what}; nothing was {outcome}. "
        f"First: row {first.row}: {first.reason}",
        code="IMPORT_ROWS_INVALID",
        field="file",
        details={
            "errors": [e.as_dict() for e in ordered[:MAX_REPORTED_ERRORS]],
            "total_errors": len(ordered),
        },
    )


def parse_rows(content: bytes) -> tuple[list[ImportRow], list[RowError]]:
    """Every data row, and every problem found in the file itself (names rows and fields)."""
    rows, errors, _ = parse_file(content)
    return rows, errors


# Fields where NFKC is safe: it turns full-width digits and letters (１２３, Ａ) and full-width
# spaces into their plain forms, which is what the teacher meant. Names keep their characters
# (NFKC would also rewrite compatibility ideographs); only invisible characters go.
NFKC_FIELDS = ("seq", "province", "school", "class_name", "number", "card_no")


def _normalise(field: str, text: str) -> tuple[str, str | None]:
    """The cell as meant, and what was changed: 'invisible', 'fullwidth' or None."""
    cleaned = _clean(text)
    change = "invisible" if cleaned != text.strip() else None
    if field in NFKC_FIELDS:
        folded = unicodedata.normalize("NFKC", cleaned).strip()
        if folded != cleaned:
            cleaned, change = folded, change or "fullwidth"
    else:
        cleaned = " ".join(cleaned.replace("\u3000", " ").split())
    return cleaned, change


def parse_file(content: bytes) -> tuple[list[ImportRow], list[RowError], list[Note]]:
    """Every data row, every problem found in the file itself (names rows and fields), and
    what was done to read it (encoding, sheet, characters normalised)."""
    table, notes = read_file(content)
    if not table:
        raise ValidationFailed("the file is empty", code="FILE_EMPTY", field="file")
    columns = map_header([_clean(t) for t in table[0]])
    if len(table) - 1 > MAX_ROWS:
        raise ValidationFailed(
            f"at most {MAX_ROWS} rows per file", code="FILE_TOO_LARGE", field="file"
        )
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    first_number: dict[str, int] = {}
    first_card: dict[str, int] = {}
    changed: dict[str, list[int]] = {}

    def cell(values: list[str], field: str) -> str:
        index = columns.get(field)
        return values[index] if index is not None and index < len(values) else ""

    for offset, values in enumerate(table[1:]):
        line = offset + 2
        if not any(values):
            continue  # blank lines between blocks are harmless
        data = {}
        for f in FIELDS:
            data[f], change = _normalise(f, cell(values, f))
            if change is not None:
                changed.setdefault(change, []).append(line)
        # each reason in English for the API, and a code with its values for a page to word
        problems = [
            RowError(line, f, f"{FIELD_LABELS[f]} is empty", "EMPTY")
            for f in REQUIRED
            if not data[f]
        ]
        if data["name"] and len(data["name"]) > 64:
            problems.append(
                RowError(line, "name", "the name is longer than 64 characters", "NAME_LENGTH")
            )
        if data["class_name"] and len(data["class_name"]) > 64:
            problems.append(
                RowError(
                    line, "class_name", "the class is longer than 64 characters", "CLASS_LENGTH"
                )
            )
        number = data["number"]
        if number and not NUMBER.fullmatch(number):
            problems.append(
                RowError(
                    line,
                    "number",
                    f"student number {number!r} must be 1-32 letters/digits",
                    "NUMBER_FORMAT",
                    {"value": number},
                )
            )
        elif number in first_number:
            problems.append(
                RowError(
                    line,
                    "number",
                    f"student number {number} appears twice in the file "
                    f"(first on row {first_number[number]})",
                    "NUMBER_TWICE",
                    {"value": number, "first": str(first_number[number])},
                )
            )
        elif number:
            first_number[number] = line
        card = data["card_no"] or None
        if card is not None:
            if not CARD_NO.fullmatch(card):
                problems.append(
                    RowError(
                        line,
                        "card_no",
                        f"IC card number {card!r} must be 6-20 digits",
                        "CARD_FORMAT",
                        {"value": card},
                    )
                )
            elif card in first_card:
                problems.append(
                    RowError(
                        line,
                        "card_no",
                        f"IC card number {card} appears twice in the file "
                        f"(first on row {first_card[card]})",
                        "CARD_TWICE",
                        {"value": card, "first": str(first_card[card])},
                    )
                )
            else:
                first_card[card] = line
        if problems:
            errors.extend(problems)
            continue
        rows.append(
            ImportRow(
                row=line,
                province=data["province"],
                school=data["school"],
                name=data["name"],
                class_name=data["class_name"],
                number=number,
                card_no=card,
            )
        )
    if not rows and not errors:
        raise ValidationFailed("the file has no student rows", code="FILE_EMPTY", field="file")
    for change, message in (
        ("fullwidth", "full-width digits, letters or spaces made plain (NFKC)"),
        ("invisible", "invisible characters (zero-width spaces and the like) removed"),
    ):
        if change in changed:
            lines = tuple(sorted(set(changed[change])))
            notes.append(Note(change, f"{message} on rows {_rows_text(lines)}", rows=lines))
    return rows, errors, notes


def _rows_text(lines: Sequence[int]) -> str:
    shown = ", ".join(map(str, lines[:10]))
    return shown + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")


def check_school(rows: Iterable[ImportRow], names: SchoolNames) -> list[RowError]:
    """Each row must name the importing school and its province."""
    errors: list[RowError] = []
    for r in rows:
        if r.province not in names.province:
            if r.province not in names.known_provinces:
                reason, code = f"unknown province {r.province!r}", "PROVINCE_UNKNOWN"
            else:
                reason = f"province {r.province!r} is not this school's province"
                code = "PROVINCE_OTHER"
            errors.append(RowError(r.row, "province", reason, code, {"value": r.province}))
        elif r.school not in names.school:
            errors.append(
                RowError(
                    r.row,
                    "school",
                    f"unknown school {r.school!r} in {r.province}",
                    "SCHOOL_UNKNOWN",
                    {"value": r.school, "province": r.province},
                )
            )
    return errors


# ---------------------------------------------------------------- canonical echo


def canonical_line(
    province: str, school: str, class_name: str, number: str, name: str, card_no: str | None
) -> str:
    return "\t".join((province, school, class_name, number, name, card_no or ""))


def canonical_text(lines: Iterable[str]) -> str:
    return "\n".join(lines)


def echo_matches(sent: Sequence[ImportRow], echoed: Sequence[str]) -> bool:
    """True if the server stored what was sent. A row sent without a card number keeps the card
    number already on record, so that field is compared only where the file had one."""
    if len(sent) != len(echoed):
        return False
    for row, line in zip(sent, echoed, strict=True):
        parts = line.split("\t")
        if len(parts) != 6:
            return False
        if row.card_no is None:
            parts[5] = ""
        if "\t".join(parts) != row.canonical():
            return False
    return True
