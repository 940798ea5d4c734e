"""Bills, the pure part: terms, payment references, how a payment is spread over a bill's lines,
instalment schedules, late fees and the age buckets of arrears. No I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from campuscard.ledger.money import Money
from campuscard.platform.errors import ValidationFailed

TERM = re.compile(r"^([0-9]{4})-([0-9]{4})-([12])$")
ITEM_KINDS = ("tuition", "accommodation", "textbooks", "insurance", "utilities", "other")
HOLD_KINDS = ("card_replacement", "exam_hall")
SCOPES = ("class", "major", "dorm")
# Arrears by how long they are overdue (days past the due date, inclusive bounds).
BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("d1_30", 1, 30),
    ("d31_60", 31, 60),
    ("d61_90", 61, 90),
    ("d90_plus", 91, None),
)
REFERENCE = re.compile(r"^JF([0-9]{4})([0-9]{10})([0-9])$")


def term_of(today: date) -> str:
    """The term a day falls in: the autumn term from August, the spring term from February
    (before August; January still belongs to the autumn term)."""
    year = today.year if today.month >= 8 else today.year - 1
    half = 2 if 2 <= today.month < 8 else 1
    return f"{year}-{year + 1}-{half}"


def check_term(term: str, field: str = "term") -> str:
    m = TERM.match(term)
    if m is None or int(m.group(2)) != int(m.group(1)) + 1:
        raise ValidationFailed(
            'term must look like "2026-2027-1" (school years that follow each other, term 1 or 2)',
            field=field,
        )
    return term


def _check_digit(digits: str) -> int:
    """Luhn check digit: a mistyped digit or two swapped neighbours never match."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def payment_reference(school_id: int, person_id: int) -> str:
    """The student's own reference for bank transfers (缴费识别码), e.g. JF0001000000004217."""
    body = f"{school_id:04d}{person_id:010d}"
    return f"JF{body}{_check_digit(body)}"


def parse_reference(text: str) -> tuple[int, int] | None:
    """(school id, person id) of a well-formed reference whose check digit holds, else None."""
    m = REFERENCE.match(text.strip().upper())
    if m is None:
        return None
    body = m.group(1) + m.group(2)
    if _check_digit(body) != int(m.group(3)):
        return None
    return int(m.group(1)), int(m.group(2))


def kind_rank(kind: str) -> int:
    """Lines of one due date are paid in this order: tuition first, then the rest."""
    return ITEM_KINDS.index(kind) if kind in ITEM_KINDS else -1


@dataclass(frozen=True)
class Line:
    id: int
    kind: str
    amount: int
    paid: int
    due_date: date

    @property
    def open(self) -> int:
        return self.amount - self.paid


def allocate(lines: Sequence[Line], amount: int) -> tuple[dict[int, int], int]:
    """Spread ``amount`` over the open lines: late fees first (they stop growing once paid),
    then by due date and line. Returns (line id -> fen, what is left over)."""
    order = sorted(
        lines, key=lambda ln: (ln.kind != "late_fee", ln.due_date, kind_rank(ln.kind), ln.id)
    )
    out: dict[int, int] = {}
    left = amount
    for ln in order:
        if left <= 0:
            break
        take = min(ln.open, left)
        if take > 0:
            out[ln.id] = take
            left -= take
    return out, left


@dataclass(frozen=True)
class Instalment:
    seq: int
    due_date: date
    amount: int


def split_plan(total: int, first_due: date, count: int, every_days: int) -> list[Instalment]:
    """``count`` instalments ``every_days`` apart; the fen that do not divide go to the first."""
    if not 2 <= count <= 12:
        raise ValidationFailed("a plan has 2 to 12 instalments", field="instalments")
    if not 7 <= every_days <= 180:
        raise ValidationFailed("instalments are 7 to 180 days apart", field="every_days")
    if total < count:
        raise ValidationFailed("there is too little left to pay to split", field="instalments")
    part, rest = divmod(total, count)
    return [
        Instalment(
            i + 1, first_due + timedelta(days=every_days * i), part + (rest if i == 0 else 0)
        )
        for i in range(count)
    ]


