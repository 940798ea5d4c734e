"""Metered devices: the daily tier ladder split exactly at boundaries, rounding that adds up
over a day, caps and the gap between sessions, and tariffs that name their bad field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campuscard.ledger.holds_rules import HoldRequest, timeout_seconds
from campuscard.metering.rules import (
    Segment,
    Tier,
    Today,
    authorise,
    parse_tariff,
    session_charge,
    split,
)
from campuscard.platform.errors import DomainError, ValidationFailed

# a shower: the first 10 minutes of a day at 0.5 fen/s, the next 10 at 1 fen/s, then 2 fen/s
LADDER = (Tier(600, 500), Tier(1200, 1000), Tier(None, 2000))
SHOWER = {
    "kind": "shower",
    "ladders": {
        "student": [
            {"upto": 600, "rate": 500},
            {"upto": 1200, "rate": 1000},
            {"upto": None, "rate": 2000},
        ],
        "staff": [{"upto": None, "rate": 1000}],
    },
    "session_cap": 800,
    "daily_amount_cap": 2000,
    "daily_count_cap": 3,
    "min_gap_seconds": 300,
    "max_session_units": 1500,
}
NOW = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)


def test_a_session_inside_one_tier_is_one_segment() -> None:
    assert split(LADDER, 0, 300) == [Segment(0, 300, 150_000)]


def test_a_session_crossing_a_boundary_is_split_exactly_there() -> None:
    # 500 s already used today; 300 more: 100 at tier 1, 200 at tier 2
    assert split(LADDER, 500, 300) == [Segment(0, 100, 50_000), Segment(1, 200, 200_000)]
    assert session_charge(LADDER, 500, 300) == 250


def test_a_session_crossing_every_tier() -> None:
    assert split(LADDER, 0, 1300) == [
        Segment(0, 600, 300_000),
        Segment(1, 600, 600_000),
        Segment(2, 100, 200_000),
    ]
    assert session_charge(LADDER, 0, 1300) == 1100


def test_a_session_starting_on_a_boundary_pays_the_next_tier() -> None:
    assert split(LADDER, 600, 1) == [Segment(1, 1, 1000)]
    assert split(LADDER, 1200, 5) == [Segment(2, 5, 10_000)]


def test_sessions_of_a_day_add_up_to_the_days_price_to_the_fen() -> None:
    # 0.5 fen a second: three odd sessions round each way, the day rounds once
    used, total = 0, 0
    for units in (3, 3, 3):
        total += session_charge(LADDER, used, units)
        used += units
    assert total == session_charge(LADDER, 0, 9) == 5  # 4.5 fen rounds half up


def test_authorise_holds_the_session_cap_within_what_is_left_today() -> None:
    tariff = parse_tariff(SHOWER)
    assert authorise(tariff, Today(0, 0, 0, None), NOW) == 800
    assert authorise(tariff, Today(2, 1500, 1000, NOW - timedelta(hours=1)), NOW) == 500


def test_authorise_refuses_too_soon_too_many_too_much() -> None:
    tariff = parse_tariff(SHOWER)
    with pytest.raises(DomainError) as err:
        authorise(tariff, Today(1, 100, 100, NOW - timedelta(seconds=100)), NOW)
    assert err.value.code == "TOO_SOON" and err.value.details == {"retry_after": 200}
    with pytest.raises(DomainError) as err:
        authorise(tariff, Today(3, 100, 100, None), NOW)
    assert err.value.code == "DAILY_COUNT_CAP"
    with pytest.raises(DomainError) as err:
        authorise(tariff, Today(1, 2000, 100, None), NOW)
    assert err.value.code == "DAILY_AMOUNT_CAP"


def test_rates_per_card_kind() -> None:
    tariff = parse_tariff(SHOWER)
    assert session_charge(tariff.ladder("staff"), 0, 700) == 700
    assert session_charge(tariff.ladder("student"), 0, 700) == 400
    assert tariff.ladder("temporary") == tariff.ladder("student")  # falls back


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "sauna"}, "tariff.kind"),
        ({"ladders": {}}, "tariff.ladders"),
        ({"ladders": {"teacher": [{"upto": None, "rate": 1}]}}, "tariff.ladders.teacher"),
        ({"ladders": {"student": [{"upto": 5, "rate": 1}]}}, "tariff.ladders.student[0].upto"),
        (
            {
                "ladders": {
                    "student": [
                        {"upto": 5, "rate": 1},
                        {"upto": 5, "rate": 1},
                        {"upto": None, "rate": 1},
                    ]
                }
            },
            "tariff.ladders.student[1].upto",
        ),
        ({"ladders": {"student": [{"upto": None, "rate": -1}]}}, "tariff.ladders.student[0].rate"),
        ({"session_cap": 0}, "tariff.session_cap"),
        ({"min_gap_seconds": 1.5}, "tariff.min_gap_seconds"),
    ],
)
def test_a_bad_tariff_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_tariff(SHOWER | change)
    assert err.value.field == field


def test_hold_timeouts_come_from_school_settings_with_defaults() -> None:
    assert timeout_seconds({}, "shower") == 1800
    assert timeout_seconds({}, "laundry") == 3 * 3600
    assert timeout_seconds({"holds": {"timeouts": {"shower": 900}}}, "shower") == 900
    assert timeout_seconds({}, "sauna") is None


def test_a_hold_request_is_checked_before_it_reaches_the_database() -> None:
    with pytest.raises(ValidationFailed) as err:
        HoldRequest("hold-0001", 1, 100, "shower", "device_session", "x" * 65, 1)
    assert err.value.field == "owner_id"


def test_the_console_shows_rates_as_yuan_per_unit() -> None:
    from campuscard.web.admin.devices import price_text, tariff_view

    assert [price_text(r) for r in (500, 1000, 2000, 400_000, 50_000, 1)] == [
        "0.005",
        "0.01",
        "0.02",
        "4.00",
        "0.50",
        "0.00001",
    ]
    view = tariff_view(
        {
            "kind": "bus",
            "ladders": {"student": [{"upto": 2, "rate": 100_000}, {"upto": None, "rate": 50_000}]},
            "session_cap": 200,
            "daily_amount_cap": 1000,
            "daily_count_cap": 10,
            "min_gap_seconds": 0,
            "max_session_units": 1,
        }
    )
    assert view["unit"] == "trip"
    assert view["ladders"] == [
        {
            "card_kind": "student",
            "tiers": [
                {"from": 0, "upto": 2, "price": "1.00"},
                {"from": 2, "upto": None, "price": "0.50"},
            ],
        }
    ]
