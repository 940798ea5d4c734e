"""The attendance rules alone: which days a period runs, its window, a student's status."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from campuscard.access.rules import HOLIDAY
from campuscard.attendance import rules
from campuscard.platform.errors import ValidationFailed

TZ = ZoneInfo("Asia/Shanghai")
MORNING = rules.Period(1, "早读", 1, frozenset({1, 2, 3, 4, 5}), time(7), time(7, 40), time(8))


def test_days_the_window_and_the_status_to_the_minute() -> None:
    assert rules.applies(MORNING, 1) and not rules.applies(MORNING, 6)
    assert not rules.applies(MORNING, HOLIDAY)
    curfew = rules.Period(
        2, "晚归", 2, frozenset(range(1, 8)), time(18), time(22, 30), time(23, 59), on_holidays=True
    )
    assert rules.applies(curfew, HOLIDAY)
    win = rules.window(MORNING, date(2025, 10, 9), TZ)
    at = lambda h, m, s=0: datetime(2025, 10, 9, h, m, s, tzinfo=TZ)  # noqa: E731
    closed = at(9, 0)
    assert rules.status(win, at(7, 40, 59), on_leave=False, mark=None, now=closed) == "present"
    assert rules.status(win, at(7, 41), on_leave=False, mark=None, now=closed) == "late"
    assert rules.status(win, None, on_leave=True, mark=None, now=closed) == "leave"
    assert rules.status(win, None, on_leave=False, mark=None, now=closed) == "absent"
    assert rules.status(win, None, on_leave=False, mark=None, now=at(7, 59)) == rules.PENDING
    assert rules.status(win, at(7, 50), on_leave=True, mark="present", now=closed) == "present"


def test_bad_periods_and_months_name_the_field() -> None:
    for args, field in (
        (([], time(7), time(7, 40), time(8)), "weekdays"),
        (([8], time(7), time(7, 40), time(8)), "weekdays"),
        (([1], time(7, 50), time(7, 40), time(8)), "on_time_until"),
        (([1], time(7), time(8), time(8)), "closes_at"),
    ):
        with pytest.raises(ValidationFailed) as err:
            rules.check_period(*args)
        assert err.value.field == field
    assert rules.month_range("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    for bad in ("2026-13", "26-01", "2026-1"):
        with pytest.raises(ValidationFailed):
            rules.month_range(bad)
    with pytest.raises(ValidationFailed):
        rules.parse_time("7:00", "opens_at")
