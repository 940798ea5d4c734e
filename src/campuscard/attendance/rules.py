"""Attendance rules, pure: when a period applies, its window in school-local time, and what
one student's period comes to from the first sign-in, an approved leave and the teacher's own
mark."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from campuscard.access.rules import HOLIDAY
from campuscard.platform.errors import ValidationFailed

STATUSES = ("present", "late", "absent", "leave")
# a period not closed yet with nobody's sign-in so far: not absent (yet)
PENDING = "pending"
POINT_KINDS = ("classroom", "dorm", "gate", "lab")
LEAVE_KINDS = ("sick", "personal", "other")
MAX_LEAVE_DAYS = 60
LEAVE_PAST_DAYS = 31  # a leave recorded after the fact reaches back at most this far

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_time(text: str, field: str) -> time:
    m = _HHMM.match(text)
    if not m:
        raise ValidationFailed(f"{field} is a local time HH:MM, e.g. 07:50", field=field)
    return time(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class Period:
    """One attendance rule: a class signs in at a point on some weekdays."""

    id: int
    name: str
    point_id: int
    weekdays: frozenset[int]
    opens_at: time
    on_time_until: time
    closes_at: time
    direction: str | None = None
    on_holidays: bool = False
    notify_guardians: bool = False


def check_period(weekdays: list[int], opens_at: time, on_time_until: time, closes_at: time) -> None:
    if not weekdays or any(not 1 <= d <= 7 for d in weekdays):
        raise ValidationFailed(
            "weekdays are 1 (Monday) to 7 (Sunday), at least one", field="weekdays"
        )
    if opens_at > on_time_until:
        raise ValidationFailed("on_time_until is not before opens_at", field="on_time_until")
    if on_time_until >= closes_at:
        raise ValidationFailed(
            "closes_at is after on_time_until (a period does not run past midnight)",
            field="closes_at",
        )


def applies(period: Period, day_kind: int) -> bool:
    """Does the period run on a day of this kind? A public holiday or a school closure
    (HOLIDAY) only for a period that says so (a dormitory curfew); a 调休 make-up workday runs
    as the weekday it stands for."""
    if day_kind == HOLIDAY:
        return period.on_holidays
    return day_kind in period.weekdays


@dataclass(frozen=True)
class Window:
    opens: datetime
    on_time: datetime  # a first sign-in before this is on time
    closes: datetime


def window(period: Period, day: date, tz: ZoneInfo) -> Window:
    """The period on ``day`` as aware times; the on-time bound takes the whole minute."""

    def at(t: time) -> datetime:
        return datetime.combine(day, t, tzinfo=tz)

    return Window(
        at(period.opens_at), at(period.on_time_until) + timedelta(minutes=1), at(period.closes_at)
    )


def status(
    win: Window,
    first_sign_in: datetime | None,
    *,
    on_leave: bool,
    mark: str | None,
    now: datetime,
) -> str:
    """The teacher's mark wins; then the card: on time or late; then an approved leave; and
    nobody by the closing time is absent. Before closing, no sign-in is still pending."""
    if mark is not None:
        return mark
    if first_sign_in is not None:
        return "present" if first_sign_in < win.on_time else "late"
    if on_leave:
        return "leave"
    return "absent" if now >= win.closes else PENDING


def month_range(month: str) -> tuple[date, date]:
    """'2026-11' -> (first day, first day of the next month)."""
    m = re.match(r"^(\d{4})-(0[1-9]|1[0-2])$", month)
    if not m:
        raise ValidationFailed("month is YYYY-MM", field="month")
    first = date(int(m.group(1)), int(m.group(2)), 1)
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, after
