"""Access rules, pure: schedules, the calendar, list hashes and a door controller's decision.

The server uses them to check input and build lists; the door-reader simulator uses the very
same functions to decide offline, so what the documentation says a reader does is what runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar

from campuscard.platform.errors import ValidationFailed

MAX_INTERVALS_PER_DAY = 6
HOLIDAY = 0  # a day that runs on the schedule's holiday intervals; 1-7 run as that weekday
# a make-up workday (调休) the public calendar names runs as this weekday unless the school
# says otherwise (access_calendar_days)
MAKEUP_WEEKDAY = 1
HASH_MOD = 2**64
# days of calendar a list carries, from the refresh's day (readers decide offline on them)
HORIZON_DAYS = 62

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")

DENY_REASONS = (
    "not_on_list",  # no grant for this card at this door (unknown, lost or replaced card)
    "not_yet_valid",  # its grants start later
    "expired",  # its grants ended
    "outside_schedule",  # valid, but not at this hour or on this kind of day
    "antipassback",  # hard anti-passback: the same direction twice
)


# Schedules ---------------------------------------------------------------------------------


def _minutes(text: str, where: str) -> int:
    if not isinstance(text, str) or _HHMM.fullmatch(text) is None:
        raise ValidationFailed(f"{where}: times are HH:MM (00:00-24:00)", field=where)
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def parse_intervals(raw: Any, where: str) -> list[tuple[int, int]]:
    """[["07:00", "22:30"], ["22:00", "06:00"]] -> minute pairs; an end not after its start
    runs past midnight. Refuses bad shapes, naming the day."""
    if not isinstance(raw, list):
        raise ValidationFailed(f"{where}: a list of [start, end] pairs", field=where)
    if len(raw) > MAX_INTERVALS_PER_DAY:
        raise ValidationFailed(
            f"{where}: at most {MAX_INTERVALS_PER_DAY} intervals a day", field=where
        )
    out: list[tuple[int, int]] = []
    for pair in raw:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValidationFailed(f"{where}: each interval is [start, end]", field=where)
        start, end = _minutes(pair[0], where), _minutes(pair[1], where)
        if start == 1440:
            raise ValidationFailed(f"{where}: an interval cannot start at 24:00", field=where)
        if start == end:
            raise ValidationFailed(f"{where}: an interval needs a length", field=where)
        out.append((start, end))
    return out


@dataclass(frozen=True)
class Schedule:
    week: dict[int, list[tuple[int, int]]]
    holiday: list[tuple[int, int]]

    def intervals(self, day_kind: int) -> list[tuple[int, int]]:
        return self.holiday if day_kind == HOLIDAY else self.week.get(day_kind, [])


def parse_schedule(week: Any, holiday: Any) -> Schedule:
    if not isinstance(week, Mapping):
        raise ValidationFailed("week: an object from weekday 1 (Monday) to 7", field="week")
    days: dict[int, list[tuple[int, int]]] = {}
    for key, value in week.items():
        if str(key) not in {"1", "2", "3", "4", "5", "6", "7"}:
            raise ValidationFailed("week: keys are weekdays 1 (Monday) to 7", field="week")
        days[int(key)] = parse_intervals(value, f"week.{key}")
    return Schedule(days, parse_intervals(holiday, "holiday"))


def schedule_wire(schedule: Schedule) -> dict[str, Any]:
    """The schedule as readers get it: minutes of the day, [start, end] with end ≤ start
    meaning past midnight."""
    return {
        "week": {str(d): [list(iv) for iv in ivs] for d, ivs in sorted(schedule.week.items())},
        "holiday": [list(iv) for iv in schedule.holiday],
    }


def schedule_from_wire(raw: Mapping[str, Any]) -> Schedule:
    return Schedule(
        {int(d): [(int(a), int(b)) for a, b in ivs] for d, ivs in raw["week"].items()},
        [(int(a), int(b)) for a, b in raw["holiday"]],
    )


def is_open(schedule: Schedule, today_kind: int, yesterday_kind: int, minute: int) -> bool:
    """Open at ``minute`` of a day of kind ``today_kind``? An interval running past midnight
    belongs to the day it starts on: Friday 22:00-06:00 opens Saturday until 06:00 even when
    Saturday has no intervals of its own."""
    for start, end in schedule.intervals(today_kind):
        if start < end and start <= minute < end:
            return True
        if end <= start and minute >= start:
            return True
    return any(end <= start and minute < end for start, end in schedule.intervals(yesterday_kind))


# The calendar ------------------------------------------------------------------------------


def public_day(day: date) -> int | None:
    """What China's public calendar makes of ``day``: HOLIDAY for a public holiday, the
    make-up weekday for a 调休 workday, None for an ordinary day (or a year the package does
    not know yet: then only the school's own days apply)."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return None
    if name is None:
        return None  # an ordinary weekday or weekend
    return HOLIDAY if on_holiday else MAKEUP_WEEKDAY


def public_calendar_ends() -> date:
    """The last day of the last year the installed public calendar knows; after it only the
    school's own days change how a day runs (a newer package release adds the next year)."""
    last = max(chinese_calendar.constants.holidays)
    return date(last.year, 12, 31)


_HOLIDAY_KEYS = {h.value: h.name for h in chinese_calendar.constants.Holiday}


@dataclass(frozen=True)
class PublicDay:
    day: date
    kind: int  # HOLIDAY, or the weekday a make-up workday runs as
    holiday: str  # the holiday's key (national_day, spring_festival…), "" if not named


def public_days(start: date, days: int) -> list[PublicDay]:
    """The days of [start, start + days) the public calendar makes run otherwise than as their
    own weekday: named holidays (weekends included: they run on holiday intervals) and 调休
    make-up workdays — what ``public_day`` says, with the holiday's name."""
    out = []
    for i in range(days):
        d = start + timedelta(days=i)
        kind = public_day(d)
        if kind is None or kind == d.isoweekday():
            continue
        _, name = chinese_calendar.get_holiday_detail(d)
        out.append(PublicDay(d, kind, _HOLIDAY_KEYS.get(str(name), "")))
    return out


def day_kinds(start: date, days: int, school_days: Mapping[date, int]) -> dict[str, int]:
    """The days of [start, start + days) that do not run as their own weekday: the school's
    own days first, then the public calendar. Keys are ISO dates."""
    out: dict[str, int] = {}
    for i in range(days):
        d = start + timedelta(days=i)
        kind = school_days.get(d, public_day(d))
        if kind is not None and kind != d.isoweekday():
            out[d.isoformat()] = kind
    return out


def kind_of(day: date, exceptions: Mapping[str, int]) -> int:
    return exceptions.get(day.isoformat(), day.isoweekday())


# Lists -------------------------------------------------------------------------------------


def epoch_minutes(at: datetime | None) -> int:
    """0 means unbounded."""
    return 0 if at is None else int(at.timestamp()) // 60


def entry_hash(
    group_id: int, card_number: str, schedule_id: int, from_min: int, until_min: int
) -> int:
    text = f"{group_id}|{schedule_id}|{from_min}|{until_min}|{card_number}"
    return int(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:16], 16)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(entries_hash: int, config: Mapping[str, Any]) -> str:
    """What a reader's list is, in one value: its entries (a sum of entry hashes, so the server
    keeps it per group without reading them) and its configuration."""
    return hashlib.sha256(
        f"{entries_hash % HASH_MOD:016x}\n".encode() + canonical(config)
    ).hexdigest()


