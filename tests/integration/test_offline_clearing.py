"""Clearing counts offline sales per till and per merchant from the records: a day of offline
uploads (records waiting for counters from tills of another merchant, resends, an overdraft)
clears to the same figures as when every till booked a journal transaction of its own (the
expected lines below are what that clearing gave for the same uploads)."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger import checks, postings
from campuscard.offline import ingest
from campuscard.platform.actors import SYSTEM
from campuscard.settlement import clearing
from tests.support import make_school
from tests.support_offline import CardArea, record, upload
from tests.support_payments import Device, make_cardholder, make_device, make_merchant


async def _day_of_uploads(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> tuple[int, dict[str, int]]:
    """Two canteens (one with two shards and three tills, one with a till), three cards;
    returns the school and the merchants by name."""
    async with pool.acquire() as conn:
        school = await make_school(conn)
        first, _ = await make_merchant(conn, school.id, "一食堂", shards=2)
        second, _ = await make_merchant(conn, school.id, "二食堂")
        await conn.execute("UPDATE merchants SET commission_bp = 150 WHERE id = $1", first)
        await conn.execute("UPDATE merchants SET commission_bp = 100 WHERE id = $1", second)
        a1, a2, a3 = [
            await make_device(conn, settings, school.id, first, f"POS-CL-A{n}") for n in (1, 2, 3)
        ]
        b1 = await make_device(conn, settings, school.id, second, "POS-CL-B1")
        _, x = await make_cardholder(conn, school.id, "X1", cash=10_000)
        _, y = await make_cardholder(conn, school.id, "Y1", cash=10_000)
        _, z = await make_cardholder(conn, school.id, "Z1", cash=300)
    ax, ay, az = CardArea(), CardArea(), CardArea()
    x1 = record(b1, x, ax, 1, 1_210)  # x's counter 1 is made at the other canteen
    x2 = record(a1, x, ax, 1, 730)
    x3 = record(a2, x, ax, 1, 455)
    y1 = record(a1, y, ay, 2, 1_000)
    y2 = record(a2, y, ay, 2, 333)
    y3 = record(a1, y, ay, 3, 1_999)
    z1 = record(a3, z, az, 1, 200)
    z2 = record(a3, z, az, 2, 250)  # 50 of it overdrawn
    sends: list[tuple[Device, list[dict[str, Any]]]] = [
        (a1, [y1, x2]),  # x2 waits for x's counter 1
        (a2, [x3, y2]),  # x3 waits too
        (b1, [x1]),  # settles x1, and a1's and a2's waiting records
        (a3, [z2, z1]),
        (a1, [x2, y1]),  # resent
        (a1, [y3]),
    ]
    for dev, batch in sends:
        await upload(client, dev, batch)
    return school.id, {"一食堂": first, "二食堂": second}


async def test_a_day_of_offline_uploads_clears_per_till_as_when_each_till_booked_its_own(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a day of offline uploads whose records settle in other tills' uploads
    school_id, merchants = await _day_of_uploads(pool, settings, client)
    async with pool.acquire() as conn:
        day: date = await conn.fetchval("SELECT cc_business_date($1)", school_id)

    # when the day is closed
    await clearing.do_close_day(pool, SYSTEM, school_id, day, early=True)

    # then each till has its sales (one per settling upload, as before) and its money
    async with pool.acquire() as conn:
        lines = {}
        totals = {}
        for name, merchant_id in merchants.items():
            st = await clearing.statement(conn, school_id, day, merchant_id)
            totals[name] = {k: st["totals"][k] for k in ("sales_count", "gross", "payout")}
            totals[name]["commission"] = st["totals"]["commission"]
            for ln in st["lines"]:
                lines[ln["terminal"]] = (ln["sales_count"], ln["gross"], ln["commission"])
        assert lines == {
            "POS-CL-A1": (3, "37.29", "0.56"),
            "POS-CL-A2": (2, "7.88", "0.12"),
            "POS-CL-A3": (1, "4.50", "0.07"),
            "POS-CL-B1": (1, "12.10", "0.12"),
        }
        assert totals == {
            "一食堂": {"sales_count": 6, "gross": "49.67", "payout": "48.92", "commission": "0.75"},
            "二食堂": {"sales_count": 1, "gross": "12.10", "payout": "11.98", "commission": "0.12"},
        }
        # every shard was emptied into the payable, and the ledger holds
        for merchant_id in merchants.values():
            assert await postings.merchant_balance(conn, merchant_id) == 0
        report = await checks.check_ledger(conn)
        assert report.ok, report.violations


async def test_overdue_records_of_two_tills_clear_per_till_from_their_shards_bookings(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given two tills of a merchant with two shards (each till its own), whose records wait
    # for a counter that never comes
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant, _ = await make_merchant(conn, school.id, "三食堂", shards=2)
        t1 = await make_device(conn, settings, school.id, merchant, "POS-OD-1")
        t2 = await make_device(conn, settings, school.id, merchant, "POS-OD-2")
        _, card = await make_cardholder(conn, school.id, "W1", cash=10_000)
    area = CardArea(counter=1)  # counter 1 never arrives
    await upload(client, t1, [record(t1, card, area, 1, 400)])
    await upload(client, t2, [record(t2, card, area, 1, 600), record(t2, card, area, 2, 50)])

    # when the school's wait is over and the periodic job settles them (no uploading till)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE offline_records SET received_at = now() - interval '4 days' "
            "WHERE school_id = $1",
            school.id,
        )
        assert await ingest.do_settle_overdue_school(conn, school.id) == 3
        day: date = await conn.fetchval("SELECT cc_business_date($1)", school.id)
        # one booking per shard credited: the tills' ids fall on different shards
        shards = await conn.fetchval(
            """SELECT count(DISTINCT p.account_id) FROM journal_tx j
                 JOIN postings p ON p.school_id = j.school_id AND p.tx_id = j.id
                 JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id
                WHERE j.school_id = $1 AND j.kind = 'offline_payment' AND a.kind = 'merchant'""",
            school.id,
        )
        bookings = await conn.fetchval(
            "SELECT count(*) FROM journal_tx WHERE school_id = $1 AND kind = 'offline_payment'",
            school.id,
        )
        assert (bookings, shards) == (2, 2)
    await clearing.do_close_day(pool, SYSTEM, school.id, day, early=True)

    # then each till's sales are its own, once each
    async with pool.acquire() as conn:
        st = await clearing.statement(conn, school.id, day, merchant)
        lines = {ln["terminal"]: (ln["sales_count"], ln["gross"]) for ln in st["lines"]}
        assert lines == {"POS-OD-1": (1, "4.00"), "POS-OD-2": (1, "6.50")}
        assert await postings.merchant_balance(conn, merchant) == 0
