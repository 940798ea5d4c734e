"""End-of-day clearing: figures per merchant/terminal/channel, commission, one settlement in
the ledger however often a day is closed, late bookings carried into the next day."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from campuscard.ledger import checks, postings
from campuscard.platform.actors import SYSTEM, Actor, Grant
from campuscard.platform.errors import Conflict, Forbidden, ValidationFailed
from campuscard.settlement import clearing as settlement
from tests.support import make_school, make_student
from tests.support_settlement import advance_day, make_merchant, make_terminal, pay


async def today(conn: asyncpg.Connection[Any], school_id: int) -> date:
    d: date = await conn.fetchval("SELECT cc_business_date($1)", school_id)
    return d


def settler(school_id: int) -> Actor:
    return Actor(name="finance", user_id=None, grants=frozenset({Grant("settlement", school_id)}))


async def test_day_cleared_twice_has_identical_figures_and_one_settlement(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    # given a canteen (1.50 %) with two terminals and a supermarket (0 %)
    school = await make_school(conn)
    canteen = await make_merchant(conn, school.id, "一食堂", commission_bp=150)
    shop = await make_merchant(conn, school.id, "超市", channel="supermarket")
    t1 = await make_terminal(conn, school.id, canteen, "POS-C-001")
    t2 = await make_terminal(conn, school.id, canteen, "POS-C-002")
    t3 = await make_terminal(conn, school.id, shop, "POS-S-001")
    student = await make_student(conn, school.id, "S1", cash=100_000)
    for fen in (1_250, 800, 1_533):
        await pay(conn, school.id, canteen, t1, student, fen)
    await pay(conn, school.id, canteen, t2, student, 2_000)
    await pay(conn, school.id, canteen, t2, student, 2_000, kind="payment_reversal")
    await pay(conn, school.id, canteen, t1, student, 300, kind="refund")
    await pay(conn, school.id, shop, t3, student, 4_599)
    day = await today(conn, school.id)

    # when the day is closed twice
    first = await settlement.do_close_day(pool, settler(school.id), school.id, day, early=True)
    second = await settlement.do_close_day(pool, SYSTEM, school.id, day, early=True)

    # then the figures are the same and the second run replayed them
    assert first.pop("replayed") is False
    assert second.pop("replayed") is True
    assert first == second
    by_name = {m["merchant"]: m for m in first["merchants"]}
    c = by_name["一食堂"]
    assert (c["sales_count"], c["gross"]) == (4, "55.83")
    assert (c["reversal_count"], c["reversals"]) == (1, "20.00")
    assert (c["refund_count"], c["refunds"]) == (1, "3.00")
    assert c["net_sales"] == "32.83"
    assert c["commission"] == "0.49"  # 3283 * 1.5 % = 49.245 fen -> 49
    assert c["payout"] == "32.34"
    assert by_name["超市"]["payout"] == "45.99"
    assert first["gross"] == "101.82"

    # and the ledger holds exactly one settlement per merchant, merchant balances are emptied
    n = await conn.fetchval(
        "SELECT count(*) FROM journal_tx WHERE kind = 'settlement' AND school_id = $1", school.id
    )
    assert n == 2
    assert await postings.merchant_balance(conn, canteen.id) == 0
    assert await postings.merchant_balance(conn, shop.id) == 0
    payable = await postings.system_account(conn, school.id, "merchant_payable")
    income = await postings.system_account(conn, school.id, "commission_income")
    balances = dict(
        await conn.fetch("SELECT id, balance FROM accounts WHERE id = ANY($1)", [payable, income])
    )
    assert balances[income] == 49
    assert balances[payable] == 3_234 + 4_599  # no payout account yet: stays payable
    report = await checks.check_ledger(conn)
    assert report.ok, report.violations


async def test_terminal_lines_add_up_to_the_merchant(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    # given three terminals whose sales make the commission split unevenly
    school = await make_school(conn)
    m = await make_merchant(conn, school.id, "二食堂", commission_bp=150)
    terminals = [await make_terminal(conn, school.id, m, f"POS-L-{i:03d}") for i in range(3)]
    student = await make_student(conn, school.id, "S1", cash=100_000)
    for t, fen in zip(terminals, (3_333, 3_333, 3_334), strict=True):
        await pay(conn, school.id, m, t, student, fen)
    day = await today(conn, school.id)

    # when
    await settlement.do_close_day(pool, SYSTEM, school.id, day, early=True)
    st = await settlement.statement(conn, school.id, day, m.id)

    # then 100.00 * 1.5 % = 1.50 spread 50/50/50 and every column adds up
    assert st["totals"]["commission"] == "1.50"
    assert [ln["commission"] for ln in st["lines"]] == ["0.50", "0.50", "0.50"]
    assert [ln["terminal"] for ln in st["lines"]] == ["POS-L-000", "POS-L-001", "POS-L-002"]
    for key in ("gross", "net_sales", "commission", "payout"):
        fen = sum(int(ln[key].replace(".", "")) for ln in st["lines"])
        assert fen == int(st["totals"][key].replace(".", ""))


async def test_late_booking_falls_into_the_next_day_and_is_reported(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    # given a closed day
    school = await make_school(conn)
    m = await make_merchant(conn, school.id, "浴室", channel="other")
    t = await make_terminal(conn, school.id, m, "POS-B-001")
    student = await make_student(conn, school.id, "S1", cash=10_000)
    await pay(conn, school.id, m, t, student, 500)
    day = await today(conn, school.id)
    closed = await settlement.do_close_day(pool, SYSTEM, school.id, day, early=True)

    # when a booking of that day arrives after the close (an offline upload, a late commit)
    await pay(conn, school.id, m, t, student, 700)
    again = await settlement.do_close_day(pool, SYSTEM, school.id, day, early=True)

    # then the closed day did not change
    assert again["gross"] == closed["gross"] == "5.00"
    # and the next day takes it, reported as carried over
    await advance_day(conn, school.id, 2)  # the next day is over
    nxt = await settlement.do_close_day(pool, SYSTEM, school.id, day + timedelta(days=1))
    assert nxt["carried_count"] == 1
    assert nxt["carried_amount"] == "7.00"
    assert nxt["merchants"][0]["gross"] == "7.00"
    # and an earlier day cannot be closed after a later one
    with pytest.raises(Conflict) as err:
        await settlement.do_close_day(pool, SYSTEM, school.id, day - timedelta(days=1))
    assert err.value.code == "DAY_BEFORE_CLOSED"


async def test_closing_an_open_or_future_day_is_refused(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    day = await today(conn, school.id)
    with pytest.raises(Conflict) as open_err:
        await settlement.do_close_day(pool, SYSTEM, school.id, day)
    assert open_err.value.code == "DAY_NOT_OVER"
    with pytest.raises(ValidationFailed) as future:
        await settlement.do_close_day(pool, SYSTEM, school.id, day + timedelta(days=1))
    assert future.value.field == "business_date"
    with pytest.raises(Forbidden):
        await settlement.do_close_day(
            pool, Actor(name="clerk", user_id=9, grants=frozenset()), school.id, day, early=True
        )
    assert await conn.fetchval("SELECT count(*) FROM settlement_days") == 0


async def test_payout_instruction_books_payable_to_bank_clearing(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    # given a merchant with a registered account
    school = await make_school(conn)
    m = await make_merchant(conn, school.id, "文印店", channel="other", commission_bp=60)
    t = await make_terminal(conn, school.id, m, "POS-P-001")
    student = await make_student(conn, school.id, "S1", cash=50_000)
    await settlement.do_set_payout_account(
        pool,
        settler(school.id),
        school.id,
        m.id,
        bank_code="ICBC",
        account_no="6222020200112233",
        account_name="文印店",
    )
    await pay(conn, school.id, m, t, student, 12_345)
    day = await today(conn, school.id)

    # when
    await settlement.do_close_day(pool, SYSTEM, school.id, day, early=True)
    rows = await settlement.payout_rows(conn, school.id, day)

    # then 123.45 - 0.74 (74.07 fen -> 74) goes out, and is in transit at the bank
    assert [(r["account_no"], r["payout_fen"]) for r in rows] == [("6222020200112233", 12_271)]
    clearing = await postings.system_account(conn, school.id, "bank_clearing")
    payable = await postings.system_account(conn, school.id, "merchant_payable")
    bal = dict(
        await conn.fetch("SELECT id, balance FROM accounts WHERE id = ANY($1)", [clearing, payable])
    )
    assert bal == {clearing: 12_271, payable: 0}
    ref = await conn.fetchval("SELECT ref FROM journal_tx WHERE kind = 'payout_instruction'")
    assert ref == rows[0]["payout_ref"]


async def test_the_worker_job_closes_yesterday_once(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    from campuscard.settlement.jobs import close_finished_days

    # given a sale today, then the cut-off passes
    school = await make_school(conn)
    m = await make_merchant(conn, school.id, "洗衣房", channel="other")
    t = await make_terminal(conn, school.id, m, "POS-J-001")
    student = await make_student(conn, school.id, "S1", cash=1_000)
    await pay(conn, school.id, m, t, student, 400)
    day = await today(conn, school.id)
    await advance_day(conn, school.id)

    # when the job runs twice
    first = await close_finished_days(pool)
    second = await close_finished_days(pool)

    # then the day was closed once, by the system
    assert [d["business_date"] for d in first] == [day.isoformat()]
    assert first[0]["closed_by"] == "system" and first[0]["gross"] == "4.00"
    assert second == []
