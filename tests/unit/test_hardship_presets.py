"""The hidden-hardship presets reproduce the two published rules exactly, never propose an
excluded student, and say why and what would change the outcome."""

from __future__ import annotations

from datetime import datetime, timedelta

from campuscard.monitoring import hardship_rules as h
from campuscard.monitoring.rules import DEFAULTS

V = DEFAULTS["hardship"]


def month(meals: int, spend: int, days: int = 30, idle: int = 0) -> h.Month:
    return h.Month(1, meals, spend, days, idle)


def test_njust_at_least_60_meals_and_under_420_yuan() -> None:
    c = h.preset("njust", month(60, 41999), V)
    assert c is not None and c.amount == V["njust_amount"]
    assert "60" in c.reasons[0]["zh-CN"] and "419.99" in c.reasons[1]["en"]
    assert "0.01" in c.what_would_change[0]["en"]
    assert h.preset("njust", month(59, 20000), V) is None
    assert h.preset("njust", month(80, 42000), V) is None


def test_xidian_at_least_60_meals_and_under_8_yuan_a_day_6_yuan_a_day_of_help() -> None:
    c = h.preset("xidian", month(62, 8 * 31 * 100 - 1, days=31), V)
    assert c is not None and c.amount == 6 * 31 * 100
    assert h.preset("xidian", month(62, 8 * 31 * 100, days=31), V) is None


def test_exclusions_a_declared_diet_off_campus_an_inactive_card() -> None:
    assert h.preset("njust", month(70, 20000), V, ["diet"]) is None
    assert h.preset("njust", month(70, 20000), V, ["off_campus"]) is None
    assert h.preset("njust", month(70, 20000, idle=14), V) is None


def test_a_meal_is_one_visit_per_meal_time() -> None:
    lunch = datetime(2026, 3, 2, 11, 50)
    two_windows = [(lunch, 400), (lunch + timedelta(minutes=3), 150)]
    dinner = [(datetime(2026, 3, 2, 17, 40), 450)]
    m = h.month_of(1, two_windows + dinner, 30, 0)
    assert (m.meals, m.canteen_spend) == (2, 1000)
