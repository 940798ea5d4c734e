"""Monthly analysis, the pure part: categories of purse movements and the pace of a month."""

from __future__ import annotations

from datetime import date

from campuscard.spending import rules


def test_movements_fall_into_categories() -> None:
    assert rules.category(-1200, "payment", "cash", "canteen") == "canteen"
    assert rules.category(-1200, "hold_capture", "cash", "supermarket") == "supermarket"
    assert rules.category(-1200, "payment", "cash", "other") == "other_shops"
    assert rules.category(-50000, "bill_payment", "cash", None) == "bills"
    assert rules.category(-500, "counter_withdrawal", "cash", None) == "other_out"
    assert rules.category(2000, "subsidy_grant", "subsidy", None) == "subsidy"
    assert rules.category(1200, "refund", "cash", "canteen") == "refund"
    assert rules.category(10000, "counter_deposit", "cash", None) == "topup"


def test_a_month_ahead_of_the_usual_pace_is_reminded_once() -> None:
    today = date(2026, 12, 15)
    p = rules.pace(today, 40_000, [0, 30_000, 30_000, 30_000])
    assert p.usual_month == 30_000 and p.expected == 30_000 * 15 // 31 and p.ahead
    assert rules.should_remind(today, p, None)
    assert not rules.should_remind(today, p, date(2026, 12, 1))  # once a month
    assert not rules.should_remind(
        date(2026, 12, 3), rules.pace(date(2026, 12, 3), 40_000, [30_000]), None
    )  # not in the first days
    assert not rules.pace(today, 16_000, [30_000]).ahead  # on pace
    assert not rules.pace(today, 5_000, []).ahead  # nothing to compare with
