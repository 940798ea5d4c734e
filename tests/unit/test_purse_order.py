"""The school's purse order splits a payment between the subsidy and cash purses."""

from __future__ import annotations

import pytest

from campuscard.ledger.purse_order import policy_of, split_debit


def test_subsidy_first_takes_the_subsidy_then_cash() -> None:
    assert split_debit("subsidy_first", {"cash": 1000, "subsidy": 300}, 500) == {
        "subsidy": 300,
        "cash": 200,
    }
    assert split_debit("subsidy_first", {"cash": 0, "subsidy": 300}, 300) == {"subsidy": 300}


def test_cash_first_takes_cash_then_subsidy() -> None:
    assert split_debit("cash_first", {"cash": 100, "subsidy": 300}, 250) == {
        "cash": 100,
        "subsidy": 150,
    }


def test_not_enough_in_both_is_refused() -> None:
    with pytest.raises(ValueError, match="do not hold enough"):
        split_debit("cash_first", {"cash": 100, "subsidy": 100}, 201)


def test_policy_defaults_to_subsidy_first() -> None:
    assert policy_of({}) == "subsidy_first"
    assert policy_of({"purse_order": "cash_first"}) == "cash_first"
    assert policy_of({"purse_order": "nonsense"}) == "subsidy_first"
