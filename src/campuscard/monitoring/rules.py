"""The monitoring rules, pure: what each rule looks at, its thresholds, and the reason it gives
as a message (a catalog key with its figures, ``platform/i18n.py``, decision 0290) worded
when it is read, in the reader's language. No I/O: the event scan (events.py), the daily
pass (daily.py) and the synthetic campus (bench/synthetic.py) all call these same functions.

A school switches each rule on and may override any threshold (``monitoring_rules``); what is
not overridden is ``DEFAULTS``. Amounts are integer fen.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from campuscard.platform import i18n
from campuscard.platform.errors import ValidationFailed

# The rules a school can switch on, in the order the console lists them.
ALERT_RULES = (
    "big_spend",
    "night_spend",
    "no_meal",
    "low_balance",
    "rapid_payments",
    "far_apart",
    "arrears",
    "offline_overdraft",
)
# Not a rule that alerts: how alerts are delivered, and hidden-hardship detection.
SETTINGS_GROUPS = ("delivery", "hardship")

DEFAULTS: dict[str, dict[str, Any]] = {
    # one payment far above the student's own 28-day baseline (robust z-score), or above an
    # absolute amount whatever the baseline
    "big_spend": {
        "z": 6.0,
        "absolute": 50000,
        "min_amount": 5000,
        "baseline_days": 28,
        "min_baseline": 10,
    },
    # a payment in the small hours (school time)
    "night_spend": {"start": "00:30", "end": "05:00", "min_amount": 100},
    # no canteen meal for this many days while the card is used otherwise
    "no_meal": {"days": 3, "min_other_uses": 2},
    # available balance below this, with days left at the pace of the last 14 days
    "low_balance": {"below": 1500, "pace_days": 14},
    # many payments within a few minutes
    "rapid_payments": {"count": 6, "minutes": 5},
    # two payments at places too far apart for the time between them
    "far_apart": {"max_speed_mps": 7.0, "min_metres": 800, "within_minutes": 30},
    # overdue bills (fed by the bills capability)
    "arrears": {"min_overdue": 1},
    # an offline device let the card spend more than it held
    "offline_overdraft": {"min_shortfall": 1},
    "delivery": {
        "weekly_budget": 2,  # alerts a student receives per 7 days; the rest stay on the dashboard
        "cooldown_hours": 72,  # the same rule again within this is a duplicate
        "quiet_start": "22:30",  # school-wide quiet hours unless the student set their own
        "quiet_end": "07:00",
        "guardian_consent": True,  # adult students: parents hear only with the student's consent
    },
    "hardship": {
        "preset": "njust",  # 'njust', 'xidian' or 'score'
        "njust_meals": 60,
        "njust_spend_below": 42000,
        "njust_amount": 20000,
        "xidian_meals": 60,
        "xidian_daily_below": 800,
        "xidian_daily_amount": 600,
        "score_threshold": 0.65,
        "score_min_meals": 40,  # fewer canteen meals: the student eats elsewhere, no score
        "score_amount": 20000,
        "inactive_days": 14,
        "min_group": 10,
    },
}

SEVERITY = {
    "big_spend": 2,
    "night_spend": 1,
    "no_meal": 2,
    "low_balance": 1,
    "rapid_payments": 2,
    "far_apart": 3,
    "arrears": 2,
    "offline_overdraft": 2,
}


def rule_name(rule: str, locale: str) -> str:
    """A rule's name in ``locale``, from the catalogs (``notice.alert.rule.<rule>``, the same
    name an alert's title gives it)."""
    return i18n.translate(locale, f"notice.alert.rule.{rule}")


def rule_names(rule: str) -> dict[str, str]:
    """A rule's name in every language (the API's ``Words``)."""
    return {locale: rule_name(rule, locale) for locale in i18n.LOCALES}


@dataclass(frozen=True)
class Finding:
    """A rule fired: its reason (a message, ``i18n.message``) and the figures behind it."""

    rule: str
    reason: dict[str, Any]
    facts: dict[str, Any]
    key: str  # what makes two findings the same alert (with the person and the rule)

    @property
    def severity(self) -> int:
        return SEVERITY[self.rule]


