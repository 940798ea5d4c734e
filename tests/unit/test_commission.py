"""Commission rounding: half-up to the fen on the merchant-day net, spread exactly."""

from __future__ import annotations

from datetime import date

import pytest

from campuscard.settlement.rules import allocate, commission_fen, payout_ref, rate_text


@pytest.mark.parametrize(
    ("net", "bp", "expected"),
    [
        (10_000, 150, 150),  # 100.00 yuan at 1.50 % = 1.50
        (3_333, 150, 50),  # 49.995 fen -> 50 (exactly half rounds up)
        (3_300, 150, 50),  # 49.5 -> 50
        (3_299, 150, 49),  # 49.485 -> 49
        (1, 4_999, 0),  # 0.4999 -> 0
        (1, 5_000, 1),  # 0.5 -> 1 (half-up, not banker's)
        (2_500, 200, 50),
        (0, 150, 0),
        (-5_000, 150, 0),  # refunds above sales: no negative commission
        (123_456_789, 10_000, 123_456_789),
        (999, 0, 0),
    ],
)
def test_commission_is_half_up_to_the_fen(net: int, bp: int, expected: int) -> None:
    assert commission_fen(net, bp) == expected


def test_commission_refuses_floats_and_bad_rates() -> None:
    with pytest.raises(TypeError):
        commission_fen(10.0, 150)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"0\.\.10000"):
        commission_fen(100, 10_001)


def test_rounding_per_merchant_day_differs_from_per_payment() -> None:
    # 3 payments of 0.33 at 1.50 %: per payment each rounds to 0 (0.495 fen -> 0), per day
    # 99 fen * 1.5 % = 1.485 -> 1 fen. The documented rule is per merchant-day.
    assert sum(commission_fen(33, 150) for _ in range(3)) == 0
    assert commission_fen(99, 150) == 1


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, [1, 1, 1], [4, 3, 3]),  # ties go to the earlier line
        (150, [5_000, 5_000], [75, 75]),
        (7, [100, 0, -50, 200], [2, 0, 0, 5]),  # only positive lines share
        (0, [-1, 0], [0, 0]),
        (1, [1, 2], [0, 1]),
    ],
)
def test_allocation_sums_exactly(total: int, weights: list[int], expected: list[int]) -> None:
    shares = allocate(total, weights)
    assert shares == expected
    assert sum(shares) == total


def test_allocation_needs_positive_sales_for_a_commission() -> None:
    with pytest.raises(ValueError, match="positive"):
        allocate(5, [0, -3])


def test_payout_reference_and_rate_text() -> None:
    assert payout_ref(7, date(2026, 3, 9), 42) == "STL0007202603090000004 2".replace(" ", "")
    assert rate_text(150) == "1.50%"
    assert rate_text(5) == "0.05%"
