"""The demo campus's past month: booked through the real engine at past instants, the finished
days closed, the ledger whole, and the engine's clock back at now afterwards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from campuscard import demo
from campuscard.ledger import checks
from campuscard.people import queries as people_queries

DAYS = 4


async def test_a_fresh_demo_has_a_past_that_the_charts_and_reports_read(
    conn: asyncpg.Connection[Any],
) -> None:
    # when the demo campus is created with a few days of history
    campus = await demo.load_demo(conn, history_days=DAYS)
    again = await demo.load_demo(conn, history_days=DAYS)  # found, not booked twice
    history = campus.history
    assert history is not None and again.history is None and not again.created
    today = await conn.fetchval("SELECT cc_business_date($1)", campus.school_id)

    # then every day of it has meals at meal times, each payment on its own business day
    per_day = await conn.fetch(
        """SELECT business_date, count(*) AS n,
                  min((created_at AT TIME ZONE 'Asia/Shanghai')::time) AS first,
                  max((created_at AT TIME ZONE 'Asia/Shanghai')::time) AS last
             FROM payments WHERE school_id = $1
              AND client_id NOT LIKE 'watch-%'  -- monitoring's episodes (one in the night)
            GROUP BY 1 ORDER BY 1""",
        campus.school_id,
    )
    days = [r["business_date"] for r in per_day]
    assert days[:DAYS] == [today - timedelta(days=DAYS - i) for i in range(DAYS)]
    assert all(r["n"] >= 40 for r in per_day[:DAYS])
    assert all(r["first"].hour >= 7 and r["last"].hour <= 22 for r in per_day[:DAYS])
    assert history.payments == await conn.fetchval(
        "SELECT count(*) FROM payments WHERE school_id = $1 AND business_date < $2 "
        "AND client_id NOT LIKE 'watch-%'",  # monitoring's episodes: campus.watched.booked
        campus.school_id,
        today,
    )
    assert history.refused == 0

    # and the journal agrees with the payments: same business day, same instant
    assert not await conn.fetchval(
        """SELECT count(*) FROM payments p JOIN journal_tx j ON j.id = p.tx_id
            WHERE p.school_id = $1
              AND (j.business_date <> p.business_date OR j.created_at <> p.created_at)""",
        campus.school_id,
    )
    # the parent's children were topped up by the parent, a refund and a reversal happened
    kinds = {
        r["kind"]: r["n"]
        for r in await conn.fetch(
            """SELECT kind, count(*) AS n FROM journal_tx
                WHERE school_id = $1 AND business_date < $2 GROUP BY kind""",
            campus.school_id,
            today,
        )
    }
    assert campus.watched is not None
    assert kinds["payment"] == history.payments + campus.watched.booked
    assert kinds.get("topup_online", 0) == history.topups >= 1
    assert kinds.get("refund", 0) == history.refunds >= 1
    assert kinds.get("payment_reversal", 0) == history.reversals == 1
    assert kinds.get("subsidy_issue", 0) == history.subsidy_batches == 1
    assert kinds.get("opening_balance", 0) == demo.STUDENTS

    # and the finished days are closed, each with its figures
    closed = await conn.fetch(
        "SELECT business_date FROM settlement_days WHERE school_id = $1 ORDER BY 1",
        campus.school_id,
    )
    assert [r["business_date"] for r in closed] == history.closed_days == days[:DAYS]

    # and the first student's phone chart shows spending on the past days
    person = await conn.fetchval(
        "SELECT id FROM persons WHERE school_id = $1 AND number = $2",
        campus.school_id,
        demo.student_number(1),
    )
    chart = await people_queries.daily_spending(
        conn, person, school_id=campus.school_id, days=DAYS + 1
    )
    assert sum(1 for d in chart[:DAYS] if d["fen"] > 0) >= DAYS - 1

    # and the ledger holds, and the engine books at now again
    assert (await checks.check_ledger(conn)).ok
    assert await conn.fetchval("SELECT now() - cc_clock()") == timedelta(0)


async def test_the_engine_refuses_to_book_in_the_future(conn: asyncpg.Connection[Any]) -> None:
    async with conn.transaction():
        await conn.execute("SELECT set_config('campuscard.book_at', '2999-01-01T00:00Z', true)")
        with pytest.raises(asyncpg.CheckViolationError, match="in the future"):
            await conn.fetchval("SELECT cc_clock()")
