"""Hidden hardship, pure: a month of one student's canteen use, the two published presets, the
exclusions, and what would change the outcome. No I/O.

- ``njust``: at least 60 canteen meals in the month and under 420 yuan spent in canteens.
- ``xidian``: at least 60 canteen meals in the month and under 8 yuan a day on average (canteen
  spending over the days of the month); the help is 6 yuan for each day of the month.

A meal is one canteen visit: canteen payments of the same day and meal time (before 10:30,
before 16:00, later) count once, so a tray paid at two windows is one meal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from campuscard.ledger.money import fmt

EXCLUSIONS = {
    "diet": {"zh-CN": "本人申报节食", "en": "declared a diet"},
    "off_campus": {"zh-CN": "校外居住", "en": "lives off campus"},
    "inactive": {"zh-CN": "校园卡近期未使用", "en": "card not used lately"},
}


def meal_slot(local: datetime) -> tuple[str, int]:
    t = local.time()
    slot = 0 if t < time(10, 30) else 1 if t < time(16, 0) else 2
    return local.date().isoformat(), slot


@dataclass(frozen=True)
class Month:
    """One student's month: canteen meals and spending, and the days of the month."""

    person_id: int
    meals: int
    canteen_spend: int
    days: int
    last_use_days_ago: int  # days from the last payment to the month's end


def month_of(
    person_id: int, canteen: Iterable[tuple[datetime, int]], days: int, idle: int
) -> Month:
    """``canteen``: (local time, amount) of the month's canteen payments."""
    slots: set[tuple[str, int]] = set()
    spend = 0
    for at, amount in canteen:
        slots.add(meal_slot(at))
        spend += amount
    return Month(person_id, len(slots), spend, days, idle)


@dataclass(frozen=True)
class Candidate:
    person_id: int
    method: str
    amount: int  # the suggested help (fen)
    reasons: list[dict[str, str]]
    what_would_change: list[dict[str, str]]


def preset(
    method: str, m: Month, values: Mapping[str, Any], excluded: Iterable[str] = ()
) -> Candidate | None:
    """The preset's verdict on one month, or None; an excluded student is never a candidate."""
    if set(excluded) & set(EXCLUSIONS):
        return None
    if m.last_use_days_ago >= int(values["inactive_days"]):
        return None
    meals_needed = int(values[f"{method}_meals"])
    if method == "njust":
        line = int(values["njust_spend_below"])
        amount = int(values["njust_amount"])
    elif method == "xidian":
        line = int(values["xidian_daily_below"]) * m.days
        amount = int(values["xidian_daily_amount"]) * m.days
    else:
        raise ValueError(method)
    if m.meals < meals_needed or m.canteen_spend >= line:
        return None
    reasons = [
        {
            "zh-CN": f"本月食堂就餐 {m.meals} 次（不少于 {meals_needed} 次）",
            "en": f"{m.meals} canteen meals this month (at least {meals_needed})",
        },
        {
            "zh-CN": f"本月食堂消费 {fmt(m.canteen_spend)} 元（低于 {fmt(line)} 元）",
            "en": f"{fmt(m.canteen_spend)} yuan spent in canteens (under {fmt(line)} yuan)",
        },
    ]
    gap_spend, gap_meals = line - m.canteen_spend, m.meals - meals_needed + 1
    change = [
        {
            "zh-CN": f"本月食堂消费再多 {fmt(gap_spend)} 元即不再列入",
            "en": f"{fmt(gap_spend)} yuan more spent in canteens would end the candidacy",
        },
        {
            "zh-CN": f"少 {gap_meals} 次食堂就餐即不再列入",
            "en": f"{gap_meals} fewer canteen meals would end the candidacy",
        },
    ]
    return Candidate(m.person_id, method, amount, reasons, change)
