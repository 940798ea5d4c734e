"""What each monitoring rule's thresholds mean, pure: unit, bounds, a label and an explanation
in both languages, and the checks a school's values pass before they are stored.

Stored values are the rules' own units (fen for amounts, see ``rules.DEFAULTS``). People and
API clients give amounts in yuan ("15.00", decision 0002): ``from_input`` turns what they give
into stored values and ``shown`` turns a stored value back into what they read, so the console
page and the API speak the same units and refuse the same values with the same field names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any

from campuscard.ledger.money import Money, fmt
from campuscard.monitoring.rules import DEFAULTS, HARDSHIP_METHODS
from campuscard.platform import i18n
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
    low: float = 0,
    high: float = 0,
    choices: tuple[str, ...] = (),
) -> Spec:
    """A threshold; its label (both languages) is the catalogs' mon.th.<rule>.<name>, set
    below once the rule is known."""
    return Spec(name, kind, unit, {}, low, high, choices)


YUAN_10K = 1_000_000  # 10,000.00 yuan in fen
SPECS: dict[str, tuple[Spec, ...]] = {
    "big_spend": (
        _s("z", NUMBER, "score", 1, 50),
        _s(
            "absolute",
            MONEY,
            "yuan",
            0,
            10 * YUAN_10K,
        ),
        _s(
            "min_amount",
            MONEY,
            "yuan",
            0,
            YUAN_10K,
        ),
        _s("baseline_days", WHOLE, "days", 7, 90),
        _s(
            "min_baseline",
            WHOLE,
            "payments",
            3,
            500,
        ),
    ),
    "night_spend": (
        _s("start", CLOCK, ""),
        _s("end", CLOCK, ""),
        _s("min_amount", MONEY, "yuan", 0, YUAN_10K),
    ),
    "no_meal": (
        # the daily pass looks back 14 days (daily.LOOKBACK_DAYS)
        _s("days", WHOLE, "days", 1, 14),
        _s(
            "min_other_uses",
            WHOLE,
            "payments",
            0,
            200,
        ),
    ),
    "low_balance": (
        _s("below", MONEY, "yuan", 1, YUAN_10K),
        _s(
            "pace_days",
            WHOLE,
            "days",
            1,
            60,
        ),
    ),
    "rapid_payments": (
        _s("count", WHOLE, "payments", 2, 100),
        _s("minutes", WHOLE, "minutes", 1, 120),
    ),
    "far_apart": (
        _s("max_speed_mps", NUMBER, "mps", 1, 100),
        _s(
            "min_metres",
            WHOLE,
            "metres",
            100,
            100_000,
        ),
        _s(
            "within_minutes",
            WHOLE,
            "minutes",
            1,
            240,
        ),
    ),
    "arrears": (
        _s(
            "min_overdue",
            MONEY,
            "yuan",
            1,
            100 * YUAN_10K,
        ),
    ),
    "offline_overdraft": (
        _s(
            "min_shortfall",
            MONEY,
            "yuan",
            1,
            YUAN_10K,
        ),
    ),
    "delivery": (
        _s(
            "weekly_budget",
            WHOLE,
            "alerts",
            0,
            50,
        ),
        _s(
            "cooldown_hours",
            WHOLE,
            "hours",
            0,
            720,
        ),
        _s("quiet_start", CLOCK, ""),
        _s("quiet_end", CLOCK, ""),
        _s(
            "guardian_consent",
            SWITCH,
            "",
        ),
    ),
    "hardship": (
        _s("preset", CHOICE, "", choices=HARDSHIP_METHODS),
        _s(
            "njust_meals",
            WHOLE,
            "meals",
            1,
            200,
        ),
        _s(
            "njust_spend_below",
            MONEY,
            "yuan",
            1,
            YUAN_10K,
        ),
        _s("njust_amount", MONEY, "yuan", 1, YUAN_10K),
        _s(
            "xidian_meals",
            WHOLE,
            "meals",
            1,
            200,
        ),
        _s(
            "xidian_daily_below",
            MONEY,
            "yuan",
            1,
            100_000,
        ),
        _s("xidian_daily_amount", MONEY, "yuan", 1, 100_000),
        _s(
            "score_threshold",
            NUMBER,
            "score",
            0.05,
            1,
        ),
        _s(
            "score_min_meals",
            WHOLE,
            "meals",
            0,
            200,
        ),
        _s(
            "score_amount",
            MONEY,
            "yuan",
            1,
            YUAN_10K,
        ),
        _s(
            "inactive_days",
            WHOLE,
            "days",
            1,
            90,
        ),
        _s("min_group", WHOLE, "students", 2, 1000),
    ),
}

# Each threshold's label, and what each rule is for, as the console and the API explain it:
# the texts are the catalogs' (mon.th.<rule>.<name>, mon.explain.<rule>), in both languages.
SPECS = {
    rule: tuple(
        dataclasses.replace(spec, label=i18n.words(f"mon.th.{rule}.{spec.name}")) for spec in specs
    )
    for rule, specs in SPECS.items()
}
EXPLAIN: dict[str, dict[str, str]] = {rule: i18n.words(f"mon.explain.{rule}") for rule in SPECS}


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


ENABLED_LABEL = i18n.words("mon.enabled")


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
