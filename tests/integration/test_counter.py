"""The settlement-center counter: cash in and out, subsidies, zeroing, the drawer."""

from __future__ import annotations

import httpx

from campuscard.db.pool import PgPool
from campuscard.ledger.checks import check_ledger
from tests.support import login, make_user
from tests.support_moneyflows import (
    approve_pending,
    balances,
    cid,
    counter_setup,
    open_drawer,
    system_balance,
)

CARD_ID = {"method": "campus_card", "card_number": "20260001", "holder_present": True}
URL = "/api/v1/counter/TST"


async def test_cash_operations_need_an_open_drawer(pool: PgPool, client: httpx.AsyncClient) -> None:
    headers, _, person = await counter_setup(pool, client)
    r = await client.post(
        f"{URL}/deposits",
        json={"client_id": cid(), "person_number": "S001", "amount": "10.00"},
        headers=headers,
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "DRAWER_NOT_OPEN"
    assert await balances(pool, person) == {"cash": 0, "subsidy": 0}


async def test_day_at_the_counter_balances_against_the_drawer(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given an operator who opened the drawer with 500.00
    headers, school_id, person = await counter_setup(pool, client)
    r = await open_drawer(pool, client, headers, school_id, "500.00")
    assert r.status_code == 201, r.text
    # when: deposit 300.00 (retried once), withdraw 120.50, grant 50.00 subsidy, deduct 20.00
    deposit = {"client_id": cid(), "person_number": "S001", "amount": "300.00"}
    first = await client.post(f"{URL}/deposits", json=deposit, headers=headers)
    again = await client.post(f"{URL}/deposits", json=deposit, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    r = await client.post(
        f"{URL}/withdrawals",
        json={"client_id": cid(), "person_number": "S001", "amount": "120.50", "identity": CARD_ID},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["balances"]["cash"] == "179.50"
    for path, amount in (("subsidy-grants", "50.00"), ("subsidy-deductions", "20.00")):
        r = await client.post(
            f"{URL}/{path}",
            json={"client_id": cid(), "person_number": "S001", "amount": amount, "memo": "助学"},
            headers=headers,
        )
        # a grant waits for a second person; a deduction does not
        assert r.status_code == (202 if path == "subsidy-grants" else 201), r.text
        if r.status_code == 202:
            await approve_pending(pool, client, school_id)
    # then the drawer expects 500 + 300 - 120.50 = 679.50
    summary = (await client.get(f"{URL}/drawer", headers=headers)).json()
    assert summary["opening_float"] == "500.00"
    assert summary["cash_in"] == "300.00"
    assert summary["cash_out"] == "120.50"
    assert summary["expected_cash"] == "679.50"
    assert summary["by_kind"]["subsidy_grant"]["amount"] == "50.00"
    assert await balances(pool, person) == {"cash": 17950, "subsidy": 3000}
    assert await system_balance(pool, school_id, "cash_desk") == -17950
    # a short drawer must be explained, and the difference is recorded
    r = await client.post(f"{URL}/drawer/close", json={"counted_cash": "679.00"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "note"
    r = await client.post(
        f"{URL}/drawer/close",
        json={"counted_cash": "679.00", "note": "0.50 coin missing"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["difference"] == "-0.50"
    assert r.json()["status"] == "closed"
    # every counter operation is in the audit log
    actions = [
        row["action"]
        for row in await pool.fetch(
            "SELECT action FROM audit_log WHERE school_id = $1 AND action LIKE 'counter.%' "
            "ORDER BY id",
            school_id,
        )
    ]
    assert actions == [
        "counter.drawer_open",
        "counter.drawer_float",  # the counted 500.00, approved by a second person
        "counter.deposit",
        "counter.withdrawal",
        "counter.subsidy_grant",
        "counter.subsidy_deduct",
        "counter.drawer_close",
    ]
    async with pool.acquire() as conn:
        assert (await check_ledger(conn)).ok


async def test_withdrawal_checks_identity_and_funds(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    headers, school_id, person = await counter_setup(pool, client, cash=5000)
    await open_drawer(pool, client, headers, school_id, "500.00")
    cases = [
        ({**CARD_ID, "card_number": "99999999"}, "50.00", 422, "IDENTITY_MISMATCH"),
        ({**CARD_ID, "holder_present": False}, "50.00", 422, "VALIDATION_FAILED"),
        (
            {"method": "student_id", "holder_name": "韩梅梅", "holder_present": True},
            "5.00",
            422,
            "IDENTITY_MISMATCH",
        ),
        (
            {"method": "student_id", "holder_name": "李雷", "holder_present": True},
            "50.01",
            409,
            "INSUFFICIENT_FUNDS",
        ),
    ]
    for identity, amount, status, code in cases:
        r = await client.post(
            f"{URL}/withdrawals",
            json={
                "client_id": cid(),
                "person_number": "S001",
                "amount": amount,
                "identity": identity,
            },
            headers=headers,
        )
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert await balances(pool, person) == {"cash": 5000, "subsidy": 0}
    r = await client.post(
        f"{URL}/withdrawals",
        json={
            "client_id": cid(),
            "person_number": "S001",
            "amount": "50.00",
            "identity": {"method": "student_id", "holder_name": "李雷", "holder_present": True},
        },
        headers=headers,
    )
    assert r.status_code == 201
    assert await balances(pool, person) == {"cash": 0, "subsidy": 0}


async def test_zeroing_pays_cash_and_returns_subsidy(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    headers, school_id, person = await counter_setup(pool, client, cash=1234)
    await open_drawer(pool, client, headers, school_id, "100.00")
    await client.post(
        f"{URL}/subsidy-grants",
        json={"client_id": cid(), "person_number": "S001", "amount": "8.88", "memo": "餐补"},
        headers=headers,
    )
    await approve_pending(pool, client, school_id)
    r = await client.post(
        f"{URL}/zeroings",
        json={"client_id": cid(), "person_number": "S001", "purse": "cash", "memo": "退卡"},
        headers=headers,
    )
    assert r.json()["error"]["code"] == "IDENTITY_REQUIRED"
    r = await client.post(
        f"{URL}/zeroings",
        json={
            "client_id": cid(),
            "person_number": "S001",
            "purse": "cash",
            "memo": "退卡",
            "identity": CARD_ID,
        },
        headers=headers,
    )
    assert r.status_code == 201 and r.json()["amount"] == "12.34"
    r = await client.post(
        f"{URL}/zeroings",
        json={"client_id": cid(), "person_number": "S001", "purse": "subsidy", "memo": "清零"},
        headers=headers,
    )
    assert r.status_code == 201 and r.json()["amount"] == "8.88"
    assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
    assert await system_balance(pool, school_id, "subsidy_fund") == 0
    summary = (await client.get(f"{URL}/drawer", headers=headers)).json()
    assert summary["expected_cash"] == "87.66"


async def test_counter_needs_the_settlement_role(pool: PgPool, client: httpx.AsyncClient) -> None:
    _, school_id, person = await counter_setup(pool, client)
    async with pool.acquire() as conn:
        await make_user(conn, "teacher1", "teacher", school_id)
    headers = await login(client, "teacher1", "TST")
    r = await client.post(f"{URL}/drawer/open", json={"opening_float": "1.00"}, headers=headers)
    assert r.status_code == 403
    r = await client.post(
        f"{URL}/subsidy-grants",
        json={"client_id": cid(), "person_number": "S001", "amount": "1.00", "memo": "x"},
        headers=headers,
    )
    assert r.status_code == 403
    assert await balances(pool, person) == {"cash": 0, "subsidy": 0}


async def test_bad_input_names_the_field(pool: PgPool, client: httpx.AsyncClient) -> None:
    headers, _, _ = await counter_setup(pool, client)
    await client.post(f"{URL}/drawer/open", json={"opening_float": "0.00"}, headers=headers)
    for body, field in (
        ({"client_id": cid(), "person_number": "S001", "amount": 10}, "amount"),
        ({"client_id": cid(), "person_number": "S001", "amount": "1.001"}, "amount"),
        ({"client_id": "x", "person_number": "S001", "amount": "1.00"}, "client_id"),
        ({"client_id": cid(), "person_number": "NOPE", "amount": "1.00"}, "person_number"),
    ):
        r = await client.post(f"{URL}/deposits", json=body, headers=headers)
        assert r.status_code in (404, 422), r.text
        assert field in (r.json()["error"]["field"] or ""), r.text