@dataclass(frozen=True)
class LateFeeRule:
    """A late fee per late instalment (or per late bill without a plan), charged once:
    ``fixed`` fen plus ``percent_bp`` hundredths of a percent of what is late, at most ``cap``."""

    fixed: int = 0
    percent_bp: int = 0
    grace_days: int = 7
    cap: int | None = None

    @property
    def active(self) -> bool:
        return self.fixed > 0 or self.percent_bp > 0

    def fee(self, late_amount: int) -> int:
        if late_amount <= 0 or not self.active:
            return 0
        fee = self.fixed + late_amount * self.percent_bp // 10_000
        return min(fee, self.cap) if self.cap is not None else fee


def late_fee_rule(settings: Mapping[str, Any]) -> LateFeeRule:
    """The school's rule from ``settings.bills.late_fee``: fixed and cap in yuan, percent,
    grace_days. No rule: no late fees."""
    raw = (settings.get("bills") or {}).get("late_fee") or {}
    if not raw:
        return LateFeeRule()
    percent = str(raw.get("percent", "0"))
    m = re.fullmatch(r"([0-9]{1,2})(?:\.([0-9]{1,2}))?", percent)
    if m is None:
        raise ValidationFailed("late_fee.percent must be 0-99.99", field="late_fee.percent")
    bp = int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
    cap = raw.get("cap")
    grace = raw.get("grace_days", 7)
    if type(grace) is not int or not 0 <= grace <= 90:
        raise ValidationFailed("late_fee.grace_days must be 0-90", field="late_fee.grace_days")
    return LateFeeRule(
        fixed=Money.parse(raw["fixed"], field="late_fee.fixed", allow_zero=True).fen
        if raw.get("fixed") is not None
        else 0,
        percent_bp=bp,
        grace_days=grace,
        cap=Money.parse(cap, field="late_fee.cap", allow_zero=True).fen
        if cap is not None
        else None,
    )


def late_instalments(
    plan: Sequence[Instalment], paid_on_items: int, today: date, grace_days: int
) -> list[tuple[Instalment, int]]:
    """Instalments past due and grace that the money paid on the items does not cover,
    each with the part of it still unpaid."""
    out: list[tuple[Instalment, int]] = []
    cumulative = 0
    for inst in sorted(plan, key=lambda i: i.seq):
        cumulative += inst.amount
        short = min(inst.amount, cumulative - paid_on_items)
        if short > 0 and today > inst.due_date + timedelta(days=grace_days):
            out.append((inst, short))
    return out


def first_unpaid_due(plan: Sequence[Instalment], paid_on_items: int) -> date | None:
    """The due date of the first instalment the money paid on the items does not cover."""
    cumulative = 0
    for inst in sorted(plan, key=lambda i: i.seq):
        cumulative += inst.amount
        if cumulative > paid_on_items:
            return inst.due_date
    return None


def bucket_of(days_overdue: int) -> str | None:
    for name, low, high in BUCKETS:
        if days_overdue >= low and (high is None or days_overdue <= high):
            return name
    return None


def effective_due(due_date: date, deferred_until: date | None) -> date:
    """A green-channel deferral moves the date arrears count from."""
    return max(due_date, deferred_until) if deferred_until else due_date


def school_holds(settings: Mapping[str, Any]) -> tuple[list[str], int]:
    """The holds the school chose and how many days overdue they start (default none, 30)."""
    cfg = settings.get("bills") or {}
    kinds = [k for k in cfg.get("holds", []) if k in HOLD_KINDS]
    after = cfg.get("hold_after_days", 30)
    return kinds, int(after) if type(after) is int and 0 <= after <= 365 else 30
