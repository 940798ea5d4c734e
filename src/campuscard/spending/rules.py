"""Monthly analysis, the pure part: which category a movement on a purse belongs to, and
whether this month runs ahead of the usual pace."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

SPENDING = ("canteen", "supermarket", "tuition", "other_shops", "bills", "other_out")
INCOME = ("topup", "subsidy", "refund", "payroll", "other_in")
CHANNELS = {"canteen": "canteen", "supermarket": "supermarket", "tuition": "tuition"}
# the usual pace: the average of up to this many earlier months with any spending
USUAL_MONTHS = 3
# a reminder when the month so far is this much ahead of the usual pace ...
AHEAD_RATIO = 1.2
# ... and at least this much (fen) ahead, so a few yuan early in the month say nothing
AHEAD_MIN_FEN = 5_000
# and not in the month's first days, when one big purchase is not a pace
FIRST_DAY = 5


def category(amount: int, kind: str, purse: str, channel: str | None) -> str:
    """A purse posting's category: spending when money left the purse, income when it came."""
    if amount < 0:
        if channel is not None:
            return CHANNELS.get(channel, "other_shops")
        if kind == "bill_payment":
            return "bills"
        return "other_out"
    if kind.startswith("payroll"):
        return "payroll"
    if "refund" in kind or "reversal" in kind:
        return "refund"
    if purse == "subsidy" or kind.startswith("subsidy"):
        return "subsidy"
    if kind in ("opening_balance",):
        return "other_in"
    return "topup"


@dataclass(frozen=True)
class Pace:
    spent: int  # this month so far, fen
    expected: int  # what the usual month would have spent by today, fen
    usual_month: int  # the usual whole month, fen

    @property
    def ahead(self) -> bool:
        return self.usual_month > 0 and (
            self.spent > self.expected * AHEAD_RATIO and self.spent - self.expected >= AHEAD_MIN_FEN
        )


def pace(today: date, spent_this_month: int, earlier_months: list[int]) -> Pace:
    """This month against the average of the earlier months that had spending, prorated to
    the day of the month."""
    usual = [m for m in earlier_months[-USUAL_MONTHS:] if m > 0]
    usual_month = sum(usual) // len(usual) if usual else 0
    days = calendar.monthrange(today.year, today.month)[1]
    expected = usual_month * today.day // days
    return Pace(spent_this_month, expected, usual_month)


def should_remind(today: date, p: Pace, last_reminded_month: date | None) -> bool:
    month = today.replace(day=1)
    return today.day >= FIRST_DAY and p.ahead and last_reminded_month != month
