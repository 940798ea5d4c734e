"""Clearing over payments booked by the real payment engine (signed POS requests, cc_pay):
sales and reversals land on the terminal that made them, and the day settles to zero."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import httpx

from campuscard.config import Settings
from campuscard.ledger import postings
from campuscard.platform.actors import SYSTEM
from campuscard.settlement import clearing
from tests.support import make_school
from tests.support_payments import device_call, make_cardholder, make_device, make_merchant, pay


async def test_pos_payments_and_a_reversal_clear_per_terminal(
    settings: Settings,
    pool: asyncpg.Pool[Any],
    conn: asyncpg.Connection[Any],
    client: httpx.AsyncClient,
) -> None:
    # given a canteen (1.00 %) with two tills and a student paying at both, one payment reversed
    school = await make_school(conn)
    canteen, _ = await make_merchant(conn, school.id, "二食堂")
    await conn.execute("UPDATE merchants SET commission_bp = 100 WHERE id = $1", canteen)
    till1 = await make_device(conn, settings, school.id, canteen, "POS-REAL-1")
    till2 = await make_device(conn, settings, school.id, canteen, "POS-REAL-2")
    _, card = await make_cardholder(conn, school.id, "S1", cash=50_000)
    for dev, amount, cid in (
        (till1, "12.50", "r-000001"),
        (till1, "8.00", "r-000002"),
        (till2, "30.00", "r-000003"),
    ):
        r = await pay(client, dev, card, amount, client_id=cid)
        assert r.status_code == 200, r.text
    r = await device_call(
        client, till1, "POST", "/api/v1/terminal/pay/reverse", {"client_id": "r-000002"}
    )
    assert r.status_code == 200 and r.json()["result"] == "reversed", r.text
    day: date = await conn.fetchval("SELECT cc_business_date($1)", school.id)

    # when the day is closed
    await clearing.do_close_day(pool, SYSTEM, school.id, day, early=True)
    st = await clearing.statement(conn, school.id, day, canteen)

    # then each till has its own line, the reversal sits on the till that made it
    lines = {ln["terminal"]: ln for ln in st["lines"]}
    assert (lines["POS-REAL-1"]["sales_count"], lines["POS-REAL-1"]["gross"]) == (2, "20.50")
    assert lines["POS-REAL-1"]["reversals"] == "8.00"
    assert lines["POS-REAL-2"]["gross"] == "30.00"
    assert st["totals"]["net_sales"] == "42.50"
    assert st["totals"]["commission"] == "0.43"  # 42.5 fen -> 43 (half-up)
    assert st["totals"]["payout"] == "42.07"
    assert await postings.merchant_balance(conn, canteen) == 0
