"""Seed 001: a flood in the tuition channel does not slow the canteen. Thirty tuition payments
arrive at once while their bookings hang (their payers' purses are locked, as a slow bank or a
hot row would); without per-channel limits they would take every database connection and the
lunch queue would wait. With them, tuition holds two slots, the surplus is refused with 429 and
Retry-After, and canteen payments go through within their latency budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.app import create_app
from campuscard.config import Settings
from tests.support import make_school
from tests.support_payments import make_cardholder, make_device, make_merchant, pay

CANTEEN_BUDGET_SECONDS = 1.5  # one canteen payment, on a loaded 2-core test machine
TUITION_FLOOD = 30  # more than the database pool (20) holds


@pytest.fixture
async def flood_client(
    settings: Settings, pool: asyncpg.Pool[Any]
) -> AsyncIterator[httpx.AsyncClient]:
    limited = settings.model_copy(
        update={"channel_limits": {"tuition": {"concurrent": 2, "queue": 4, "wait_seconds": 0.5}}}
    )
    app = create_app(limited, pool=pool)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def test_tuition_flood_leaves_the_canteen_fast(
    settings: Settings,
    pool: asyncpg.Pool[Any],
    conn: asyncpg.Connection[Any],
    flood_client: httpx.AsyncClient,
) -> None:
    # given a tuition office and a canteen, each with a POS, and their payers
    school = await make_school(conn)
    tuition_id, _ = await make_merchant(conn, school.id, "学费处", channel="tuition")
    canteen_id, _ = await make_merchant(conn, school.id, "一食堂", channel="canteen")
    tuition_pos = await make_device(conn, settings, school.id, tuition_id, "POS-TUITION-1")
    canteen_pos = await make_device(conn, settings, school.id, canteen_id, "POS-CANTEEN-1")
    tuition_payers = [
        await make_cardholder(conn, school.id, f"T{i:03d}", cash=100_000)
        for i in range(TUITION_FLOOD)
    ]
    canteen_payers = [
        await make_cardholder(conn, school.id, f"C{i:03d}", cash=10_000) for i in range(8)
    ]

    # and the tuition bookings hang: their payers' purses are locked by another transaction
    async with pool.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "SELECT id FROM accounts WHERE person_id = ANY($1::bigint[]) FOR UPDATE",
            [p for p, _ in tuition_payers],
        )

        # when thirty tuition payments arrive at once
        flood = [
            asyncio.create_task(
                pay(flood_client, tuition_pos, card, "20.00", client_id=f"tuition-{i:04d}")
            )
            for i, (_, card) in enumerate(tuition_payers)
        ]
        await asyncio.sleep(0.2)

        # then the canteen still pays, each within its budget
        latencies = []
        for i, (_, card) in enumerate(canteen_payers):
            started = time.perf_counter()
            r = await pay(flood_client, canteen_pos, card, "12.50", client_id=f"lunch-{i:04d}")
            latencies.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
        assert max(latencies) < CANTEEN_BUDGET_SECONDS, latencies

        await asyncio.sleep(0.6)  # the queued tuition requests give up their wait
        await tx.rollback()
    answers = await asyncio.gather(*flood)

    # and tuition got its two slots; the rest were refused in the error format, booking nothing
    ok = [r for r in answers if r.status_code == 200]
    busy = [r for r in answers if r.status_code == 429]
    assert len(ok) == 2 and len(busy) == TUITION_FLOOD - 2, [r.status_code for r in answers]
    err = busy[0].json()["error"]
    assert err["code"] == "CHANNEL_BUSY" and err["field"] == "channel"
    assert err["details"]["channel"] == "tuition"
    assert int(busy[0].headers["Retry-After"]) >= 1
    booked = await conn.fetchval("SELECT count(*) FROM payments WHERE merchant_id = $1", tuition_id)
    assert booked == 2

    # and a refused payment retried with the same client id is booked exactly once
    refused_index = next(i for i, r in enumerate(answers) if r.status_code == 429)
    _, card = tuition_payers[refused_index]
    retry = await pay(
        flood_client, tuition_pos, card, "20.00", client_id=f"tuition-{refused_index:04d}"
    )
    again = await pay(
        flood_client, tuition_pos, card, "20.00", client_id=f"tuition-{refused_index:04d}"
    )
    assert retry.status_code == 200 and again.status_code == 200
    assert retry.json() == again.json()
    assert (
        await conn.fetchval("SELECT count(*) FROM payments WHERE merchant_id = $1", tuition_id) == 3
    )
