"""Hidden hardship, pure: a month of one student's canteen use, the two published presets, a
transparent scored model (``SCORE_INPUTS``: inputs, weights and scales shown to the reviewer),
the exclusions, and what would change the outcome. No I/O.

- ``njust``: at least 60 canteen meals in the month and under 420 yuan spent in canteens.
- ``xidian``: at least 60 canteen meals in the month and under 8 yuan a day on average (canteen
  spending over the days of the month); the help is 6 yuan for each day of the month.

A meal is one canteen visit: canteen payments of the same day and meal time (before 10:30,
before 16:00, later) count once, so a tray paid at two windows is one meal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
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


# ---- the transparent scored model -------------------------------------------------------
@dataclass(frozen=True)
class ScoreInput:
    """One input of the scored model: its weight, and the values between which its level runs
    from 0 (no sign of hardship) to 1 (a strong sign), straight in between."""

    name: str
    label: dict[str, str]
    weight: float
    zero_at: float  # the level is 0 at or beyond this value
    one_at: float  # the level is 1 at or beyond this value
    unit: dict[str, str]

    def level(self, value: float) -> float:
        span = self.one_at - self.zero_at
        return min(1.0, max(0.0, (value - self.zero_at) / span))


# The weights sum to 1, so the score is between 0 and 1; a score at or above the school's
# ``score_threshold`` (0.65) makes a candidate. Shown to the reviewer as it is here.
SCORE_INPUTS = (
    ScoreInput(
        "meals",
        {"zh-CN": "本月食堂就餐次数", "en": "canteen meals this month"},
        0.35,
        20,
        60,
        {"zh-CN": "次", "en": "meals"},
    ),
    ScoreInput(
        "per_meal",
        {"zh-CN": "每餐平均消费", "en": "average spent per meal"},
        0.45,
        10.0,
        4.0,
        {"zh-CN": "元", "en": "yuan"},
    ),
    ScoreInput(
        "per_day",
        {"zh-CN": "每天平均食堂消费", "en": "average canteen spend a day"},
        0.20,
        16.0,
        8.0,
        {"zh-CN": "元", "en": "yuan"},
    ),
)


def score_values(m: Month) -> dict[str, float]:
    per_meal = m.canteen_spend / m.meals / 100 if m.meals else 0.0
    return {
        "meals": float(m.meals),
        "per_meal": round(per_meal, 2),
        "per_day": round(m.canteen_spend / max(m.days, 1) / 100, 2),
    }


def score_of(m: Month) -> tuple[float, list[tuple[ScoreInput, float, float]]]:
    """The score and, per input, (input, value, contribution = weight x level)."""
    values = score_values(m)
    parts = [(i, values[i.name], i.weight * i.level(values[i.name])) for i in SCORE_INPUTS]
    return round(sum(c for _, _, c in parts), 3), parts


def _fmt_value(i: ScoreInput, value: float, lang: str) -> str:
    text = f"{int(value)}" if i.name == "meals" else f"{value:.2f}"
    return f"{text} {i.unit[lang]}"


def _what_would_change(m: Month, threshold: float, min_meals: int) -> list[dict[str, str]]:
    """The smallest single change that brings the score under the line, found by trying: fewer
    meals at the same price a meal, or more spent a meal over the same meals."""
    out = []
    per_meal = m.canteen_spend / m.meals
    for fewer in range(1, m.meals + 1):
        left = m.meals - fewer
        fewer_month = replace(m, meals=left, canteen_spend=round(per_meal * left))
        if left < min_meals or score_of(fewer_month)[0] < threshold:
            out.append(
                {
                    "zh-CN": f"按同样的每餐金额少 {fewer} 次食堂就餐即不再列入",
                    "en": f"{fewer} fewer canteen meals at the same price a meal would end "
                    "the candidacy",
                }
            )
            break
    for more in range(1, 2001):  # fen a meal, up to 20 yuan
        if score_of(replace(m, canteen_spend=m.canteen_spend + more * m.meals))[0] < threshold:
            out.append(
                {
                    "zh-CN": f"每餐多花 {fmt(more)} 元即不再列入",
                    "en": f"{fmt(more)} yuan more a meal would end the candidacy",
                }
            )
            break
    return out


def scored(
    m: Month, values: Mapping[str, Any], excluded: Iterable[str] = ()
) -> tuple[Candidate, float] | None:
    """The scored model's verdict on one month: the candidate and its score, or None. The
    same exclusions as the presets apply; each candidate lists every input with its value,
    weight and contribution, and which single input would end the candidacy, by how much."""
    if set(excluded) & set(EXCLUSIONS):
        return None
    if m.last_use_days_ago >= int(values["inactive_days"]):
        return None
    if m.meals < max(int(values["score_min_meals"]), 1):
        return None  # seldom in the canteen: the card says nothing of how the student eats
    threshold = float(values["score_threshold"])
    score, parts = score_of(m)
    if score < threshold:
        return None
    reasons = [
        {
            "zh-CN": f"得分 {score:.2f}（不低于 {threshold:.2f}）",
            "en": f"score {score:.2f} (at least {threshold:.2f})",
        }
    ] + [
        {
            "zh-CN": f"{i.label['zh-CN']} {_fmt_value(i, v, 'zh-CN')}：权重 {i.weight:.2f}，"
            f"贡献 {c:.2f}",
            "en": f"{i.label['en']} {_fmt_value(i, v, 'en')}: weight {i.weight:.2f}, "
            f"contributes {c:.2f}",
        }
        for i, v, c in parts
    ]
    change = _what_would_change(m, threshold, int(values["score_min_meals"]))
    if not change:
        change.append(
            {
                "zh-CN": "需多项同时变化才会不再列入",
                "en": "several inputs would have to change together to end the candidacy",
            }
        )
    candidate = Candidate(m.person_id, "score", int(values["score_amount"]), reasons, change)
    return candidate, score
