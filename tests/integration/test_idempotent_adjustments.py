"""A retried request with the same client id replays the first answer and moves money once
(an adjustment is a proposal: the money moves once, when a second person approves it)."""

import asyncio

import httpx

from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from tests.support import login, make_school, make_student, make_user
from tests.support_moneyflows import approve_pending


async def _setup(pool: PgPool, client: httpx.AsyncClient) -> tuple[dict[str, str], int, int]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "settle", "settlement", school.id)
        person = await make_student(conn, school.id, "S1", cash=10_000)
        purse = (await postings.open_purses(conn, school.id, person))["cash"]
        bank = await postings.system_account(conn, school.id, "bank_clearing")
    return await login(client, "settle", "TST"), purse, bank


async def test_retry_replays_identical_response_and_moves_money_once(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    headers, purse, bank = await _setup(pool, client)
    body = {
        "client_id": "adj-0001-retry",
        "from_account": purse,
        "to_account": bank,
        "amount": "12.30",
        "memo": "wrong top-up reversed",
    }

    first = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments", json=body, headers=headers
    )
    again = await asyncio.gather(
        *(
            client.post("/api/v1/admin/schools/TST/ledger/adjustments", json=body, headers=headers)
            for _ in range(5)
        )
    )

    assert first.status_code == 202, first.text
    assert first.json()["status"] == "pending_approval"
    for r in again:
        assert r.status_code == 202
        assert r.json() == first.json()
        assert r.headers["idempotent-replayed"] == "true"
    async with pool.acquire() as conn:
        school_id = await conn.fetchval("SELECT id FROM schools WHERE code = 'TST'")
        assert await conn.fetchval("SELECT count(*) FROM approvals") == 1
    [decided] = await approve_pending(pool, client, school_id)
    assert decided["result"]["from_balance"] == "87.70"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", purse) == 8770
        assert await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'adjustment'") == 1
        assert (await check_ledger(conn)).ok


async def test_same_id_with_different_payload_is_refused(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    headers, purse, bank = await _setup(pool, client)
    body = {
        "client_id": "adj-0002-reuse",
        "from_account": purse,
        "to_account": bank,
        "amount": "1.00",
        "memo": "x",
    }
    assert (
        await client.post(
            "/api/v1/admin/schools/TST/ledger/adjustments", json=body, headers=headers
        )
    ).status_code == 202

    r = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments",
        json=body | {"amount": "2.00"},
        headers=headers,
    )

    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "IDEMPOTENCY_KEY_REUSED",
        "message": "client_id 'adj-0002-reuse' was already used for a different request",
        "field": "client_id",
    }
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", purse) == 10_000


async def test_failed_attempt_stays_failed(pool: PgPool, client: httpx.AsyncClient) -> None:
    headers, purse, _bank = await _setup(pool, client)
    body = {
        "client_id": "adj-0003-fails",
        "from_account": purse,
        "to_account": 999_999_999,
        "amount": "1.00",
        "memo": "no such account",
    }
    first = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments", json=body, headers=headers
    )
    assert first.status_code == 404
    assert first.json()["error"]["field"] == "to_account"
    retry = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments", json=body, headers=headers
    )
    assert retry.status_code == 404
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"


async def test_an_approval_the_ledger_refuses_moves_nothing(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    headers, purse, bank = await _setup(pool, client)
    body = {
        "client_id": "adj-0004-short",
        "from_account": purse,
        "to_account": bank,
        "amount": "100.01",
        "memo": "too much",
    }
    proposed = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments", json=body, headers=headers
    )
    assert proposed.status_code == 202, proposed.text
    async with pool.acquire() as conn:
        await make_user(
            conn, "checker", "settlement", await conn.fetchval("SELECT id FROM schools")
        )
    checker = await login(client, "checker", "TST")
    approval_id = proposed.json()["approval"]["id"]
    r = await client.post(
        f"/api/v1/admin/schools/TST/approvals/{approval_id}/decision",
        json={"approve": True},
        headers=checker,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", purse) == 10_000
        assert await conn.fetchval("SELECT status FROM approvals") == "pending"
