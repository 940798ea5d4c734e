"""Reconciliation rules: reading the outside parties' daily statement files and matching their
lines with our bookings by reference. Pure: no I/O.

Amounts are signed from the school's point of view: + money came in for the school (a bank
load, a provider payment), - money went out (a payout, a refund).

Bank statement (docs/bank-link.md), pipe-separated:
    H|<bank>|<YYYYMMDD>|<number of D lines>
    D|<rrn>|<stan>|<kind>|<amount fen>|<auth code>|<YYYYMMDDhhmmss>
    T|<debits fen>|<credits fen>|<net fen>
kinds: LOAD (+), PAYOUT (-), SETTLE (- a merchant payout line of our payout file, the rrn is
its payout reference) and each of them with _REV (the opposite sign).

Provider bill (docs/reconciliation.md), CSV with a header and a '#' trailer:
    trade_time,out_trade_no,transaction_id,type,amount_fen,out_refund_no
    # total_paid=<fen>,total_refunded=<fen>,net=<fen>
type SUCCESS (+, reference out_trade_no) or REFUND (-, reference out_trade_no + ':refund').
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from campuscard.platform.errors import ValidationFailed

MAX_LINES = 200_000
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_LINE_CHARS = 1024  # a statement line is a few fields; a longer one is not a statement
BANK_SIGNS = {"LOAD": 1, "PAYOUT": -1, "SETTLE": -1}
_DIGITS = re.compile(r"[0-9]{1,13}")
_REF = re.compile(r"[A-Za-z0-9_:.-]{1,64}")


@dataclass(frozen=True)
class StatementLine:
    line_no: int
    reference: str
    kind: str
    amount: int
    occurred_at: str
    raw: str


@dataclass
class Statement:
    source: str
    statement_date: date
    lines: list[StatementLine] = field(default_factory=list)

    @property
    def total_in(self) -> int:
        return sum(ln.amount for ln in self.lines if ln.amount > 0)

    @property
    def total_out(self) -> int:
        return -sum(ln.amount for ln in self.lines if ln.amount < 0)


class _Problems:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def add(self, line: int, field: str, message: str) -> None:
        if len(self.rows) < 1000:
            self.rows.append({"line": line, "field": field, "message": message})

    def raise_if_any(self, what: str) -> None:
        if self.rows:
            first = self.rows[0]
            raise ValidationFailed(
                f"{what}: {len(self.rows)} problem(s); first on line {first['line']}: "
                f"{first['message']}",
                code="STATEMENT_INVALID",
                field="file",
                details={"problems": self.rows},
            )


def _bounded_lines(text: str) -> list[str]:
    """The file's non-blank lines, within MAX_LINES lines of MAX_LINE_CHARS characters."""
    if len(text) > MAX_FILE_BYTES:
        raise ValidationFailed(
            f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            code="STATEMENT_TOO_LARGE",
            field="file",
        )
    rows: list[str] = []
    for no, line in enumerate(io.StringIO(text), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise ValidationFailed(
                f"line {no} is longer than {MAX_LINE_CHARS} characters",
                code="STATEMENT_TOO_LARGE",
                field="file",
            )
        line = line.rstrip("\r\n")
        if line.strip():
            rows.append(line)
            if len(rows) > MAX_LINES:
                raise ValidationFailed(
                    f"the file has more than {MAX_LINES} lines",
                    code="STATEMENT_TOO_LARGE",
                    field="file",
                )
    return rows


def _fen(text: str) -> int | None:
    return int(text) if _DIGITS.fullmatch(text) else None


def _signed_fen(text: str) -> int | None:
    """A net may be negative (more refunded than paid): '-300' -> -300."""
    magnitude = _fen(text.removeprefix("-"))
    if magnitude is None:
        return None
    return -magnitude if text.startswith("-") else magnitude


def parse_bank_statement(text: str) -> Statement:
    """Parse the bank's file; every bad line is reported (the import is all-or-nothing)."""
    problems = _Problems()
    rows = _bounded_lines(text)
    if not rows or not rows[0].startswith("H|"):
        raise ValidationFailed(
            "a bank statement starts with an H|bank|YYYYMMDD|count line",
            code="STATEMENT_INVALID",
            field="file",
        )
    head = rows[0].split("|")
    day: date | None = None
    if len(head) != 4:
        problems.add(1, "header", "the H line has 4 fields")
    else:
        try:
            day = datetime.strptime(head[2], "%Y%m%d").date()
        except ValueError:
            problems.add(1, "date", f"bad statement date {head[2]!r}")
    statement = Statement("bank", day or date(1970, 1, 1))
    trailer: list[str] | None = None
    for no, raw in enumerate(rows[1:], start=2):
        parts = raw.split("|")
        if parts[0] == "T":
            if trailer is not None:
                problems.add(no, "trailer", "a second T line")
            trailer = parts
            continue
        if trailer is not None:
            problems.add(no, "record", "a line after the T line")
            continue
        if parts[0] != "D" or len(parts) != 7:
            problems.add(no, "record", "a D line has 7 fields: D|rrn|stan|kind|amount|auth|time")
            continue
        _, ref, _stan, kind, amount_text, _auth, stamp = parts
        base = kind.removesuffix("_REV")
        amount = _fen(amount_text)
        ok = True
        if _REF.fullmatch(ref) is None:
            problems.add(no, "reference", f"bad reference {ref[:40]!r}")
            ok = False
        if base not in BANK_SIGNS:
            problems.add(no, "kind", f"unknown kind {kind[:20]!r}")
            ok = False
        if amount is None or amount == 0:
            problems.add(
                no, "amount", f"amount must be a positive number of fen, not {amount_text[:20]!r}"
            )
            ok = False
        if ok and amount is not None:
            sign = BANK_SIGNS[base] * (-1 if kind.endswith("_REV") else 1)
            statement.lines.append(StatementLine(no, ref, kind, sign * amount, stamp, raw))
    count_ok = len(head) == 4 and _fen(head[3]) is not None
    if not problems.rows and not (count_ok and int(head[3]) == len(statement.lines)):
        problems.add(1, "count", f"the H line's count does not match {len(statement.lines)} lines")
    if trailer is None:
        problems.add(len(rows) + 1, "trailer", "the T|debits|credits|net line is missing")
    elif not problems.rows:
        values = [_fen(v.lstrip("-")) for v in trailer[1:]]
        if len(trailer) != 4 or None in values:
            problems.add(len(rows), "trailer", "the T line is T|debits|credits|net")
        elif int(trailer[1]) != statement.total_in or int(trailer[2]) != statement.total_out:
            problems.add(
                len(rows),
                "trailer",
                f"totals do not add up: file says in {trailer[1]} out {trailer[2]}, lines give "
                f"{statement.total_in} and {statement.total_out}",
            )
        elif _signed_fen(trailer[3]) != statement.total_in - statement.total_out:
            problems.add(
                len(rows),
                "net",
                f"the net does not add up: file says {trailer[3][:20]}, lines give "
                f"{statement.total_in - statement.total_out}",
            )
    problems.raise_if_any("the bank statement was refused")
    return statement


PROVIDER_HEADER = [
    "trade_time",
    "out_trade_no",
    "transaction_id",
    "type",
    "amount_fen",
    "out_refund_no",
]


def parse_provider_bill(text: str, statement_date: date) -> Statement:
    """Parse the provider's bill of ``statement_date`` (the file itself carries no date)."""
    problems = _Problems()
    raw_rows = _bounded_lines(text)
    body = [(no, ln) for no, ln in enumerate(raw_rows, start=1) if not ln.startswith("#")]
    trailers = [ln for ln in raw_rows if ln.startswith("#")]
    if not body or next(csv.reader([body[0][1]])) != PROVIDER_HEADER:
        raise ValidationFailed(
            "a provider bill starts with the header " + ",".join(PROVIDER_HEADER),
            code="STATEMENT_INVALID",
            field="file",
        )
    statement = Statement("provider", statement_date)
    for no, raw in body[1:]:
        cells = next(csv.reader(io.StringIO(raw)))
        if len(cells) != len(PROVIDER_HEADER):
            problems.add(no, "record", f"a line has {len(PROVIDER_HEADER)} fields")
            continue
        stamp, trade_no, _txn, kind, amount_text, refund_no = cells
        amount = _fen(amount_text)
        ok = True
        if _REF.fullmatch(trade_no) is None:
            problems.add(no, "out_trade_no", f"bad out_trade_no {trade_no[:40]!r}")
            ok = False
        if kind not in ("SUCCESS", "REFUND"):
            problems.add(no, "type", f"unknown type {kind[:20]!r}")
            ok = False
        if amount is None or amount == 0:
            problems.add(
                no,
                "amount_fen",
                f"amount must be a positive number of fen, not {amount_text[:20]!r}",
            )
            ok = False
        if kind == "REFUND" and not refund_no:
            problems.add(no, "out_refund_no", "a REFUND line names its out_refund_no")
            ok = False
        if ok and amount is not None:
            ref = trade_no if kind == "SUCCESS" else f"{trade_no}:refund"
            signed = amount if kind == "SUCCESS" else -amount
            statement.lines.append(StatementLine(no, ref, kind, signed, stamp, raw))
    if len(trailers) != 1:
        problems.add(len(raw_rows), "trailer", "the bill ends with one '# total_paid=…' line")
    elif not problems.rows:
        fields = dict(
            part.split("=", 1) for part in trailers[0].lstrip("# ").split(",") if "=" in part
        )
        paid, refunded = _fen(fields.get("total_paid", "")), _fen(fields.get("total_refunded", ""))
        if paid != statement.total_in or refunded != statement.total_out:
            problems.add(
                len(raw_rows),
                "trailer",
                f"totals do not add up: file says paid {fields.get('total_paid')} refunded "
                f"{fields.get('total_refunded')}, lines give {statement.total_in} and "
                f"{statement.total_out}",
            )
        elif _signed_fen(fields.get("net", "")) != statement.total_in - statement.total_out:
            problems.add(
                len(raw_rows),
                "net",
                f"the net does not add up: file says {fields.get('net', '(missing)')[:20]}, "
                f"lines give {statement.total_in - statement.total_out}",
            )
    problems.raise_if_any("the provider bill was refused")
    return statement


@dataclass(frozen=True)
class Outcome:
    reference: str
    theirs: int  # net of their lines (0 when none)
    ours: int  # net of our bookings (0 when none)
    has_theirs: bool
    has_ours: bool

    @property
    def difference(self) -> int:
        return self.theirs - self.ours

    @property
    def reason(self) -> str | None:
        """None when matched; else why the reference goes to suspense."""
        if self.difference == 0:
            return None
        if not self.has_ours:
            return "missing_ours"  # they have it, we don't
        if not self.has_theirs:
            return "missing_theirs"  # we have it, they don't
        return "amount_differs"


def match(theirs: Mapping[str, int], ours: Mapping[str, int]) -> list[Outcome]:
    """Pair the net amounts per reference of both sides (in reference order)."""
    return [
        Outcome(ref, theirs.get(ref, 0), ours.get(ref, 0), ref in theirs, ref in ours)
        for ref in sorted(set(theirs) | set(ours))
    ]


def net_by_reference(lines: list[StatementLine]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ln in lines:
        out[ln.reference] = out.get(ln.reference, 0) + ln.amount
    return out
