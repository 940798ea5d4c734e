"""Metered devices, the pure part: tariffs, the daily tier ladder and what a session may take.

A tariff prices a kind of device per unit (a second of shower, a pulse of water ≈ a litre, a
laundry cycle, a minute at a lab computer, a bus trip), per card kind (student, staff). Prices
climb a daily ladder: the first N units of the day cost one rate, the next another. A session
that crosses a tier boundary is split there exactly. Rates are in thousandths of a fen per unit
so a shower can cost 0.5 fen a second; money is rounded half-up once per day-to-date total, so
the sessions of a day add up to the day's exact price to the fen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campuscard.platform.errors import DomainError, ValidationFailed

UNITS = {
    "shower": "second",
    "water": "pulse",
    "laundry": "cycle",
    "computer_lab": "minute",
    "bus": "trip",
}
KINDS = tuple(UNITS)
CARD_KINDS = ("student", "staff", "temporary")
MILLI = 1000  # rates are in thousandths of a fen


@dataclass(frozen=True)
class Tier:
    upto: int | None  # units of the day where this tier ends (None: no end)
    rate: int  # thousandths of a fen per unit


@dataclass(frozen=True)
class Segment:
    tier: int  # index in the ladder
    units: int
    mfen: int  # thousandths of a fen


@dataclass(frozen=True)
class Tariff:
    kind: str
    ladders: dict[str, tuple[Tier, ...]]  # card kind -> ladder
    session_cap: int  # fen: the most one session may take (the hold)
    daily_amount_cap: int  # fen per person and day, all sessions of this kind
    daily_count_cap: int  # sessions per person and day
    min_gap_seconds: int  # between the end of one session and the start of the next
    max_session_units: int  # the device stops a session here

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    def ladder(self, card_kind: str) -> tuple[Tier, ...]:
        ladder = self.ladders.get(card_kind) or self.ladders.get("student")
        if ladder is None:
            raise DomainError(
                f"this device has no rate for {card_kind} cards",
                code="NO_RATE_FOR_CARD",
                field="card_number",
                status=403,
            )
        return ladder

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "unit": self.unit,
            "ladders": {
                k: [{"upto": t.upto, "rate": t.rate} for t in ladder]
                for k, ladder in self.ladders.items()
            },
            "session_cap": self.session_cap,
            "daily_amount_cap": self.daily_amount_cap,
            "daily_count_cap": self.daily_count_cap,
            "min_gap_seconds": self.min_gap_seconds,
            "max_session_units": self.max_session_units,
        }


def _int(data: dict[str, Any], key: str, field: str, *, low: int = 0) -> int:
    value = data.get(key)
    if type(value) is not int or value < low:
        raise ValidationFailed(f"{field} must be a whole number ≥ {low}", field=field)
    return value


def parse_tariff(data: dict[str, Any]) -> Tariff:
    """A tariff from its JSON form; a bad one names the field and the reason."""
    kind = data.get("kind")
    if kind not in UNITS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="tariff.kind")
    raw = data.get("ladders")
    if not isinstance(raw, dict) or not raw:
        raise ValidationFailed("ladders must map card kinds to tiers", field="tariff.ladders")
    ladders: dict[str, tuple[Tier, ...]] = {}
    for card_kind, tiers in raw.items():
        field = f"tariff.ladders.{card_kind}"
        if card_kind not in CARD_KINDS:
            raise ValidationFailed(f"card kind must be one of {', '.join(CARD_KINDS)}", field=field)
        if not isinstance(tiers, list) or not tiers:
            raise ValidationFailed("a ladder needs at least one tier", field=field)
        parsed: list[Tier] = []
        last = 0
        for i, t in enumerate(tiers):
            if not isinstance(t, dict):
                raise ValidationFailed("a tier is {upto, rate}", field=f"{field}[{i}]")
            rate = _int(t, "rate", f"{field}[{i}].rate")
            upto = t.get("upto")
            final = i == len(tiers) - 1
            if final and upto is not None:
                raise ValidationFailed(
                    "the last tier has no end (upto: null)", field=f"{field}[{i}].upto"
                )
            if not final:
                upto = _int(t, "upto", f"{field}[{i}].upto", low=last + 1)
                last = upto
            parsed.append(Tier(upto, rate))
        ladders[card_kind] = tuple(parsed)
    return Tariff(
        kind=kind,
        ladders=ladders,
        session_cap=_int(data, "session_cap", "tariff.session_cap", low=1),
        daily_amount_cap=_int(data, "daily_amount_cap", "tariff.daily_amount_cap", low=1),
        daily_count_cap=_int(data, "daily_count_cap", "tariff.daily_count_cap", low=1),
        min_gap_seconds=_int(data, "min_gap_seconds", "tariff.min_gap_seconds"),
        max_session_units=_int(data, "max_session_units", "tariff.max_session_units", low=1),
    )


def split(ladder: tuple[Tier, ...], used_before: int, units: int) -> list[Segment]:
    """The units of one session, split exactly at the day's tier boundaries."""
    out: list[Segment] = []
    at, left = used_before, units
    for i, tier in enumerate(ladder):
        if left <= 0:
            break
        if tier.upto is not None and at >= tier.upto:
            continue  # the day is already past this tier
        take = left if tier.upto is None else min(left, tier.upto - at)
        out.append(Segment(i, take, take * tier.rate))
        at += take
        left -= take
    return out


def day_cost_mfen(ladder: tuple[Tier, ...], units: int) -> int:
    """What the first ``units`` of a day cost, in thousandths of a fen."""
    return sum(s.mfen for s in split(ladder, 0, units))


def _round_half_up(mfen: int) -> int:
    return (mfen + MILLI // 2) // MILLI


def session_charge(ladder: tuple[Tier, ...], used_before: int, units: int) -> int:
    """The fen one session costs, given the units already used today: the day's total rounded
    with this session minus the day's total rounded before it, so a day's sessions add up."""
    return _round_half_up(day_cost_mfen(ladder, used_before + units)) - _round_half_up(
        day_cost_mfen(ladder, used_before)
    )


@dataclass(frozen=True)
class Today:
    """What a person did today on this kind of device."""

    sessions: int
    spent: int  # fen
    units: int
    last_end: datetime | None


def authorise(tariff: Tariff, today: Today, now: datetime) -> int:
    """How much a new session may hold, or the refusal: too soon, too many, too much today."""
    if today.last_end is not None:
        wait = math.ceil(tariff.min_gap_seconds - (now - today.last_end).total_seconds())
        if wait > 0:
            raise DomainError(
                f"wait {wait} s before the next session",
                code="TOO_SOON",
                field="card_number",
                status=429,
                details={"retry_after": wait},
            )
    if today.sessions >= tariff.daily_count_cap:
        raise DomainError(
            f"the daily limit of {tariff.daily_count_cap} sessions is reached",
            code="DAILY_COUNT_CAP",
            field="card_number",
            status=403,
        )
    room = tariff.daily_amount_cap - today.spent
    if room <= 0:
        raise DomainError(
            "the daily amount limit for this kind of device is reached",
            code="DAILY_AMOUNT_CAP",
            field="card_number",
            status=403,
        )
    return min(tariff.session_cap, room)
