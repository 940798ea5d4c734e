"""The demo campus has one correction waiting for a second person, so the approvals page shows
the four-eyes step on first open; approving it moves the money, once. Its online campus store
has an order in every state and a dispute whose decision waits for the same second person
(checked here too: one demo load serves both)."""

from __future__ import annotations

from typing import Any

from campuscard import demo
from campuscard.credit import lines
from campuscard.ledger.checks import check_ledger
from campuscard.payroll import queries as payroll_queries
from campuscard.platform import auth, four_eyes


async def test_demo_has_an_adjustment_waiting_for_the_second_settlement_operator(
    pool: Any,
) -> None:
    # given the demo campus, loaded twice (the second load adds nothing)
    async with pool.acquire() as conn:
        campus = await demo.load_demo(conn)
        await demo.load_demo(conn)
        pending = await conn.fetch(
            "SELECT id, kind, amount FROM approvals WHERE status = 'pending' AND kind = 'adjustment'"
        )
        checker = await conn.fetchval(
            "SELECT id FROM users WHERE school_id = $1 AND username = 'settlement2'",
            campus.school_id,
        )
        actor = await auth.load_actor(conn, checker)
        before = await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'adjustment'")
    assert [(r["kind"], r["amount"]) for r in pending] == [("adjustment", 1250)]

    # when the second settlement operator approves it
    await four_eyes.do_decide(pool, actor, campus.school_id, pending[0]["id"], approve=True)

    # then the correction is booked once and the ledger holds
    async with pool.acquire() as conn:
        after = await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'adjustment'")
        assert after == before + 1
        assert (await check_ledger(conn)).ok

    # the online store: an order in every state, the dispute settled once when approved
    async with pool.acquire() as conn:
        states = await conn.fetch(
            "SELECT order_no, state, close_reason, released, refunded FROM orders ORDER BY order_no"
        )
        dispute = await conn.fetchrow(
            "SELECT id, amount FROM approvals WHERE kind = 'order_dispute' AND status = 'pending'"
        )
    assert [(r["order_no"], r["state"]) for r in states] == [
        ("SO-DEMO-0001", "wait_buyer_pay"),
        ("SO-DEMO-0002", "wait_seller_send"),
        ("SO-DEMO-0003", "wait_buyer_confirm"),
        ("SO-DEMO-0004", "finished"),
        ("SO-DEMO-0005", "closed"),
        ("SO-DEMO-0006", "disputed"),
    ]
    assert (states[3]["released"], states[3]["refunded"]) == (4_500, 1_500)
    assert states[4]["close_reason"] == "not_shipped"
    assert dispute is not None and dispute["amount"] == 6_000
    assert ("online store 网店", "DEMO", "shop1") in campus.logins
    # a staff member with credit in use: 20.00 on the card, a 48.00 dinner
    async with pool.acquire() as conn:
        staff = await conn.fetchval("SELECT id FROM persons WHERE number = 'T0001'")
        credit = await lines.statement_of(conn, campus.school_id, staff)
    assert (credit.credit_limit, credit.credit_used, credit.balance) == (
        "300.00",
        "28.00",
        "-28.00",
    )
    decided = await four_eyes.do_decide(pool, actor, campus.school_id, dispute["id"], approve=True)
    assert decided["result"]["order"]["state"] == "finished"
    # last month's payroll, uploaded by 'settlement', approved by 'settlement2', paid once
    assert ("staff paid by payroll 教职工（工资）", "DEMO", "T0002") in campus.logins
    async with pool.acquire() as conn:
        batches = await payroll_queries.list_batches(conn, actor, campus.school_id)
        assert [(b["state"], b["lines"], b["total"]) for b in batches] == [("paid", 2, "14000.50")]
        assert (batches[0]["uploaded_by_name"], batches[0]["decided_by_name"]) == (
            "settlement",
            "settlement2",
        )
        paid = await conn.fetch(
            """SELECT p.number, j.memo FROM journal_tx j
                 JOIN postings x ON x.tx_id = j.id AND x.amount > 0
                 JOIN accounts a ON a.id = x.account_id
                 JOIN persons p ON p.id = a.person_id
                WHERE j.kind = 'payroll' ORDER BY p.number"""
        )
        assert [r["number"] for r in paid] == ["T0002", "T0003"]
        assert paid[0]["memo"].endswith("基本工资+绩效")
        assert (check := await check_ledger(conn)).ok, check.violations
