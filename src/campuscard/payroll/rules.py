"""Payroll sheets, the pure part: the finance office's spreadsheet of what each staff member is
paid for a month (工号, 金额, and optionally 姓名, 发放方式, 备注), ending in a 合计 row that states
the sheet's total. It is read with the student import's reader and limits and sent in its
checksummed frame (issuing/import_rules.py, decision 0041). Every bad row is reported, not only
the first, and the sheet is refused whole; the canonical echo lets the uploader check what the
server stored."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from campuscard.issuing import import_rules
from campuscard.issuing.import_rules import RowError
from campuscard.ledger.money import Money
from campuscard.platform.errors import DomainError, ValidationFailed

MAX_ROWS = 20_000
MAX_LINE_FEN = 10_000_000  # 100,000.00 yuan on one line
ROUTES = ("campus", "bank")
PERIOD = re.compile(r"^20[0-9]{2}-(0[1-9]|1[0-2])$")
FIELDS = ("number", "amount")
LABELS = {"number": "工号 staff number", "amount": "实发金额 amount"}
_ALIASES = {
    "工号": "number",
    "职工号": "number",
    "教工号": "number",
    "staff number": "number",
    "number": "number",
    "实发金额": "amount",
    "实发工资": "amount",
    "金额": "amount",
    "amount": "amount",
    "net pay": "amount",
    "姓名": "name",
    "name": "name",
    "发放方式": "route",
    "发放到": "route",
    "pay to": "route",
    "route": "route",
    "备注": "memo",
    "memo": "memo",
    "note": "memo",
}
_ROUTE_WORDS = {
    "": "campus",
    "校园卡": "campus",
    "一卡通": "campus",
    "campus": "campus",
    "campus card": "campus",
    "card": "campus",
    "银行卡": "bank",
    "bank": "bank",
    "bank card": "bank",
}
TOTAL_WORDS = frozenset({"合计", "总计", "total"})


@dataclass(frozen=True)
class PayrollRow:
    row: int  # the row number in the sheet, header = 1
    number: str
    amount: int  # fen
    route: str  # campus | bank
    name: str = ""  # optional, checked against the record when given
    memo: str = ""

    def canonical(self) -> str:
        return canonical_line(self.number, self.route, self.amount)


def canonical_line(number: str, route: str, amount: int) -> str:
    return f"{number}\t{route}\t{Money(amount)}"


def canonical_sha256(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def check_period(period: str) -> str:
    if not PERIOD.match(period or ""):
        raise ValidationFailed("the pay month is YYYY-MM, e.g. 2026-11", field="period")
    return period


def parse_sheet(content: bytes) -> tuple[list[PayrollRow], list[RowError]]:
    """Every row that reads well, and every problem of every row (the total row's too)."""
    sheet = import_rules.read_sheet(
        content,
        aliases=_ALIASES,
        required=FIELDS,
        labels=LABELS,
        max_rows=MAX_ROWS,
        kind="payroll sheet",
    )
    rows, cell = sheet.rows, sheet.cell

    out: list[PayrollRow] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    total_row: tuple[int, str] | None = None
    for line, r in rows[1:]:
        number, amount_text = cell(r, "number"), cell(r, "amount")
        if number.lower() in TOTAL_WORDS:
            if total_row is not None:
                errors.append(
                    RowError(line, "number", "the sheet has a second 合计 row", "TOTAL_TWICE")
                )
            total_row = (line, amount_text)
            continue
        if total_row is not None:
            errors.append(
                RowError(
                    line,
                    "number",
                    f"this row comes after the 合计 row {total_row[0]}",
                    "AFTER_TOTAL",
                    {"total_row": str(total_row[0])},
                )
            )
            continue
        bad = False
        if not import_rules.NUMBER.match(number):
            errors.append(
                RowError(
                    line,
                    "number",
                    "工号 must be 1-32 letters, digits, _ or -",
                    "NUMBER_FORMAT",
                    {"value": number},
                )
            )
            bad = True
        amount = 0
        try:
            amount = Money.parse(amount_text, field="amount").fen
            if amount > MAX_LINE_FEN:
                raise ValidationFailed(
                    f"is more than {Money(MAX_LINE_FEN)} on one line", field="amount"
                )
        except DomainError as err:
            errors.append(
                RowError(
                    line,
                    "amount",
                    f"实发金额 {err.message}",
                    "AMOUNT_INVALID",
                    {"value": amount_text},
                )
            )
            bad = True
        route_text = cell(r, "route")
        route = _ROUTE_WORDS.get(route_text.lower())
        if route is None:
            errors.append(
                RowError(
                    line,
                    "route",
                    "发放方式 is 校园卡 (campus card) or 银行卡 (bank card)",
                    "ROUTE_INVALID",
                    {"value": route_text},
                )
            )
            bad = True
        memo = cell(r, "memo")
        if len(memo) > 64:
            errors.append(RowError(line, "memo", "备注 is at most 64 characters", "MEMO_LENGTH"))
            bad = True
        if not bad and number in seen:
            errors.append(
                RowError(
                    line,
                    "number",
                    f"{number} is also on row {seen[number]}",
                    "DUPLICATE_ROW",
                    {"number": number, "first": str(seen[number])},
                )
            )
            bad = True
        if not bad:
            seen[number] = line
            out.append(PayrollRow(line, number, amount, route or "campus", cell(r, "name"), memo))
    last_line = rows[-1][0]
    if total_row is None:
        errors.append(
            RowError(
                last_line + 1,
                "amount",
                "the sheet must end with a 合计 row stating its total",
                "TOTAL_MISSING",
            )
        )
    elif not errors:
        stated: int | None = None  # a 合计 that is not an amount matches no sum
        with contextlib.suppress(DomainError):
            stated = Money.parse(total_row[1], field="amount", allow_zero=True).fen
        actual = sum(r.amount for r in out)
        if stated != actual:
            errors.append(
                RowError(
                    total_row[0],
                    "amount",
                    f"合计 says {total_row[1]}, the lines add up to {Money(actual)}",
                    "TOTAL_MISMATCH",
                    {"stated": total_row[1], "sum": str(Money(actual))},
                )
            )
    return out, errors


def line_state(route: str, tx_id: int | None, transfer_status: str | None) -> str:
    """A line as finance sees it: waiting (not approved yet), paid, pending (the bank has not
    settled it), failed (the bank refused it or it was reversed: the money is back)."""
    if route == "campus":
        return "paid" if tx_id is not None else "waiting"
    if transfer_status is None:
        return "waiting"
    if transfer_status == "posted":
        return "paid"
    if transfer_status in ("failed", "reversed"):
        return "failed"
    return "pending"