Entry = tuple[int, int, int, int]  # group, schedule, from_min, until_min


def grouped(rows: Iterable[tuple[int, int, int, int, str]]) -> list[list[Any]]:
    """(group, schedule, from, until, card) rows, sorted -> [[group, schedule, from, until,
    [cards…]], …]: each card number is written once per group and window (the 1 MB bound)."""
    out: list[list[Any]] = []
    last: tuple[int, int, int, int] | None = None
    for g, s, f, u, number in rows:
        key = (g, s, f, u)
        if key != last:
            out.append([g, s, f, u, []])
            last = key
        out[-1][4].append(number)
    return out


# The reader --------------------------------------------------------------------------------


@dataclass
class ReaderList:
    """What a door controller holds: its version, content hash, configuration and entries."""

    version: int = 0
    content_hash: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, set[tuple[int, int, int, int]]] = field(default_factory=dict)

    def apply(self, body: Mapping[str, Any]) -> None:
        """A snapshot replaces everything; a delta adds and removes entries."""
        if body["mode"] == "current":
            return
        if body["mode"] == "snapshot":
            self.entries = {}
            for g, s, f, u, cards in body["entries"]:
                for number in cards:
                    self.entries.setdefault(number, set()).add((g, s, f, u))
        else:
            for g, s, f, u, cards in body["remove"]:
                for number in cards:
                    held = self.entries.get(number)
                    if held is not None:
                        held.discard((g, s, f, u))
                        if not held:
                            del self.entries[number]
            for g, s, f, u, cards in body["add"]:
                for number in cards:
                    self.entries.setdefault(number, set()).add((g, s, f, u))
        self.config = dict(body["config"])
        self.version = int(body["version"])
        self.content_hash = str(body["content_hash"])

    def computed_hash(self) -> str:
        total = sum(
            entry_hash(g, number, s, f, u)
            for number, held in self.entries.items()
            for g, s, f, u in held
        )
        return content_hash(total, self.config)


