"""The demo campus has a shower, a laundry machine and a campus bus with history, one shower
running with money on hold, and an offline-capable till with an uploaded outage; loading it
twice changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg

from campuscard import demo
from campuscard.config import Settings
from campuscard.ledger.checks import check_ledger
from campuscard.offline import demo as offline_demo
from campuscard.offline import rules
from campuscard.platform import signing


async def test_demo_devices_with_history_a_running_shower_and_an_offline_till(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    key = settings.master_key.get_secret_value()
    await demo.load_demo(conn, master_key=key)
    await demo.load_demo(conn, master_key=key)  # idempotent
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

    # the offline till: yesterday's outage in two uploads, the second resending two records
    uploads = await conn.fetch(
        """SELECT received, accepted, duplicates, rejected, chain_breaks, waiting, missing
             FROM offline_uploads ORDER BY id"""
    )
    assert [tuple(u) for u in uploads] == [(6, 6, 0, 0, 0, 0, 0), (5, 2, 2, 1, 1, 1, 1)]
    states = dict(await conn.fetch("SELECT state, count(*) FROM offline_records GROUP BY state"))
    assert states == {"settled": 7, "refused": 1, "waiting": 1}
    # every record carries the till's real signature
    sn = offline_demo.SN
    till_key = signing.derive_terminal_key(key, sn, 1)
    for r in await conn.fetch("SELECT * FROM offline_records"):
        record = rules.Record(
            r["seq"],
            r["card_number"],
            r["card_uid"],
            r["amount"],
            int(r["made_at"].timestamp()),
            r["card_counter"],
            r["total_before"],
            r["total_after"],
            1,
            r["signature"],
        )
        assert rules.signature_ok(till_key, sn, record)
    assert (await check_ledger(conn)).ok
