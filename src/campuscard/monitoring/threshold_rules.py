"""What each monitoring rule's thresholds mean, pure: unit, bounds, a label and an explanation
in both languages, and the checks a school's values pass before they are stored.

Stored values are the rules' own units (fen for amounts, see ``rules.DEFAULTS``). People and
API clients give amounts in yuan ("15.00", decision 0002): ``from_input`` turns what they give
into stored values and ``shown`` turns a stored value back into what they read, so the console
page and the API speak the same units and refuse the same values with the same field names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any

from campuscard.ledger.money import Money, fmt
from campuscard.monitoring.rules import DEFAULTS, HARDSHIP_METHODS
from campuscard.platform.errors import ValidationFailed

# kinds of threshold: how it is given and stored
MONEY, WHOLE, NUMBER, CLOCK, SWITCH, CHOICE = (
    "money",
    "whole",
    "number",
    "clock",
    "switch",
    "choice",
)


@dataclass(frozen=True)
class Spec:
    """One threshold: ``low``/``high`` are in stored units (fen for money), both inclusive."""

    name: str
    kind: str
    unit: str  # what the number counts: yuan, days, minutes, payments, ... ('' for none)
    label: dict[str, str]
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()


def _s(
    name: str,
    kind: str,
    unit: str,
    zh: str,
    en: str,
    low: float = 0,
    high: float = 0,
    choices: tuple[str, ...] = (),
) -> Spec:
    return Spec(name, kind, unit, {"zh-CN": zh, "en": en}, low, high, choices)


YUAN_10K = 1_000_000  # 10,000.00 yuan in fen
SPECS: dict[str, tuple[Spec, ...]] = {
    "big_spend": (
        _s("z", NUMBER, "score", "稳健 z 分数不低于", "Robust z-score at least", 1, 50),
        _s(
            "absolute",
            MONEY,
            "yuan",
            "单笔不低于此金额即提醒（0 为不用）",
            "Alert at or above this amount (0: not used)",
            0,
            10 * YUAN_10K,
        ),
        _s(
            "min_amount",
            MONEY,
            "yuan",
            "参与比较的最低金额",
            "Smallest amount compared",
            0,
            YUAN_10K,
        ),
        _s("baseline_days", WHOLE, "days", "比较本人近几天", "Own payments of the last", 7, 90),
        _s(
            "min_baseline",
            WHOLE,
            "payments",
            "至少有几笔可比较",
            "Payments needed to compare",
            3,
            500,
        ),
    ),
    "night_spend": (
        _s("start", CLOCK, "", "深夜开始", "Night starts at"),
        _s("end", CLOCK, "", "深夜结束", "Night ends at"),
        _s("min_amount", MONEY, "yuan", "最低金额", "Smallest amount", 0, YUAN_10K),
    ),
    "no_meal": (
        # the daily pass looks back 14 days (daily.LOOKBACK_DAYS)
        _s("days", WHOLE, "days", "连续未就餐天数", "Days without a canteen meal", 1, 14),
        _s(
            "min_other_uses",
            WHOLE,
            "payments",
            "期间其他消费至少",
            "Other payments meanwhile, at least",
            0,
            200,
        ),
    ),
    "low_balance": (
        _s("below", MONEY, "yuan", "可用余额低于", "Available balance below", 1, YUAN_10K),
        _s(
            "pace_days",
            WHOLE,
            "days",
            "按近几天的速度预测",
            "Forecast at the pace of the last",
            1,
            60,
        ),
    ),
    "rapid_payments": (
        _s("count", WHOLE, "payments", "笔数不少于", "Payments, at least", 2, 100),
        _s("minutes", WHOLE, "minutes", "在几分钟内", "Within", 1, 120),
    ),
    "far_apart": (
        _s("max_speed_mps", NUMBER, "mps", "快于此速度", "Faster than", 1, 100),
        _s(
            "min_metres",
            WHOLE,
            "metres",
            "两处相距至少",
            "Places at least this far apart",
            100,
            100_000,
        ),
        _s(
            "within_minutes",
            WHOLE,
            "minutes",
            "两笔间隔不超过",
            "Payments at most this far apart",
            1,
            240,
        ),
    ),
    "arrears": (
        _s(
            "min_overdue",
            MONEY,
            "yuan",
            "逾期金额不低于",
            "Overdue amount at least",
            1,
            100 * YUAN_10K,
        ),
    ),
    "offline_overdraft": (
        _s(
            "min_shortfall",
            MONEY,
            "yuan",
            "超出余额不低于",
            "Beyond the balance by at least",
            1,
            YUAN_10K,
        ),
    ),
    "delivery": (
        _s(
            "weekly_budget",
            WHOLE,
            "alerts",
            "每人每 7 天最多发送",
            "Sent per student per 7 days, at most",
            0,
            50,
        ),
        _s(
            "cooldown_hours",
            WHOLE,
            "hours",
            "同一规则再次发送的间隔",
            "Same rule again only after",
            0,
            720,
        ),
        _s("quiet_start", CLOCK, "", "免打扰开始", "Quiet hours start"),
        _s("quiet_end", CLOCK, "", "免打扰结束", "Quiet hours end"),
        _s(
            "guardian_consent",
            SWITCH,
            "",
            "家长须经学生本人同意才收到提醒",
            "Parents hear only with the student's consent",
        ),
    ),
    "hardship": (
        _s("preset", CHOICE, "", "方法", "Method", choices=HARDSHIP_METHODS),
        _s(
            "njust_meals",
            WHOLE,
            "meals",
            "南理工：每月就餐至少",
            "njust: meals a month, at least",
            1,
            200,
        ),
        _s(
            "njust_spend_below",
            MONEY,
            "yuan",
            "南理工：每月食堂消费低于",
            "njust: canteen spend a month below",
            1,
            YUAN_10K,
        ),
        _s("njust_amount", MONEY, "yuan", "南理工：建议资助", "njust: suggested help", 1, YUAN_10K),
        _s(
            "xidian_meals",
            WHOLE,
            "meals",
            "西电：每月就餐至少",
            "xidian: meals a month, at least",
            1,
            200,
        ),
        _s(
            "xidian_daily_below",
            MONEY,
            "yuan",
            "西电：日均消费低于",
            "xidian: average a day below",
            1,
            100_000,
        ),
        _s(
            "xidian_daily_amount", MONEY, "yuan", "西电：每天资助", "xidian: help a day", 1, 100_000
        ),
        _s(
            "score_threshold",
            NUMBER,
            "score",
            "评分模型：分数不低于",
            "Scored model: score at least",
            0.05,
            1,
        ),
        _s(
            "score_min_meals",
            WHOLE,
            "meals",
            "评分模型：每月就餐至少",
            "Scored model: meals a month, at least",
            0,
            200,
        ),
        _s(
            "score_amount",
            MONEY,
            "yuan",
            "评分模型：建议资助",
            "Scored model: suggested help",
            1,
            YUAN_10K,
        ),
        _s(
            "inactive_days",
            WHOLE,
            "days",
            "校园卡闲置超过则排除",
            "Card unused longer than this: excluded",
            1,
            90,
        ),
        _s("min_group", WHOLE, "students", "报表中每组至少", "Report groups of at least", 2, 1000),
    ),
}

# What each rule is for, as the console and the API explain it.
EXPLAIN: dict[str, dict[str, str]] = {
    "big_spend": {
        "zh-CN": "单笔消费远高于学生本人近期的常见金额（稳健 z 分数），或超过学校设定的金额。",
        "en": "One payment far above the student's own usual amount (a robust z-score), or "
        "above an amount the school sets.",
    },
    "night_spend": {
        "zh-CN": "深夜时段的消费，每晚最多一条。",
        "en": "A payment in the night hours; at most one alert a night.",
    },
    "no_meal": {
        "zh-CN": "连续多日没有食堂就餐，而校园卡在别处仍有使用（放在抽屉里的卡不提醒）；"
        "每日检查一次。",
        "en": "No canteen meal for days while the card is still used elsewhere (a card left "
        "in a drawer does not alert); checked once a day.",
    },
    "low_balance": {
        "zh-CN": "可用余额低于设定值，并按近期消费速度估计还能用几天；每次余额下降只提醒一次。",
        "en": "The available balance falls below the amount, with the days it lasts at the "
        "recent pace; once per fall.",
    },
    "rapid_payments": {
        "zh-CN": "几分钟内连续多笔消费。",
        "en": "Many payments within a few minutes.",
    },
    "far_apart": {
        "zh-CN": "两笔消费的地点相距太远、间隔太短，卡片可能不在本人手中。",
        "en": "Two payments too far apart for the time between them: the card may be in "
        "someone else's hands.",
    },
    "arrears": {
        "zh-CN": "学费等账单逾期未缴（由账单模块报告）。",
        "en": "Bills overdue (reported by the bills office).",
    },
    "offline_overdraft": {
        "zh-CN": "离线设备上的消费超出了卡内余额。",
        "en": "A payment on an offline device went beyond the card's balance.",
    },
    "delivery": {
        "zh-CN": "提醒如何发送：每周上限、同一规则的间隔、全校免打扰时段、家长是否须经学生同意。",
        "en": "How alerts are sent: the weekly budget, the pause before the same rule again, "
        "the school's quiet hours, whether parents need the student's consent.",
    },
    "hardship": {
        "zh-CN": "按月发现可能有隐性困难的学生，供两人审核后悄悄资助；从不自动发放。",
        "en": "Finds students who may be in hidden hardship each month, for two people to "
        "review and quietly help; never paid automatically.",
    },
}


def specs(rule: str) -> tuple[Spec, ...]:
    if rule not in SPECS:
        raise ValidationFailed(f"unknown rule {rule!r}", field="rule")
    return SPECS[rule]


def _spec(rule: str, name: str) -> Spec:
    for spec in specs(rule):
        if spec.name == name:
            return spec
    raise ValidationFailed(f"{rule} has no threshold {name!r}", field=f"thresholds.{name}")


def shown(spec: Spec, value: Any) -> Any:
    """A stored value as people and API clients read it: amounts in yuan ("15.00")."""
    return fmt(int(value)) if spec.kind == MONEY else value


def _bounds(spec: Spec) -> str:
    if spec.kind == MONEY:
        return f"between {fmt(int(spec.low))} and {fmt(int(spec.high))} yuan"
    low = int(spec.low) if spec.kind == WHOLE else spec.low
    high = int(spec.high) if spec.kind == WHOLE else spec.high
    return f"between {low} and {high}" + (f" {spec.unit}" if spec.unit else "")


def _in_range(spec: Spec, value: float, where: str) -> None:
    if not spec.low <= value <= spec.high:
        raise ValidationFailed(f"must be {_bounds(spec)}", field=where)


def check(rule: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate stored-unit values for ``rule``: known names, the right type, within bounds."""
    specs(rule)  # an unknown rule is refused even with no values
    out: dict[str, Any] = {}
    for name, value in values.items():
        spec = _spec(rule, name)
        where = f"thresholds.{name}"
        if spec.kind == SWITCH:
            if not isinstance(value, bool):
                raise ValidationFailed("must be true or false", field=where)
        elif spec.kind in (MONEY, WHOLE):
            if isinstance(value, bool) or not isinstance(value, int):
                what = "a whole number of fen" if spec.kind == MONEY else "a whole number"
                raise ValidationFailed(f"must be {what}", field=where)
            _in_range(spec, value, where)
        elif spec.kind == NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationFailed("must be a number", field=where)
            if value != value:  # NaN
                raise ValidationFailed("must be a number", field=where)
            _in_range(spec, float(value), where)
            value = float(value)
        elif spec.kind == CLOCK:
            value = _clock(value, where)
        elif value not in spec.choices:
            raise ValidationFailed(f"must be one of {', '.join(spec.choices)}", field=where)
        out[name] = value
    return out


