"""Hidden hardship, pure: a month of one student's canteen use, the two published presets, a
transparent scored model (``SCORE_INPUTS``: inputs, weights and scales shown to the reviewer),
the exclusions, and what would change the outcome. No I/O.

- ``njust``: at least 60 canteen meals in the month and under 420 yuan spent in canteens.
- ``xidian``: at least 60 canteen meals in the month and under 8 yuan a day on average (canteen
  spending over the days of the month); the help is 6 yuan for each day of the month.

A meal is one canteen visit: canteen payments of the same day and meal time (before 10:30,
before 16:00, later) count once, so a tray paid at two windows is one meal.

A candidate's reasons and what would change the outcome are messages (``i18n.message``, keys
``hs.reason.*`` and ``hs.change.*``), worded in the reviewer's language when shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time
from typing import Any

from campuscard.platform import i18n

# why a student is left out of the candidates, named in both languages (hs.excl.<name>)
EXCLUSIONS = {name: i18n.words(f"hs.excl.{name}") for name in ("diet", "off_campus", "inactive")}


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
    reasons: list[dict[str, Any]]
    what_would_change: list[dict[str, Any]]


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
        i18n.message("hs.reason.meals", meals=m.meals, needed=meals_needed),
        i18n.message("hs.reason.spend", spent=i18n.money(m.canteen_spend), line=i18n.money(line)),
    ]
    gap_spend, gap_meals = line - m.canteen_spend, m.meals - meals_needed + 1
    change = [
        i18n.message("hs.change.spend", amount=i18n.money(gap_spend)),
        i18n.message("hs.change.meals", meals=gap_meals),
    ]
    return Candidate(m.person_id, method, amount, reasons, change)


# ---- the transparent scored model -------------------------------------------------------
@dataclass(frozen=True)
class ScoreInput:
    """One input of the scored model: its weight, and the values between which its level runs
    from 0 (no sign of hardship) to 1 (a strong sign), straight in between."""

    name: str
    weight: float
    zero_at: float  # the level is 0 at or beyond this value
    one_at: float  # the level is 1 at or beyond this value

    @property
    def label(self) -> dict[str, str]:
        """What it counts, in both languages (the catalogs' hs.input.<name>)."""
        return i18n.words(f"hs.input.{self.name}")

    @property
    def unit(self) -> dict[str, str]:
        """Its unit, in both languages (the catalogs' hs.unit.<name>)."""
        return i18n.words(f"hs.unit.{self.name}")

    def level(self, value: float) -> float:
        span = self.one_at - self.zero_at
        return min(1.0, max(0.0, (value - self.zero_at) / span))


# The weights sum to 1, so the score is between 0 and 1; a score at or above the school's
# ``score_threshold`` (0.65) makes a candidate. Shown to the reviewer as it is here.
SCORE_INPUTS = (
    ScoreInput("meals", 0.35, 20, 60),
    ScoreInput("per_meal", 0.45, 10.0, 4.0),
    ScoreInput("per_day", 0.20, 16.0, 8.0),
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


def _value(i: ScoreInput, value: float) -> dict[str, Any]:
    """An input's value as a message parameter: meals counted, yuan as money."""
    if i.name == "meals":
        return i18n.message("hs.value.meals", count=int(value))
    return i18n.money(round(value * 100))


def _what_would_change(m: Month, threshold: float, min_meals: int) -> list[dict[str, Any]]:
    """The smallest single change that brings the score under the line, found by trying: fewer
    meals at the same price a meal, or more spent a meal over the same meals."""
    out = []
    per_meal = m.canteen_spend / m.meals
    for fewer in range(1, m.meals + 1):
        left = m.meals - fewer
        fewer_month = replace(m, meals=left, canteen_spend=round(per_meal * left))
        if left < min_meals or score_of(fewer_month)[0] < threshold:
            out.append(i18n.message("hs.change.fewer_meals", meals=fewer))
            break
    for more in range(1, 2001):  # fen a meal, up to 20 yuan
        if score_of(replace(m, canteen_spend=m.canteen_spend + more * m.meals))[0] < threshold:
            out.append(i18n.message("hs.change.more_a_meal", amount=i18n.money(more)))
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
        i18n.message("hs.reason.score", score=f"{score:.2f}", threshold=f"{threshold:.2f}"),
        *(
            i18n.message(
                "hs.reason.input",
                input=i18n.message(f"hs.input.{i.name}"),
                value=_value(i, v),
                weight=f"{i.weight:.2f}",
                contribution=f"{c:.2f}",
            )
            for i, v, c in parts
        ),
    ]
    change = _what_would_change(m, threshold, int(values["score_min_meals"]))
    if not change:
        change.append(i18n.message("hs.change.several"))
    candidate = Candidate(m.person_id, "score", int(values["score_amount"]), reasons, change)
    return candidate, score
