"""Which purse pays first: the school's policy (schools.settings->>'purse_order').

'subsidy_first' (the default; subsidies are meant to be eaten, and they may expire) or
'cash_first'. A payment that needs both takes what it can from the first and the rest
from the second. Pure: no I/O. Payments read the policy with ``policy_of(settings)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

PurseOrder = Literal["subsidy_first", "cash_first"]
PURSE_ORDERS: tuple[PurseOrder, ...] = ("subsidy_first", "cash_first")
DEFAULT: PurseOrder = "subsidy_first"
SETTINGS_KEY = "purse_order"


def policy_of(school_settings: Mapping[str, Any] | None) -> PurseOrder:
    value = (school_settings or {}).get(SETTINGS_KEY, DEFAULT)
    return value if value in PURSE_ORDERS else DEFAULT


def split_debit(order: PurseOrder, balances: Mapping[str, int], amount: int) -> dict[str, int]:
    """How much each purse pays for ``amount`` fen; raises ValueError if both cannot."""
    if amount <= 0:
        raise ValueError("amount must be positive")
    first, second = ("subsidy", "cash") if order == "subsidy_first" else ("cash", "subsidy")
    take_first = min(max(balances.get(first, 0), 0), amount)
    take_second = amount - take_first
    if take_second > max(balances.get(second, 0), 0):
        raise ValueError("the purses together do not hold enough")
    return {k: v for k, v in ((first, take_first), (second, take_second)) if v}