def _clock(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise ValidationFailed("must be a time like 22:30", field=where)
    try:
        return time.fromisoformat(value).strftime("%H:%M")
    except ValueError:
        raise ValidationFailed("must be a time like 22:30", field=where) from None


def _from_text(spec: Spec, raw: object, where: str) -> Any:
    """One value as a person or a client gives it (form text or JSON), in stored units."""
    if spec.kind == MONEY:
        if isinstance(raw, str):
            raw = raw.strip()
        return Money.parse(raw, field=where, allow_zero=True).fen
    if spec.kind == SWITCH:
        if isinstance(raw, bool):
            return raw
        if raw in ("true", "on", "1"):
            return True
        if raw in ("false", "off", "0", ""):
            return False
        raise ValidationFailed("must be true or false", field=where)
    if isinstance(raw, str) and spec.kind in (WHOLE, NUMBER):
        text = raw.strip()
        try:
            return int(text) if spec.kind == WHOLE else float(text)
        except ValueError:
            what = "a whole number" if spec.kind == WHOLE else "a number such as 6.5"
            raise ValidationFailed(f"must be {what}", field=where) from None
    if isinstance(raw, str):
        return raw.strip()
    return raw


def from_input(rule: str, given: Mapping[str, object]) -> dict[str, Any]:
    """What a school gives for ``rule`` (amounts in yuan) as the overrides to store: checked,
    in stored units, and only where the value differs from the default."""
    values = {
        name: _from_text(_spec(rule, name), raw, f"thresholds.{name}")
        for name, raw in given.items()
    }
    checked = check(rule, values)
    return {k: v for k, v in checked.items() if v != DEFAULTS[rule][k]}


@dataclass(frozen=True)
class FieldChange:
    """One line of an audited change: a threshold (or ``enabled``) from one value to another,
    in the units people read."""

    name: str
    label: dict[str, str]
    unit: str
    before: Any
    after: Any


ENABLED_LABEL = {"zh-CN": "启用", "en": "Switched on"}


def describe_change(
    rule: str, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[FieldChange]:
    """What changed between two audited states ``{"enabled", "thresholds"}`` of ``rule`` (the
    thresholds are the overrides; defaults fill the rest). ``before`` None: never set."""
    old_on = bool(before and before.get("enabled"))
    new_on = bool(after.get("enabled"))
    out = []
    if old_on != new_on:
        out.append(FieldChange("enabled", ENABLED_LABEL, "", old_on, new_on))
    old = DEFAULTS[rule] | dict((before or {}).get("thresholds") or {})
    new = DEFAULTS[rule] | dict(after.get("thresholds") or {})
    for spec in SPECS.get(rule, ()):
        if old.get(spec.name) != new.get(spec.name):
            out.append(
                FieldChange(
                    spec.name,
                    spec.label,
                    spec.unit,
                    shown(spec, old[spec.name]),
                    shown(spec, new[spec.name]),
                )
            )
    return out
