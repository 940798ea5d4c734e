"""A retried request with the same client id replays the first answer and moves money once."""

import asyncio

import httpx

from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from tests.support import login, make_school, make_student, make_user


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

    assert first.status_code == 200, first.text
    assert first.json()["from_balance"] == "87.70"
    for r in again:
        assert r.status_code == 200
        assert r.json() == first.json()
        assert r.headers["idempotent-replayed"] == "true"
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
    ).status_code == 200

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
        assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", purse) == 9900


async def test_failed_attempt_stays_failed(pool: PgPool, client: httpx.AsyncClient) -> None:
    headers, purse, bank = await _setup(pool, client)
    body = {
        "client_id": "adj-0003-fails",
        "from_account": purse,
        "to_account": bank,
        "amount": "100.01",
        "memo": "too much",
    }
    first = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments", json=body, headers=headers
    )
    assert first.status_code == 409
    assert first.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    # money arrives meanwhile; the retry still answers the stored refusal
    async with pool.acquire() as conn:
        school_id = await conn.fetchval("SELECT id FROM schools WHERE code = 'TST'")
        person = await conn.fetchval("SELECT person_id FROM accounts WHERE id = $1", purse)
        from tests.support import fund

        await fund(conn, school_id, person, cash=500)
    retry = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments", json=body, headers=headers
    )
    assert retry.status_code == 409
    assert retry.json() == first.json()
