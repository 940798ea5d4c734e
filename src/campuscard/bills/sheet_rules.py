"""Bill sheets, the pure part: the finance office's spreadsheet of what each student owes for
a term's items (学号, 收费项目, 金额), read with the student import's reader and limits and sent
in its checksummed frame (issuing/import_rules.py, decision 0041). Every bad row is reported,
not only the first; the canonical echo lets the uploader check what the server stored."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from campuscard.issuing import import_rules
from campuscard.issuing.import_rules import RowError
from campuscard.ledger.money import Money
from campuscard.platform.errors import DomainError

MAX_ROWS = 100_000
FIELDS = ("number", "item", "amount")
LABELS = {"number": "学号 student number", "item": "收费项目 item", "amount": "金额 amount"}
_ALIASES = {
    "学号": "number",
    "学生学号": "number",
    "student number": "number",
    "number": "number",
    "收费项目": "item",
    "项目": "item",
    "item": "item",
    "fee item": "item",
    "金额": "amount",
    "应缴金额": "amount",
    "amount": "amount",
    "姓名": "name",
    "学生姓名": "name",
    "name": "name",
}


@dataclass(frozen=True)
class SheetRow:
    row: int  # the row number in the sheet, header = 1
    number: str
    item: str
    amount: int  # fen
    name: str = ""  # optional, checked against the record when given

    def canonical(self) -> str:
        return canonical_line(self.number, self.item, self.amount)


def canonical_line(number: str, item: str, amount: int) -> str:
    return f"{number}\t{item}\t{Money(amount)}"


def canonical_sha256(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def parse_sheet(content: bytes) -> tuple[list[SheetRow], list[RowError]]:
    """Every row that reads well, and every problem of every other row."""
    sheet = import_rules.read_sheet(
        content, aliases=_ALIASES, required=FIELDS, labels=LABELS, max_rows=MAX_ROWS
    )
    rows, cell = sheet.rows, sheet.cell
    out: list[SheetRow] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}

    for line, r in rows[1:]:
        number, item, amount_text = cell(r, "number"), cell(r, "item"), cell(r, "amount")
        bad = False
        if not import_rules.NUMBER.match(number):
            errors.append(
                RowError(
                    line,
                    "number",
                    "学号 must be 1-32 letters, digits, _ or -",
                    "NUMBER_FORMAT",
                    {"value": number},
                )
            )
            bad = True
        if not 1 <= len(item) <= 64:
            errors.append(RowError(line, "item", "收费项目 must be 1-64 characters", "ITEM_LENGTH"))
            bad = True
        amount = 0
        try:
            amount = Money.parse(amount_text, field="amount", allow_zero=True).fen
        except DomainError as err:
            errors.append(
                RowError(
                    line, "amount", f"金额 {err.message}", "AMOUNT_INVALID", {"value": amount_text}
                )
            )
            bad = True
        if not bad and (number, item) in seen:
            errors.append(
                RowError(
                    line,
                    "item",
                    f"this student's {item} is also on row {seen[number, item]}",
                    "DUPLICATE_ROW",
                    {"item": item, "first": str(seen[number, item])},
                )
            )
            bad = True
        if not bad:
            seen[number, item] = line
            out.append(SheetRow(line, number, item, amount, cell(r, "name")))
    return out, errors