@dataclass(frozen=True)
class Spend:
    """One payment as the rules see it. ``local`` is the school's wall-clock time."""

    id: int
    local: datetime
    amount: int
    channel: str
    place: tuple[int, int] | None = None
    place_name: str = ""
    ref: str = ""  # an offline sale: "offline:<device>:<sequence>" (it has no payment id)

    @property
    def tag(self) -> str:
        """What names this spend in an alert's key: the payment id, or the offline record."""
        return self.ref or str(self.id)


@dataclass(frozen=True)
class Config:
    """The rules a school switched on and their thresholds (defaults filled in)."""

    enabled: frozenset[str] = frozenset()
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def on(self, rule: str) -> bool:
        return rule in self.enabled

    def get(self, rule: str, name: str) -> Any:
        own = self.values.get(rule, {})
        return own[name] if name in own else DEFAULTS[rule][name]


def config_from_rows(rows: Sequence[Mapping[str, Any]]) -> Config:
    enabled = frozenset(r["rule"] for r in rows if r["enabled"])
    return Config(enabled=enabled, values={r["rule"]: dict(r["thresholds"]) for r in rows})


def all_on(**overrides: Mapping[str, Any]) -> Config:
    """Every rule switched on (the synthetic campus, the demo)."""
    return Config(
        enabled=frozenset(ALERT_RULES) | {"hardship"},
        values={k: dict(v) for k, v in overrides.items()},
    )


# ---- clock thresholds (validated with the others in threshold_rules.py) -----------------
def _parse_clock(value: object, field_name: str) -> time:
    if not isinstance(value, str):
        raise ValidationFailed("must be a time like 22:30", field=field_name)
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("must be a time like 22:30", field=field_name) from None


HARDSHIP_METHODS = ("njust", "xidian", "score")


# ---- the rules --------------------------------------------------------------------------
def robust_z(amount: int, baseline: Sequence[int]) -> float:
    """How far ``amount`` is above the median, in robust standard deviations (1.4826 x MAD).
    A student who always pays the same (MAD 0) is measured against a tenth of the median."""
    median = statistics.median(baseline)
    mad = statistics.median(abs(a - median) for a in baseline)
    scale = 1.4826 * mad if mad > 0 else max(median * 0.1, 100.0)
    return (amount - median) / scale


def big_spend(cfg: Config, pay: Spend, baseline: Sequence[int]) -> Finding | None:
    """``baseline``: the student's own payments over the last ``baseline_days`` (not this one)."""
    if not cfg.on("big_spend"):
        return None
    absolute = int(cfg.get("big_spend", "absolute"))
    amount = i18n.money(pay.amount)
    if absolute and pay.amount >= absolute:
        return Finding(
            "big_spend",
            i18n.message(
                "notice.alert.big_spend_absolute", amount=amount, absolute=i18n.money(absolute)
            ),
            {"amount": pay.amount, "absolute": absolute, "payment_id": pay.id},
            f"payment:{pay.tag}",
        )
    if pay.amount < int(cfg.get("big_spend", "min_amount")):
        return None
    if len(baseline) < int(cfg.get("big_spend", "min_baseline")):
        return None
    z = robust_z(pay.amount, baseline)
    if z < float(cfg.get("big_spend", "z")):
        return None
    median = int(statistics.median(baseline))
    times = pay.amount / median if median else 0.0
    days = int(cfg.get("big_spend", "baseline_days"))
    return Finding(
        "big_spend",
        i18n.message(
            "notice.alert.big_spend_usual",
            amount=amount,
            days=days,
            median=i18n.money(median),
            times=f"{times:.1f}",
        ),
        {"amount": pay.amount, "median": median, "z": round(z, 2), "payment_id": pay.id},
        f"payment:{pay.tag}",
    )


