"""Amounts arrive as yuan strings; everything else is refused with the field named."""

import httpx
import pytest

from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from tests.support import login, make_school, make_student, make_user


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (12.3, "AMOUNT_INVALID"),
        (1230, "AMOUNT_INVALID"),
        ("12.305", "AMOUNT_INVALID"),
        ("-1.00", "AMOUNT_INVALID"),
        ("0.00", "AMOUNT_NOT_POSITIVE"),
        ("abc", "AMOUNT_INVALID"),
        ("1e3", "AMOUNT_INVALID"),
        (None, "AMOUNT_INVALID"),
        ("NaN", "AMOUNT_INVALID"),
    ],
)
async def test_bad_amounts_are_refused_naming_the_field(
    pool: PgPool, client: httpx.AsyncClient, amount: object, code: str
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "settle", "settlement", school.id)
        person = await make_student(conn, school.id, "S1", cash=10_000)
        purse = (await postings.open_purses(conn, school.id, person))["cash"]
        bank = await postings.system_account(conn, school.id, "bank_clearing")
    headers = await login(client, "settle", "TST")

    r = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments",
        json={
            "client_id": "money-input-1",
            "from_account": purse,
            "to_account": bank,
            "amount": amount,
            "memo": "m",
        },
        headers=headers,
    )

    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["field"] == "amount"
    assert err["message"].startswith("amount")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind='adjustment'") == 0


async def test_float_where_an_id_belongs_is_refused(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "settle", "settlement", school.id)
    headers = await login(client, "settle", "TST")
    r = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments",
        json={
            "client_id": "money-input-2",
            "from_account": 1.0,
            "to_account": 2,
            "amount": "1.00",
            "memo": "m",
        },
        headers=headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "from_account"


async def test_malformed_json_is_a_clear_error(pool: PgPool, client: httpx.AsyncClient) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "settle", "settlement", school.id)
    headers = await login(client, "settle", "TST")
    r = await client.post(
        "/api/v1/admin/schools/TST/ledger/adjustments",
        content=b"{not json",
        headers=headers | {"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"