@dataclass(frozen=True)
class Decision:
    granted: bool
    reason: str = ""  # why it was denied (DENY_REASONS)
    flag: str = ""  # "antipassback" when soft anti-passback let a second pass through


@dataclass
class Passage:
    direction: str
    at: float  # unix seconds


def last_reset(now: datetime, tz: ZoneInfo, reset_hour: int) -> datetime:
    local = now.astimezone(tz)
    reset = local.replace(hour=reset_hour, minute=0, second=0, microsecond=0)
    if reset > local:
        reset -= timedelta(days=1)
    return reset


def decide(
    held: ReaderList,
    card_number: str,
    direction: str,
    now: datetime,
    passages: dict[str, Passage],
) -> Decision:
    """A door controller's decision, offline, from its list alone; ``passages`` is its own
    memory of who went which way (anti-passback), updated when it lets someone through."""
    config = held.config
    tz = ZoneInfo(config["timezone"])
    local = now.astimezone(tz)
    today = local.date()
    exceptions: dict[str, int] = config.get("days", {})
    today_kind = kind_of(today, exceptions)
    yesterday_kind = kind_of(today - timedelta(days=1), exceptions)
    minute = local.hour * 60 + local.minute
    now_min = int(now.timestamp()) // 60
    entries = held.entries.get(card_number)
    if not entries:
        return Decision(False, "not_on_list")
    reason = ""
    for _group, schedule_id, from_min, until_min in sorted(entries):
        if from_min and now_min < from_min:
            reason = reason or "not_yet_valid"
            continue
        if until_min and now_min >= until_min:
            reason = "expired" if reason in ("", "not_yet_valid") else reason
            continue
        raw = config["schedules"].get(str(schedule_id))
        if raw is None or not is_open(schedule_from_wire(raw), today_kind, yesterday_kind, minute):
            reason = "outside_schedule"
            continue
        break
    else:
        return Decision(False, reason or "not_on_list")
    door = config["door"]
    zone = door.get("zone")
    flag = ""
    if zone and zone["antipassback"] != "off":
        last = passages.get(card_number)
        reset = last_reset(now, tz, int(zone["reset_hour"])).timestamp()
        window = int(door["apb_seconds"])
        if (
            last is not None
            and last.direction == direction
            and last.at >= reset
            and (window == 0 or now.timestamp() - last.at < window)
        ):
            if zone["antipassback"] == "hard":
                return Decision(False, "antipassback")
            flag = "antipassback"
    passages[card_number] = Passage(direction, now.timestamp())
    return Decision(True, "", flag)


def utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a naive datetime")
    return at.astimezone(UTC)