def guardian_spend(pay: Spend, amount: int) -> Finding | None:
    """A parent's own large-spend amount (told to that parent only)."""
    if pay.amount < amount:
        return None
    return Finding(
        "big_spend",
        i18n.message(
            "notice.alert.guardian_spend", amount=i18n.money(pay.amount), limit=i18n.money(amount)
        ),
        {"amount": pay.amount, "absolute": amount, "payment_id": pay.id},
        f"payment:{pay.tag}",
    )


def _in_window(clock: time, start: time, end: time) -> bool:
    return start <= clock < end if start <= end else clock >= start or clock < end


def night_spend(cfg: Config, pay: Spend) -> Finding | None:
    if not cfg.on("night_spend") or pay.amount < int(cfg.get("night_spend", "min_amount")):
        return None
    start = _parse_clock(cfg.get("night_spend", "start"), "start")
    end = _parse_clock(cfg.get("night_spend", "end"), "end")
    clock = pay.local.time()
    if not _in_window(clock, start, end):
        return None
    hm = clock.strftime("%H:%M")
    night = (pay.local - timedelta(hours=12)).date()  # one alert per night
    return Finding(
        "night_spend",
        i18n.message(
            "notice.alert.night_spend",
            time=hm,
            amount=i18n.money(pay.amount),
            start=f"{start:%H:%M}",
            end=f"{end:%H:%M}",
        ),
        {"amount": pay.amount, "time": hm, "payment_id": pay.id},
        f"night:{night.isoformat()}",
    )


def rapid_payments(cfg: Config, pay: Spend, recent: Sequence[Spend]) -> Finding | None:
    """``recent``: the student's payments up to and including ``pay``, newest last."""
    if not cfg.on("rapid_payments"):
        return None
    count = int(cfg.get("rapid_payments", "count"))
    minutes = int(cfg.get("rapid_payments", "minutes"))
    since = pay.local - timedelta(minutes=minutes)
    window = [p for p in recent if since <= p.local <= pay.local]
    if len(window) < count:
        return None
    total = sum(p.amount for p in window)
    first = window[0]
    return Finding(
        "rapid_payments",
        i18n.message(
            "notice.alert.rapid_payments",
            minutes=minutes,
            count=len(window),
            total=i18n.money(total),
        ),
        {"count": len(window), "total": total, "payment_ids": [p.id for p in window]},
        f"burst:{first.tag}",
    )


def far_apart(cfg: Config, pay: Spend, previous: Spend | None) -> Finding | None:
    """``previous``: the student's last payment before ``pay`` at a place with a position."""
    if not cfg.on("far_apart") or previous is None or pay.place is None:
        return None
    if previous.place is None:
        return None
    within = timedelta(minutes=int(cfg.get("far_apart", "within_minutes")))
    gap = pay.local - previous.local
    if gap > within or gap < timedelta(0):
        return None
    dx, dy = pay.place[0] - previous.place[0], pay.place[1] - previous.place[1]
    metres = int((dx * dx + dy * dy) ** 0.5)
    if metres < int(cfg.get("far_apart", "min_metres")):
        return None
    seconds = max(gap.total_seconds(), 1.0)
    if metres / seconds <= float(cfg.get("far_apart", "max_speed_mps")):
        return None
    minutes = max(1, round(seconds / 60))
    a, b = previous.place_name or "?", pay.place_name or "?"
    return Finding(
        "far_apart",
        i18n.message("notice.alert.far_apart", minutes=minutes, metres=metres, a=a, b=b),
        {"metres": metres, "seconds": int(seconds), "payment_ids": [previous.id, pay.id]},
        f"pair:{previous.tag}:{pay.tag}",
    )


