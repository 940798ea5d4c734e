"""Door decisions from a list alone: schedules across midnight, public holidays and 调休
make-up workdays, the school's own days, validity windows, hard and soft anti-passback."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from campuscard.access import rules
from campuscard.platform.errors import ValidationFailed

TZ = ZoneInfo("Asia/Shanghai")
# weekdays 07:00-23:00; Friday and Saturday nights 22:00-02:00; holidays 09:00-17:00
DORM = rules.parse_schedule(
    {
        "1": [["07:00", "23:00"]],
        "2": [["07:00", "23:00"]],
        "3": [["07:00", "23:00"]],
        "4": [["07:00", "23:00"]],
        "5": [["07:00", "12:00"], ["22:00", "02:00"]],
        "6": [["22:00", "02:00"]],
        "7": [],
    },
    [["09:00", "17:00"]],
)


def held(
    schedule: rules.Schedule = DORM,
    *,
    days: dict[str, int] | None = None,
    zone: dict[str, object] | None = None,
    apb_seconds: int = 0,
    window: tuple[int, int] = (0, 0),
) -> rules.ReaderList:
    config = {
        "timezone": "Asia/Shanghai",
        "days": days or {},
        "schedules": {"1": rules.schedule_wire(schedule)},
        "door": {"id": 1, "zone": zone, "apb_seconds": apb_seconds},
    }
    return rules.ReaderList(1, "", config, {"880001": {(1, 1, *window)}})


def at(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


def ok(lst: rules.ReaderList, when: datetime, direction: str = "in") -> rules.Decision:
    return rules.decide(lst, "880001", direction, when, {})


def test_an_interval_across_midnight_opens_the_next_morning() -> None:
    lst = held()
    # Friday 2026-11-27 23:30 and Saturday 01:59 belong to Friday's 22:00-02:00
    assert ok(lst, at(2026, 11, 27, 23, 30)).granted
    assert ok(lst, at(2026, 11, 28, 1, 59)).granted
    assert ok(lst, at(2026, 11, 28, 2, 0)).reason == "outside_schedule"
    # Saturday's own night runs into Sunday, which has no intervals of its own
    assert ok(lst, at(2026, 11, 29, 1, 0)).granted
    assert not ok(lst, at(2026, 11, 29, 12, 0)).granted
    # Thursday 23:00 is closed: 07:00-23:00 does not cross midnight
    assert ok(lst, at(2026, 11, 26, 23, 0)).reason == "outside_schedule"


def test_a_public_holiday_runs_on_holiday_intervals() -> None:
    # 2025-10-01 (a Wednesday) is National Day
    assert rules.public_day(date(2025, 10, 1)) == rules.HOLIDAY
    days = rules.day_kinds(date(2025, 9, 30), 3, {})
    assert days["2025-10-01"] == rules.HOLIDAY
    lst = held(days=days)
    assert ok(lst, at(2025, 10, 1, 10)).granted  # 09:00-17:00
    assert ok(lst, at(2025, 10, 1, 8)).reason == "outside_schedule"  # a Wednesday would open
    assert ok(lst, at(2025, 10, 1, 20)).reason == "outside_schedule"


def test_a_tiaoxiu_makeup_workday_runs_as_a_weekday() -> None:
    # Sunday 2025-09-28 is a make-up workday for the National Day holiday
    assert date(2025, 9, 28).isoweekday() == 7
    assert rules.public_day(date(2025, 9, 28)) == rules.MAKEUP_WEEKDAY
    days = rules.day_kinds(date(2025, 9, 27), 3, {})
    lst = held(days=days)
    assert ok(lst, at(2025, 9, 28, 8)).granted  # runs as a Monday, 07:00-23:00
    # an ordinary Sunday is closed all day
    assert ok(held(), at(2025, 9, 21, 8)).reason == "outside_schedule"


def test_the_schools_own_days_come_before_the_public_calendar() -> None:
    # an exam Sunday run as a Friday; a term break on a weekday
    own = {date(2025, 9, 28): 5, date(2025, 11, 12): rules.HOLIDAY}
    days = rules.day_kinds(date(2025, 9, 27), 60, own)
    assert days["2025-09-28"] == 5
    assert days["2025-11-12"] == rules.HOLIDAY
    lst = held(days=days)
    assert ok(lst, at(2025, 9, 28, 13)).reason == "outside_schedule"  # Friday: 07:00-12:00
    assert ok(lst, at(2025, 11, 12, 8)).reason == "outside_schedule"
    assert ok(lst, at(2025, 11, 12, 10)).granted


def test_a_year_the_package_does_not_know_falls_back_to_weekdays() -> None:
    assert rules.public_day(date(2099, 10, 1)) is None
    assert rules.day_kinds(date(2099, 10, 1), 7, {}) == {}


def test_validity_window_to_the_minute() -> None:
    start = at(2026, 11, 23, 9)  # a Monday
    end = start + timedelta(hours=2)
    lst = held(window=(rules.epoch_minutes(start), rules.epoch_minutes(end)))
    assert ok(lst, start - timedelta(minutes=1)).reason == "not_yet_valid"
    assert ok(lst, start).granted
    assert ok(lst, end - timedelta(minutes=1)).granted
    assert ok(lst, end).reason == "expired"


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_antipassback_hard_denies_soft_flags(mode: str) -> None:
    zone = {"id": 1, "antipassback": mode, "reset_hour": 4}
    lst = held(
        rules.parse_schedule({str(d): [["00:00", "24:00"]] for d in range(1, 8)}, []), zone=zone
    )
    passages: dict[str, rules.Passage] = {}
    t = at(2026, 11, 23, 9)
    assert rules.decide(lst, "880001", "in", t, passages).granted
    second = rules.decide(lst, "880001", "in", t + timedelta(minutes=5), passages)
    if mode == "hard":
        assert (second.granted, second.reason) == (False, "antipassback")
    else:
        assert (second.granted, second.flag) == (True, "antipassback")
    # out, then in again: the normal way round
    assert rules.decide(lst, "880001", "out", t + timedelta(minutes=6), passages).granted
    assert rules.decide(lst, "880001", "in", t + timedelta(minutes=7), passages).flag == ""
    # after the 04:00 reset the memory is forgotten
    assert rules.decide(lst, "880001", "in", at(2026, 11, 24, 4, 1), passages).flag == ""


def test_timed_antipassback_lapses_after_the_doors_seconds() -> None:
    zone = {"id": 1, "antipassback": "hard", "reset_hour": 4}
    lst = held(
        rules.parse_schedule({str(d): [["00:00", "24:00"]] for d in range(1, 8)}, []),
        zone=zone,
        apb_seconds=300,
    )
    passages: dict[str, rules.Passage] = {}
    t = at(2026, 11, 23, 9)
    assert rules.decide(lst, "880001", "in", t, passages).granted
    assert not rules.decide(lst, "880001", "in", t + timedelta(seconds=299), passages).granted
    assert rules.decide(lst, "880001", "in", t + timedelta(seconds=300), passages).granted


@pytest.mark.parametrize(
    ("week", "field"),
    [
        ({"8": []}, "week"),
        ({"1": [["7:00", "08:00"]]}, "week.1"),
        ({"1": [["08:00", "08:00"]]}, "week.1"),
        ({"1": [["24:00", "08:00"]]}, "week.1"),
        ({"1": [["08:00"]]}, "week.1"),
        ({"1": [["01:00", "02:00"]] * 7}, "week.1"),
        ([], "week"),
    ],
)
def test_bad_schedules_name_the_day(week: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        rules.parse_schedule(week, [])
    assert err.value.field == field


def test_list_hash_is_order_free_and_matches_after_delta() -> None:
    a = rules.ReaderList(config={"x": 1})
    a.apply(
        {
            "mode": "snapshot",
            "version": 2,
            "content_hash": "",
            "config": {"x": 1},
            "entries": [[1, 1, 0, 0, ["880001", "880002"]], [2, 1, 0, 0, ["880003"]]],
        }
    )
    b = rules.ReaderList()
    b.apply(
        {
            "mode": "snapshot",
            "version": 1,
            "content_hash": "",
            "config": {"x": 1},
            "entries": [[2, 1, 0, 0, ["880003"]], [1, 1, 0, 0, ["880002"]]],
        }
    )
    b.apply(
        {
            "mode": "delta",
            "version": 2,
            "base": 1,
            "content_hash": "",
            "config": {"x": 1},
            "add": [[1, 1, 0, 0, ["880001"]]],
            "remove": [],
        }
    )
    assert a.computed_hash() == b.computed_hash()


def test_the_public_days_the_console_shows_are_the_ones_readers_use() -> None:
    days = rules.public_days(date(2026, 9, 15), 30)
    shown = {d.day: (d.kind, d.holiday) for d in days}
    # the 调休 Sunday before National Day runs as a Monday; the week off runs on holiday
    # intervals, its weekend too
    assert shown[date(2026, 9, 20)] == (rules.MAKEUP_WEEKDAY, "national_day")
    assert shown[date(2026, 10, 3)] == (rules.HOLIDAY, "national_day")
    assert shown[date(2026, 9, 25)] == (rules.HOLIDAY, "mid_autumn_festival")
    assert {d.isoformat(): k for d, (k, _) in shown.items()} == rules.day_kinds(
        date(2026, 9, 15), 30, {}
    )
    assert rules.public_calendar_ends() >= date(2026, 12, 31)
