"""Automatic top-up (seed 003): below 50 -> up to 200 from the bound bank card; never above
the target, at most one per fall below the threshold, failures notified and not looped."""

from __future__ import annotations

import asyncio

import httpx

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.money import Money
from campuscard.moneyflows import autotopup
from campuscard.platform.actors import Actor
from tests.support import fund, login, make_user
from tests.support_moneyflows import PAN, api_client, balances, bank_world, holder_with_card


async def _enable(
    pool: PgPool, person: int, threshold: str = "50.00", target: str = "200.00"
) -> None:
    await autotopup.do_set_auto_topup(
        pool,
        Actor(name="holder", person_id=person),
        person_id=person,
        threshold=Money.parse(threshold),
        target=Money.parse(target),
        enabled=True,
    )


async def _spend(pool: PgPool, school_id: int, person: int, fen: int) -> None:
    """Money leaves the cash purse (a stand-in for a canteen payment)."""
    async with pool.acquire() as conn, conn.transaction():
        purse = await conn.fetchval(
            "SELECT id FROM accounts WHERE person_id = $1 AND purse = 'cash'", person
        )
        sink = await conn.fetchval(
            "SELECT id FROM accounts WHERE school_id = $1 AND system_code = 'suspense'", school_id
        )
        await conn.execute(
            "SELECT cc_post($1, 'test_spend', NULL, '', 'test', $2::bigint[], $3::bigint[])",
            school_id,
            [purse, sink],
            [-fen, fen],
        )


async def test_settings_through_the_api(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim)
        async with pool.acquire() as conn:
            await make_user(conn, "stu1", "cardholder", school_id, person_id=person)
        headers = await login(client, "stu1", "TST")
        async with api_client(wired, pool) as api:
            url = f"/api/v1/persons/{person}/auto-topup"
            bad = await api.put(
                url, json={"threshold": "50.00", "target": "40.00"}, headers=headers
            )
            assert (bad.status_code, bad.json()["error"]["field"]) == (422, "target")
            r = await api.put(url, json={"threshold": "50.00", "target": "200.00"}, headers=headers)
            assert r.status_code == 200, r.text
            got = (await api.get(url, headers=headers)).json()["auto_topup"]
            assert (got["threshold"], got["target"], got["enabled"]) == ("50.00", "200.00", True)


async def test_tops_up_to_target_once_per_fall(pool: PgPool, settings: Settings) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, cash=6_000)
        await _enable(pool, person)
        assert await autotopup.run_auto_topups(pool, wired) == []  # 60.00: above threshold
        await _spend(pool, school_id, person, 3_000)  # 30.00 left
        # many scans at once: exactly one top-up
        results = await asyncio.gather(*(autotopup.run_auto_topups(pool, wired) for _ in range(5)))
        assert sum(len(r) for r in results) == 1
        assert await balances(pool, person) == {"cash": 20_000, "subsidy": 0}
        assert await autotopup.run_auto_topups(pool, wired) == []
        # the next fall triggers the next one
        await _spend(pool, school_id, person, 16_001)  # 39.99 left
        assert len(await autotopup.run_auto_topups(pool, wired)) == 1
        assert await balances(pool, person) == {"cash": 20_000, "subsidy": 0}
        assert sim.balance_of(PAN) == 100_000 - 17_000 - 16_001
        async with pool.acquire() as conn:
            assert (await check_ledger(conn)).ok


async def test_never_overshoots_when_money_arrives_meanwhile(
    pool: PgPool, settings: Settings
) -> None:
    with bank_world(settings, bank_timeout_seconds=2.0) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, cash=1_000)
        await _enable(pool, person)
        sim.inject("0200", "delay:0.5")  # the bank is slow to answer
        running = asyncio.create_task(autotopup.run_auto_topups(pool, wired))
        await asyncio.sleep(0.2)
        async with pool.acquire() as conn:
            await fund(conn, school_id, person, cash=5_000)  # 60.00 arrives at the counter
        assert len(await running) == 1
        # 10 + 50 + 190 would be 250 > 200: the load was reversed instead of booked
        assert await balances(pool, person) == {"cash": 6_000, "subsidy": 0}
        row = await pool.fetchrow("SELECT status, note FROM bank_transfers")
        assert row["status"] == "reversed"
        assert sim.balance_of(PAN) == 100_000 and sim.held() == 0
        async with pool.acquire() as conn:
            assert (await check_ledger(conn)).ok


async def test_failure_is_notified_and_not_retried_in_a_loop(
    pool: PgPool, settings: Settings
) -> None:
    with bank_world(settings) as (wired, sim):
        _, person = await holder_with_card(pool, wired, sim, cash=1_000, bank_balance=5_000)
        await _enable(pool, person)
        assert len(await autotopup.run_auto_topups(pool, wired)) == 1  # declined: 51
        for _ in range(3):
            assert await autotopup.run_auto_topups(pool, wired) == []
        assert await pool.fetchval("SELECT count(*) FROM bank_transfers") == 1
        assert await pool.fetchval("SELECT status FROM bank_transfers") == "failed"
        told = await pool.fetch(
            "SELECT kind FROM notifications WHERE person_id = $1 AND kind = 'auto_topup_failed'",
            person,
        )
        assert len(told) == 1
        assert await balances(pool, person) == {"cash": 1_000, "subsidy": 0}