def low_balance(
    cfg: Config, *, available: int, spent_recent: int, episode: int, threshold: int | None = None
) -> Finding | None:
    """``spent_recent``: spending over the last ``pace_days``; ``episode``: the id of the last
    money that came in, so one fall below the threshold alerts once."""
    if not cfg.on("low_balance") and threshold is None:
        return None
    below = threshold if threshold is not None else int(cfg.get("low_balance", "below"))
    if available >= below:
        return None
    pace_days = int(cfg.get("low_balance", "pace_days"))
    per_day = spent_recent / pace_days
    days_left = int(available // per_day) if per_day > 0 else None
    left: dict[str, Any] | str
    if days_left is None:
        left = ""
    elif days_left == 0:
        left = i18n.message("notice.alert.low_balance_today")
    else:
        left = i18n.message("notice.alert.low_balance_days", pace_days=pace_days, days=days_left)
    return Finding(
        "low_balance",
        i18n.message(
            "notice.alert.low_balance",
            available=i18n.money(available),
            below=i18n.money(below),
            left=left,
        ),
        {"available": available, "below": below, "days_left": days_left},
        f"episode:{episode}:{below}",
    )


def no_meal(
    cfg: Config, *, today: date, last_meal: date | None, other_uses: int, since: date
) -> Finding | None:
    """``last_meal``: the last business date with a canteen payment (None: none since
    ``since``); ``other_uses``: other payments since then, showing the card is in use."""
    if not cfg.on("no_meal"):
        return None
    days = int(cfg.get("no_meal", "days"))
    start = last_meal or since
    gap = (today - start).days
    if gap < days or other_uses < int(cfg.get("no_meal", "min_other_uses")):
        return None
    if last_meal is None:
        reason = i18n.message("notice.alert.no_meal_recent", days=gap, uses=other_uses)
    else:
        reason = i18n.message(
            "notice.alert.no_meal_since", days=gap, since=i18n.day(last_meal), uses=other_uses
        )
    return Finding(
        "no_meal",
        reason,
        {
            "days": gap,
            "last_meal": last_meal.isoformat() if last_meal else None,
            "other_uses": other_uses,
        },
        f"since:{last_meal.isoformat() if last_meal else 'none'}",
    )


def arrears(
    cfg: Config, *, overdue_amount: int, oldest_due_date: date, reason: str, today: date
) -> Finding | None:
    if not cfg.on("arrears") or overdue_amount < int(cfg.get("arrears", "min_overdue")):
        return None
    days = max((today - oldest_due_date).days, 0)
    # what is overdue, as the bills office named it (stored data), else "bills"
    what: dict[str, Any] | str = reason.strip()[:80] or i18n.message("notice.alert.bills")
    return Finding(
        "arrears",
        i18n.message(
            "notice.alert.arrears",
            what=what,
            amount=i18n.money(overdue_amount),
            days=days,
            due=i18n.day(oldest_due_date),
        ),
        {
            "overdue": overdue_amount,
            "oldest_due_date": oldest_due_date.isoformat(),
            "days": days,
            "reason": reason[:200],
        },
        f"arrears:{oldest_due_date.isoformat()}:{overdue_amount}",
    )


def offline_overdraft(
    cfg: Config, *, shortfall: int, amount: int, device: str, at: datetime, ref: str
) -> Finding | None:
    if not cfg.on("offline_overdraft"):
        return None
    if shortfall < int(cfg.get("offline_overdraft", "min_shortfall")):
        return None
    hm = at.strftime("%m-%d %H:%M")
    return Finding(
        "offline_overdraft",
        i18n.message(
            "notice.alert.offline_overdraft",
            at=hm,
            device=device,
            amount=i18n.money(amount),
            shortfall=i18n.money(shortfall),
        ),
        {"shortfall": shortfall, "amount": amount, "device": device, "ref": ref},
        f"offline:{ref}",
    )


# ---- delivery and tiers -----------------------------------------------------------------
def quiet_now(local: datetime, start: time | None, end: time | None) -> bool:
    return start is not None and end is not None and _in_window(local.time(), start, end)


def quiet_until(local: datetime, end: time) -> datetime:
    """The next time ``end`` comes round (school time), for SMS held through quiet hours."""
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    return candidate if candidate > local else candidate + timedelta(days=1)


def clock(value: object) -> time:
    return _parse_clock(value, "time")


TIERS = ("none", "low", "medium", "high")


def risk_tier(severities: Sequence[int]) -> str:
    """The tier a counsellor sees, from the severities of the last 30 days' alerts."""
    points = sum(severities)
    if points == 0:
        return "none"
    if points <= 3:
        return "low"
    if points <= 7:
        return "medium"
    return "high"
