"""The school's money limits (pure): how much a purse may hold, how much one counter operation
may move, above which a deposit needs a second person, and the largest drawer float.

Stored in ``schools.settings['money_limits']`` as fen; every key has a safe default, so a school
that set nothing is capped. Campus cards are commonly capped around 1,000 yuan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from campuscard.ledger.money import MAX_FEN, Money, fmt
from campuscard.platform.errors import DomainError, ValidationFailed

# what a system account that stands for real money holds can never go below zero by an
# adjustment: the subsidy fund and the cash desk (the drawers)
REAL_MONEY_ACCOUNTS = frozenset({"subsidy_fund", "cash_desk"})


@dataclass(frozen=True)
class MoneyLimits:
    purse_cap: int = 100_000  # 1,000.00 yuan: cash + subsidy of one person
    counter_op_cap: int = 100_000  # 1,000.00 yuan: one deposit, grant, withdrawal at the counter
    deposit_approval_over: int = 50_000  # a deposit above 500.00 yuan needs a second person
    drawer_float_cap: int = 500_000  # 5,000.00 yuan: the most a drawer may open with

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    def view(self) -> dict[str, str]:
        return {k: fmt(v) for k, v in self.to_json().items()}


def limits_from_settings(settings: Mapping[str, Any] | None) -> MoneyLimits:
    return check_limits(dict((settings or {}).get("money_limits") or {}), base=MoneyLimits())


def check_limits(raw: Mapping[str, Any], *, base: MoneyLimits) -> MoneyLimits:
    known = set(MoneyLimits.__dataclass_fields__)
    for key in raw:
        if key not in known:
            raise ValidationFailed(f"unknown money limit {key!r}", field=key)
    values = base.to_json() | dict(raw)
    for key, value in values.items():
        # a drawer must always be able to close: float + a day's counter work stays far below
        # the largest amount anyone can type
        if type(value) is not int or not 0 < value <= MAX_FEN // 1000:
            raise ValidationFailed(
                f"{key} must be a positive number of fen up to {MAX_FEN // 1000}", field=key
            )
    return MoneyLimits(**values)


def parse_limit_changes(body: Mapping[str, Any]) -> dict[str, int]:
    """{"purse_cap": "800.00"} -> {"purse_cap": 80000}; every value in yuan, strictly."""
    known = set(MoneyLimits.__dataclass_fields__)
    out: dict[str, int] = {}
    for key, value in body.items():
        if key not in known:
            raise ValidationFailed(f"unknown money limit {key!r}", field=key)
        out[key] = Money.parse(value, field=key).fen
    return out


def check_counter_amount(limits: MoneyLimits, fen: int, field: str = "amount") -> None:
    if fen > limits.counter_op_cap:
        raise DomainError(
            f"one counter operation is at most {fmt(limits.counter_op_cap)} (school limit)",
            code="COUNTER_OP_CAP",
            field=field,
            status=422,
        )


def check_purse_cap(limits: MoneyLimits, total_after: int, field: str = "amount") -> None:
    if total_after > limits.purse_cap:
        raise DomainError(
            f"a card holds at most {fmt(limits.purse_cap)} (school limit); "
            f"this would make it {fmt(total_after)}",
            code="PURSE_CAP_EXCEEDED",
            field=field,
            status=409,
        )


def check_drawer_float(limits: MoneyLimits, fen: int, field: str = "opening_float") -> None:
    if fen > limits.drawer_float_cap:
        raise ValidationFailed(
            f"a drawer opens with at most {fmt(limits.drawer_float_cap)} (school limit)",
            code="DRAWER_FLOAT_CAP",
            field=field,
        )


def needs_second_person_for_deposit(limits: MoneyLimits, fen: int) -> bool:
    return fen > limits.deposit_approval_over
