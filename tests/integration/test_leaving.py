"""Leaving school: the balance goes to the bound bank card or over the counter; the account
closes; subsidies return to the fund."""

from __future__ import annotations

import httpx

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger.checks import check_ledger
from campuscard.platform import outbox
from campuscard.platform.tasks import load_job_modules
from tests.support import ROOT, fund, login, make_student, make_user
from tests.support_moneyflows import (
    PAN,
    add_card,
    api_client,
    balances,
    bank_world,
    cid,
    holder_with_card,
    open_drawer,
    system_balance,
)


async def _operator(pool: PgPool, client: httpx.AsyncClient, school_id: int) -> dict[str, str]:
    async with pool.acquire() as conn:
        await make_user(conn, "cashier", "settlement", school_id)
    return await login(client, "cashier", "TST")


async def test_leaving_pays_to_the_bank_card_and_closes(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, cash=12_345, bank_balance=0)
        async with pool.acquire() as conn:
            await fund(conn, school_id, person, subsidy=1_000)
        headers = await _operator(pool, client, school_id)
        async with api_client(wired, pool) as api:
            body = {"client_id": cid(), "person_number": "S001", "method": "bank"}
            r = await api.post("/api/v1/counter/TST/leavings", json=body, headers=headers)
            assert r.status_code == 201, r.text
            assert r.json()["status"] == "closed"
            assert r.json()["subsidy_returned"] == "10.00"
            again = await api.post("/api/v1/counter/TST/leavings", json=body, headers=headers)
            assert again.headers["Idempotent-Replayed"] == "true"
        assert sim.balance_of(PAN) == 12_345
        assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
        person_row = await pool.fetchrow(
            "SELECT account_status, status FROM persons WHERE id = $1", person
        )
        assert tuple(person_row) == ("closed", "left")
        assert -await system_balance(pool, school_id, "bank_clearing") == sim.held() == -12_345
        async with pool.acquire() as conn:
            assert (await check_ledger(conn)).ok


async def test_a_payout_the_bank_never_confirms_puts_the_money_back(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, cash=5_000, bank_balance=0)
        headers = await _operator(pool, client, school_id)
        sim.inject("0200", "drop")  # the bank credits the card but the answer is lost
        async with api_client(wired, pool) as api:
            r = await api.post(
                "/api/v1/counter/TST/leavings",
                json={"client_id": cid(), "person_number": "S001", "method": "bank"},
                headers=headers,
            )
        assert r.json()["status"] == "payout_failed"
        assert sim.balance_of(PAN) == 0  # reversed at the bank
        assert await balances(pool, person) == {"cash": 5_000, "subsidy": 0}
        status = await pool.fetchval("SELECT account_status FROM persons WHERE id = $1", person)
        assert status == "active"
        assert await system_balance(pool, school_id, "bank_clearing") == 0


async def test_leaving_at_the_counter(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, cash=2_000)
        async with pool.acquire() as conn:
            await add_card(conn, school_id, person, "20260001")
            await make_student(conn, school_id, "S002")
        headers = await _operator(pool, client, school_id)
        async with api_client(wired, pool) as api:
            await open_drawer(pool, api, headers, school_id, "10.00")
            leave = {
                "client_id": cid(),
                "person_number": "S001",
                "method": "counter",
                "identity": {
                    "method": "campus_card",
                    "card_number": "20260001",
                    "holder_present": True,
                },
            }
            short = await api.post("/api/v1/counter/TST/leavings", json=leave, headers=headers)
            assert short.json()["error"]["code"] == "DRAWER_SHORT"
            await api.post(
                "/api/v1/counter/TST/deposits",
                json={"client_id": cid(), "person_number": "S002", "amount": "15.00"},
                headers=headers,
            )
            r = await api.post(
                "/api/v1/counter/TST/leavings",
                json={
                    "client_id": cid(),
                    "person_number": "S001",
                    "method": "counter",
                    "identity": {
                        "method": "campus_card",
                        "card_number": "20260001",
                        "holder_present": True,
                    },
                },
                headers=headers,
            )
            assert r.status_code == 201, r.text
            summary = (await api.get("/api/v1/counter/TST/drawer", headers=headers)).json()
        assert summary["by_kind"]["leaving_payout"]["amount"] == "20.00"
        assert summary["expected_cash"] == "5.00"
        assert (
            await pool.fetchval("SELECT account_status FROM persons WHERE id = $1", person)
            == "closed"
        )


async def test_a_cancelled_cards_balance_goes_to_the_bound_bank_card(
    pool: PgPool, settings: Settings
) -> None:
    with bank_world(settings) as (wired, sim):
        school_id, person = await holder_with_card(pool, wired, sim, cash=4_321, bank_balance=0)
        _, other = await holder_with_card(
            pool, wired, sim, cash=500, number="S002", name="韩梅梅", pan="4111111111111111"
        )
        await pool.execute(
            "UPDATE bank_cards SET status = 'unbound', unbound_at = now() WHERE person_id = $1",
            other,
        )
        async with pool.acquire() as conn:
            for who, number in ((person, "40000001"), (other, "40000002")):
                card = await lifecycle.issue_card(
                    conn, ROOT, person_id=who, number=number, uid=f"CC00000{number[-1]}"
                )
                await lifecycle.cancel_card(
                    conn, ROOT, card["id"], route="bank_clearing", reason="left"
                )
        load_job_modules()
        assert await outbox.deliver_batch(pool, wired) == 2
        # then: the bound card got its money; the other waits in suspense for the counter
        assert sim.balance_of(PAN) == 4_321
        row = await pool.fetchrow("SELECT origin, status FROM bank_transfers")
        assert tuple(row) == ("card_cancel", "posted")
        assert await system_balance(pool, school_id, "suspense") == 500
        assert -await system_balance(pool, school_id, "bank_clearing") == sim.held() == -4_321
        async with pool.acquire() as conn:
            assert (await check_ledger(conn)).ok
