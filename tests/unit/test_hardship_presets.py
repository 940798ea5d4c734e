"""The hidden-hardship presets reproduce the two published rules exactly, never propose an
excluded student, and say why and what would change the outcome."""

from __future__ import annotations

from datetime import datetime, timedelta

from campuscard.monitoring import hardship_rules as h
from campuscard.monitoring.rules import DEFAULTS
from campuscard.platform import i18n

V = DEFAULTS["hardship"]


def month(meals: int, spend: int, days: int = 30, idle: int = 0) -> h.Month:
    return h.Month(1, meals, spend, days, idle)


def test_njust_at_least_60_meals_and_under_420_yuan() -> None:
    c = h.preset("njust", month(60, 41999), V)
    assert c is not None and c.amount == V["njust_amount"]
    assert i18n.word("zh-CN", c.reasons[0]) == "本月食堂就餐 60 次（不少于 60 次）"
    assert i18n.word("en", c.reasons[1]) == "CN¥419.99 spent in canteens (under CN¥420.00)"
    assert i18n.word("zh-CN", c.what_would_change[0]) == "本月食堂消费再多 ¥0.01 即不再列入"
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


def test_the_scored_model_shows_its_inputs_weights_and_what_would_change() -> None:
    assert abs(sum(i.weight for i in h.SCORE_INPUTS) - 1.0) < 1e-9
    found = h.scored(month(62, 36000), V)  # 5.81 yuan a meal, 12.00 yuan a day
    assert found is not None
    c, score = found
    assert score == 0.764 and c.method == "score" and c.amount == V["score_amount"]
    en = [i18n.word("en", r) for r in c.reasons]
    assert en[0] == "score 0.76 (at least 0.65)"
    assert en[1] == "canteen meals this month 62 meals: weight 0.35, contributes 0.35"
    assert en[2] == "average spent per meal CN¥5.81: weight 0.45, contributes 0.31"
    assert i18n.word("zh-CN", c.reasons[2]) == "每餐平均消费 ¥5.81：权重 0.45，贡献 0.31"
    # each single change it names is the smallest that brings the score under the line
    assert i18n.word("en", c.what_would_change[0]) == (
        "23 fewer canteen meals at the same price a meal would end the candidacy"
    )
    assert h.scored(month(39, round(36000 / 62 * 39)), V) is None  # under score_min_meals
    assert h.scored(month(40, round(36000 / 62 * 40)), V) is not None
    assert i18n.word("en", c.what_would_change[1]) == "CN¥0.91 more a meal would end the candidacy"
    assert h.score_of(month(62, 36000 + 91 * 62))[0] < 0.65
    assert h.score_of(month(62, 36000 + 90 * 62))[0] >= 0.65
    # not a candidate: a higher spender, a light user, the exclusions
    assert h.scored(month(60, 42000), V) is None
    assert h.scored(month(20, 7000), V) is None
    assert h.scored(month(62, 21000), V, ["diet"]) is None
    assert h.scored(month(62, 21000, idle=14), V) is None
