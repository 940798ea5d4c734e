"""The demo campus has bills in every state: paid, part-paid, by instalments with a late fee,
by bank transfer with the overpayment back on the card, deferred, overdue with holds, and a
waiver waiting for a second person; loading it twice changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg

from campuscard import demo
from campuscard.bills import queries
from campuscard.ledger.checks import check_ledger


async def test_demo_bills_in_several_states(conn: asyncpg.Connection[Any]) -> None:
    campus = await demo.load_demo(conn)
    await demo.load_demo(conn)  # idempotent
    states = dict(await conn.fetch("SELECT status, count(*) FROM bills GROUP BY status"))
    assert states["paid"] == 2 and states["open"] == 22
    methods = sorted(r["method"] for r in await conn.fetch("SELECT method FROM bill_payments"))
    assert methods == ["bank", "card", "card", "card"]
    assert await conn.fetchval("SELECT sum(returned) FROM bill_payments") == 10_000
    assert await conn.fetchval("SELECT count(*) FROM bill_lines WHERE kind = 'late_fee'") > 0
    assert await conn.fetchval("SELECT count(*) FROM bills WHERE deferred_until IS NOT NULL") == 1
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM approvals WHERE kind = 'bill_adjustment' AND status = 'pending'"
        )
        == 1
    )
    summary = await queries.arrears_summary(conn, campus.school_id)
    assert summary["active_holds"] > 0 and summary["by_class"]
    assert await conn.fetchval("SELECT count(*) FROM utility_meters") == 2
    assert (await check_ledger(conn)).ok
