"""Each monitoring rule fires on the case it is for, stays silent on the case it must not alert,
and says its reason (a catalog message, worded in either language) with the figures behind it."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from campuscard.monitoring import rules, threshold_rules
from campuscard.monitoring.rules import Config, Spend, all_on
from campuscard.platform import i18n
from campuscard.platform.errors import ValidationFailed

ON = all_on()
OFF = Config()


def spend(
    pid: int, hh: int, mm: int, amount: int, *, place: tuple[int, int] | None = None, day: int = 2
) -> Spend:
    return Spend(pid, datetime(2026, 3, day, hh, mm), amount, "canteen", place, f"P{pid}")


def zh(f: rules.Finding) -> str:
    return i18n.word("zh-CN", f.reason)


def en(f: rules.Finding) -> str:
    return i18n.word("en", f.reason)


def both(f: rules.Finding) -> str:
    """The reason in both languages: each worded from the catalogs, none left a raw key."""
    assert f.reason["key"].startswith("notice.alert.")
    assert zh(f) != en(f) and f.reason["key"] not in (zh(f), en(f))
    return zh(f) + " | " + en(f)


BASELINE = [850, 900, 1000, 1200, 950, 800, 1100, 1300, 700, 900, 1000, 1500]


def test_big_spend_far_above_own_baseline() -> None:
    f = rules.big_spend(ON, spend(1, 12, 0, 12000), BASELINE)
    assert f is not None and f.rule == "big_spend" and f.facts["z"] >= 6
    assert "120.00" in both(f) and "times" in en(f)


def test_big_spend_not_for_an_ordinary_meal_or_a_thin_history() -> None:
    assert rules.big_spend(ON, spend(1, 12, 0, 1600), BASELINE) is None
    # far above a few cheap meals, but too little history to call it unusual
    assert rules.big_spend(ON, spend(1, 12, 0, 12000), BASELINE[:5]) is None
    # and nothing at all while the rule is off
    assert rules.big_spend(OFF, spend(1, 12, 0, 90000), BASELINE) is None


def test_big_spend_above_the_absolute_amount_whatever_the_baseline() -> None:
    f = rules.big_spend(ON, spend(1, 12, 0, 50000), [])
    assert f is not None and f.facts["absolute"] == 50000 and "500.00" in zh(f)


def test_robust_z_of_a_student_who_always_pays_the_same() -> None:
    assert rules.robust_z(1000, [1000] * 20) == 0
    assert rules.robust_z(3000, [1000] * 20) == pytest.approx(20.0)


def test_night_spend_in_the_small_hours_once_per_night() -> None:
    a = rules.night_spend(ON, spend(1, 1, 15, 2500))
    b = rules.night_spend(ON, spend(2, 3, 40, 800))
    assert a is not None and b is not None and a.key == b.key
    assert "01:15" in both(a)


def test_night_spend_not_in_the_evening_nor_for_a_cent() -> None:
    assert rules.night_spend(ON, spend(1, 22, 30, 2500)) is None
    assert rules.night_spend(ON, spend(1, 5, 0, 2500)) is None
    assert rules.night_spend(ON, spend(1, 2, 0, 50)) is None


def test_rapid_payments() -> None:
    burst = [spend(i, 12, i, 300) for i in range(1, 7)]
    f = rules.rapid_payments(ON, burst[-1], burst)
    assert f is not None and f.facts["count"] == 6 and "18.00" in both(f)


def test_rapid_payments_not_for_a_meal_paid_in_three_parts() -> None:
    lunch = [spend(1, 12, 0, 800), spend(2, 12, 1, 300), spend(3, 12, 3, 200)]
    assert rules.rapid_payments(ON, lunch[-1], lunch) is None
    spread = [spend(i, 8 + i, 0, 300) for i in range(1, 8)]
    assert rules.rapid_payments(ON, spread[-1], spread) is None


def test_far_apart_too_quickly() -> None:
    f = rules.far_apart(
        ON, spend(2, 12, 3, 500, place=(3000, 0)), spend(1, 12, 0, 500, place=(0, 0))
    )
    assert f is not None and f.facts["metres"] == 3000 and "3000" in both(f)


def test_far_apart_not_for_a_walk_or_a_place_without_position() -> None:
    # 1.2 km in 15 minutes is a brisk walk
    walk = rules.far_apart(
        ON, spend(2, 12, 15, 500, place=(1200, 0)), spend(1, 12, 0, 500, place=(0, 0))
    )
    assert walk is None
    assert rules.far_apart(ON, spend(2, 12, 1, 500), spend(1, 12, 0, 500, place=(0, 0))) is None
    near = rules.far_apart(
        ON, spend(2, 12, 1, 500, place=(300, 0)), spend(1, 12, 0, 500, place=(0, 0))
    )
    assert near is None


def test_low_balance_with_days_left_at_the_recent_pace() -> None:
    f = rules.low_balance(ON, available=1200, spent_recent=14 * 400, episode=7)
    assert f is not None and f.facts["days_left"] == 3
    assert "3" in zh(f) and "about 3 days" in en(f)
    assert f.key == "episode:7:1500"


def test_low_balance_not_above_the_threshold_and_a_parents_own_threshold() -> None:
    assert rules.low_balance(ON, available=1500, spent_recent=5600, episode=7) is None
    f = rules.low_balance(OFF, available=4000, spent_recent=0, episode=7, threshold=5000)
    assert f is not None and f.facts["days_left"] is None and "50.00" in zh(f)


def test_no_meal_for_days_while_the_card_is_used() -> None:
    f = rules.no_meal(
        ON,
        today=date(2026, 3, 10),
        last_meal=date(2026, 3, 6),
        other_uses=3,
        since=date(2026, 3, 1),
    )
    assert f is not None and f.facts["days"] == 4 and "自2026年3月6日起" in zh(f)
    assert "since March 6, 2026" in en(f)


def test_no_meal_not_when_the_card_lies_in_a_drawer_or_the_gap_is_short() -> None:
    # away for the weekend: no canteen, no other use either
    assert (
        rules.no_meal(
            ON,
            today=date(2026, 3, 10),
            last_meal=date(2026, 3, 6),
            other_uses=0,
            since=date(2026, 3, 1),
        )
        is None
    )
    assert (
        rules.no_meal(
            ON,
            today=date(2026, 3, 10),
            last_meal=date(2026, 3, 8),
            other_uses=5,
            since=date(2026, 3, 1),
        )
        is None
    )


def test_arrears_reason_names_the_bill_and_the_days() -> None:
    f = rules.arrears(
        ON,
        overdue_amount=520000,
        oldest_due_date=date(2026, 3, 1),
        reason="学费",
        today=date(2026, 3, 11),
    )
    assert f is not None and "学费欠费 ¥5,200.00" in zh(f) and "10 days" in en(f)


def test_arrears_not_below_the_minimum() -> None:
    cfg = all_on(arrears={"min_overdue": 10000})
    assert (
        rules.arrears(
            cfg,
            overdue_amount=9999,
            oldest_due_date=date(2026, 3, 1),
            reason="",
            today=date(2026, 3, 2),
        )
        is None
    )


def test_offline_overdraft() -> None:
    at = datetime(2026, 3, 2, 12, 5)
    f = rules.offline_overdraft(
        ON, shortfall=230, amount=1200, device="POS-7", at=at, ref="POS-7:41"
    )
    assert f is not None and "POS-7" in both(f) and "2.30" in both(f)
    assert (
        rules.offline_overdraft(ON, shortfall=0, amount=1200, device="POS-7", at=at, ref="x")
        is None
    )


def test_quiet_hours_over_midnight() -> None:
    start, end = time(22, 30), time(7, 0)
    assert rules.quiet_now(datetime(2026, 3, 2, 23, 0), start, end)
    assert rules.quiet_now(datetime(2026, 3, 2, 6, 59), start, end)
    assert not rules.quiet_now(datetime(2026, 3, 2, 7, 0), start, end)
    assert rules.quiet_until(datetime(2026, 3, 2, 23, 0), end) == datetime(2026, 3, 3, 7, 0)


def test_risk_tiers() -> None:
    assert rules.risk_tier([]) == "none"
    assert rules.risk_tier([1, 2]) == "low"
    assert rules.risk_tier([2, 2, 3]) == "medium"
    assert rules.risk_tier([3, 3, 2]) == "high"


def test_thresholds_are_checked_by_name_type_and_range() -> None:
    assert threshold_rules.check("big_spend", {"z": 4, "absolute": 30000}) == {
        "z": 4.0,
        "absolute": 30000,
    }
    assert threshold_rules.check("delivery", {"quiet_start": "23:00"}) == {"quiet_start": "23:00"}
    for rule, values, where in (
        ("big_spend", {"zz": 1}, "thresholds.zz"),
        ("big_spend", {"absolute": "300"}, "thresholds.absolute"),
        ("big_spend", {"absolute": 12.5}, "thresholds.absolute"),
        ("big_spend", {"z": -1}, "thresholds.z"),
        ("delivery", {"guardian_consent": 1}, "thresholds.guardian_consent"),
        ("delivery", {"quiet_end": "25:00"}, "thresholds.quiet_end"),
        ("hardship", {"preset": "magic"}, "thresholds.preset"),
        ("nope", {}, "rule"),
    ):
        with pytest.raises(ValidationFailed) as err:
            threshold_rules.check(rule, values)
        assert err.value.field == where
