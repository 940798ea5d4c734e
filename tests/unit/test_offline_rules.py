"""Offline rules without a database: the card chain, the purse split with an overdraft, the
device's sequence gaps, risk limits from school settings, and record signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campuscard.offline import rules
from campuscard.platform.errors import ValidationFailed

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=30)


def pending(
    counter: int, amount: int, before: int, *, seq: int = 0, minutes: int = 0
) -> rules.Pending:
    return rules.Pending(
        terminal_id=1,
        seq=seq or counter,
        amount=amount,
        made_at=T0 + timedelta(minutes=minutes or counter),
        received_at=T0,
        card_counter=counter,
        total_before=before,
        total_after=before + amount,
    )


START = rules.ChainHead(last_counter=0, last_total=0, last_made_at=None)


def test_the_chain_settles_in_counter_order_whatever_the_arrival_order() -> None:
    walk = rules.walk_chain(
        START,
        [pending(3, 100, 300), pending(1, 100, 0), pending(2, 200, 100)],
        last_online_at=None,
        give_up_before=LONG_AGO,
    )
    assert [(p.card_counter, broke) for p, broke in walk.settle] == [
        (1, None),
        (2, None),
        (3, None),
    ]
    assert walk.head == rules.ChainHead(3, 400, T0 + timedelta(minutes=3))


def test_a_missing_counter_stops_the_walk_until_the_wait_is_over() -> None:
    waiting = [pending(1, 100, 0), pending(3, 100, 100)]
    walk = rules.walk_chain(START, waiting, last_online_at=None, give_up_before=LONG_AGO)
    assert [p.card_counter for p, _ in walk.settle] == [1]
    late = rules.walk_chain(START, waiting, last_online_at=None, give_up_before=T0 + timedelta(1))
    assert [(p.card_counter, broke) for p, broke in late.settle] == [
        (1, None),
        (3, "counter 2 missing"),
    ]


def test_chain_breaks_are_named() -> None:
    head = rules.ChainHead(4, 500, T0)
    bad_sum = rules.Pending(1, 9, 300, T0, T0, 5, 500, 700)  # 500 + 300 is not 700
    walk = rules.walk_chain(head, [bad_sum], last_online_at=None, give_up_before=LONG_AGO)
    assert walk.settle[0][1] == "total 500 + 300 is not 700"
    reused = rules.walk_chain(
        head, [pending(4, 100, 500)], last_online_at=None, give_up_before=LONG_AGO
    )
    assert reused.settle[0][1] == "counter 4 already used"


def test_a_total_reset_to_zero_needs_an_online_payment_in_between() -> None:
    head = rules.ChainHead(2, 800, T0)
    reset = [pending(3, 100, 0, minutes=60)]
    without = rules.walk_chain(head, reset, last_online_at=None, give_up_before=LONG_AGO)
    assert without.settle[0][1] == "total before 0, the card's last was 800"
    online = rules.walk_chain(
        head, reset, last_online_at=T0 + timedelta(minutes=30), give_up_before=LONG_AGO
    )
    assert online.settle[0][1] is None
    stale = rules.walk_chain(
        head, reset, last_online_at=T0 - timedelta(hours=2), give_up_before=LONG_AGO
    )
    assert stale.settle[0][1] is not None


def test_split_takes_the_purses_in_order_and_the_rest_is_an_overdraft() -> None:
    available = {"cash": 300, "subsidy": 200}
    assert rules.split_offline("subsidy_first", available, 400) == {
        "cash": 200,
        "subsidy": 200,
        "overdraft": 0,
    }
    assert rules.split_offline("subsidy_first", available, 250) == {
        "cash": 100,
        "subsidy": 0,
        "overdraft": 150,
    }
    assert available == {"cash": 0, "subsidy": 0}
    # a purse already below its floor (held money) pays nothing
    assert rules.split_offline("cash_first", {"cash": -50}, 10)["overdraft"] == 10


def test_gaps_above_the_contiguous_number() -> None:
    assert rules.advance_contiguous(0, [1, 2, 4, 7]) == 2
    assert rules.missing_ranges(2, [4, 7]) == [[3, 3], [5, 6]]
    assert rules.count_missing([[3, 3], [5, 6]]) == 3
    assert rules.missing_ranges(5, []) == []


def test_risk_limits_default_safely_and_refuse_nonsense() -> None:
    assert rules.risk_limits(None) == rules.RiskLimits()
    given = {"offline": {"per_tx_limit": 3_000, "max_total": -1, "max_consecutive": "5"}}
    limits = rules.risk_limits(given)
    assert (limits.per_tx_limit, limits.max_total, limits.max_consecutive) == (3_000, 10_000, 10)
    assert rules.check_limits({"overdraft_limit": 500}) == {"overdraft_limit": 500}
    with pytest.raises(ValidationFailed) as err:
        rules.check_limits({"overdraft_limit": 1.5})
    assert err.value.field == "overdraft_limit"
    with pytest.raises(ValidationFailed):
        rules.check_limits({"no_such_limit": 1})


def test_a_record_signature_covers_every_field() -> None:
    key = bytes(range(32))
    r = rules.Record(7, "880000000001", "04a10001", 1250, 1_795_000_000, 3, 500, 1750, 1, "")
    signed = rules.Record(**{**r.__dict__, "signature": rules.sign_record(key, "POS-1", r)})
    assert rules.signature_ok(key, "POS-1", signed)
    assert rules.record_message("POS-1", r) == (
        b"offline/v1|POS-1|7|880000000001|04A10001|1250|1795000000|3|500|1750"
    )
    tampered = rules.Record(**{**signed.__dict__, "amount": 125})
    assert not rules.signature_ok(key, "POS-1", tampered)
    assert not rules.signature_ok(key, "POS-2", signed)


def test_a_chain_break_is_described_part_by_part_for_the_page() -> None:
    walk = rules.walk_chain(
        rules.ChainHead(last_counter=1, last_total=300, last_made_at=T0),
        [pending(1, 200, 0)],
        last_online_at=None,
        give_up_before=LONG_AGO,
    )
    text = walk.settle[0][1]
    assert rules.describe_break(text) == [
        ("reused", {"counter": "1"}),
        ("total", {"before": "0.00", "last": "3.00"}),
    ]
    assert rules.describe_break("counters 3-5 missing; total 100 + 50 is not 120") == [
        ("missing_many", {"first": "3", "to": "5"}),
        ("sum", {"before": "1.00", "amount": "0.50", "after": "1.20"}),
    ]
    assert rules.describe_break("counter 7 missing") == [("missing_one", {"first": "7"})]
    assert rules.describe_break(None) == []
    assert rules.describe_break("something new") == [("other", {"text": "something new"})]
