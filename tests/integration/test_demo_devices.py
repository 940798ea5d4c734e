"""The demo campus has a shower, a laundry machine and a campus bus with history, and one
shower running with money on hold; loading it twice changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg

from campuscard import demo
from campuscard.ledger.checks import check_ledger


async def test_demo_devices_with_history_and_a_running_shower(
    conn: asyncpg.Connection[Any],
) -> None:
    await demo.load_demo(conn)
    await demo.load_demo(conn)  # idempotent
    kinds = dict(
        await conn.fetch(
            "SELECT t.sn, m.kind FROM meters m JOIN terminals t ON t.id = m.terminal_id"
        )
    )
    assert kinds == {
        "SHOWER-DEMO-001": "shower",
        "LAUNDRY-DEMO-001": "laundry",
        "BUS-DEMO-001": "bus",
    }
    states = dict(await conn.fetch("SELECT state, count(*) FROM meter_sessions GROUP BY state"))
    assert states == {"ended": 4, "open": 1}
    # 540 s of shower at 0.5 fen = 2.70, a 4.00 cycle, two 1.00 bus trips
    assert await conn.fetchval("SELECT sum(amount) FROM meter_sessions") == 270 + 400 + 200
    # the running shower (the online store's paid orders hold money of their own)
    held = "SELECT sum(amount) FROM holds WHERE state = 'pending' AND owner_kind = 'device_session'"
    assert await conn.fetchval(held) == 1000
    assert (await check_ledger(conn)).ok
