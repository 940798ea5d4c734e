"""The thresholds a school sets, as people and API clients give them (no database)."""

from __future__ import annotations

import pytest

from campuscard.monitoring import threshold_rules
from campuscard.monitoring.rules import DEFAULTS
from campuscard.platform.errors import ValidationFailed


def test_every_threshold_has_a_spec_and_its_default_is_within_bounds() -> None:
    assert set(threshold_rules.SPECS) == set(DEFAULTS) == set(threshold_rules.EXPLAIN)
    for rule, specs in threshold_rules.SPECS.items():
        assert [s.name for s in specs] == list(DEFAULTS[rule]), rule
        assert threshold_rules.check(rule, DEFAULTS[rule]) == DEFAULTS[rule]
        for s in specs:
            assert s.label["zh-CN"] and s.label["en"], (rule, s.name)


def test_amounts_are_given_in_yuan_and_only_changes_from_the_default_are_kept() -> None:
    # given: the low-balance rule's form as typed (below in yuan, the pace left at 14)
    stored = threshold_rules.from_input("low_balance", {"below": "20.50", "pace_days": "14"})
    # then: stored in fen, the default pace not stored
    assert stored == {"below": 2050}
    assert threshold_rules.from_input(
        "delivery", {"guardian_consent": "false", "quiet_start": "23:00", "weekly_budget": 3}
    ) == {"guardian_consent": False, "quiet_start": "23:00", "weekly_budget": 3}
    assert threshold_rules.from_input("big_spend", {"z": "4.5", "absolute": "0"}) == {
        "z": 4.5,
        "absolute": 0,
    }


@pytest.mark.parametrize(
    ("rule", "given", "field", "says"),
    [
        ("low_balance", {"below": "0"}, "thresholds.below", "between 0.01 and 10000.00 yuan"),
        ("low_balance", {"below": 1500}, "thresholds.below", "string of yuan"),
        ("low_balance", {"below": "12.345"}, "thresholds.below", "12.30"),
        ("low_balance", {"pace_days": "two"}, "thresholds.pace_days", "whole number"),
        ("rapid_payments", {"count": "1"}, "thresholds.count", "between 2 and 100 payments"),
        ("no_meal", {"days": "15"}, "thresholds.days", "between 1 and 14 days"),
        ("big_spend", {"z": "nan"}, "thresholds.z", "number"),
        ("big_spend", {"z": "0.5"}, "thresholds.z", "between 1"),
        ("night_spend", {"start": "1:30"}, "thresholds.start", "22:30"),
        ("delivery", {"guardian_consent": "maybe"}, "thresholds.guardian_consent", "true"),
        ("hardship", {"preset": "magic"}, "thresholds.preset", "njust, xidian, score"),
        ("far_apart", {"speed": "3"}, "thresholds.speed", "no threshold"),
        ("nope", {}, "rule", "unknown rule"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field_and_the_reason(
    rule: str, given: dict[str, object], field: str, says: str
) -> None:
    with pytest.raises(ValidationFailed) as err:
        threshold_rules.from_input(rule, given)
    assert err.value.field == field
    assert says in err.value.message


def test_a_change_is_described_in_the_units_people_read() -> None:
    lines = threshold_rules.describe_change(
        "low_balance",
        {"enabled": True, "thresholds": {}},
        {"enabled": False, "thresholds": {"below": 2000}},
    )
    assert [(c.name, c.before, c.after, c.unit) for c in lines] == [
        ("enabled", True, False, ""),
        ("below", "15.00", "20.00", "yuan"),
    ]
    # never set before: off, defaults
    (first,) = threshold_rules.describe_change("arrears", None, {"enabled": True})
    assert (first.name, first.before, first.after) == ("enabled", False, True)
