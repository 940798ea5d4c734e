"""Money is created only with two people: adjustments, counter subsidy grants, deposits above
the school's threshold, payout-account changes and drawer floats are proposed by one person and
happen when a second approves; system accounts of real money never go below zero by an
adjustment; purses and counter operations are capped by school settings."""

from __future__ import annotations

from typing import Any

import httpx

from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from tests.support import login, make_user
from tests.support_moneyflows import balances, cid, counter_setup, system_balance

URL = "/api/v1/counter/TST"
ADMIN = "/api/v1/admin/schools/TST"


async def _second_person(pool: PgPool, client: httpx.AsyncClient, school_id: int) -> dict[str, str]:
    async with pool.acquire() as conn:
        await make_user(conn, "supervisor", "settlement", school_id)
    return await login(client, "supervisor", "TST")


async def _decide(
    client: httpx.AsyncClient, headers: dict[str, str], approval_id: int, *, approve: bool = True
) -> httpx.Response:
    return await client.post(
        f"{ADMIN}/approvals/{approval_id}/decision",
        json={"approve": approve, "note": "" if approve else "not justified"},
        headers=headers,
    )


async def _audit(pool: PgPool) -> list[str]:
    rows = await pool.fetch("SELECT action FROM audit_log ORDER BY id")
    return [r["action"] for r in rows]


async def test_an_adjustment_moves_money_only_when_a_second_person_approves(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given: two students, one with money, and two settlement operators
    maker, school_id, alice = await counter_setup(pool, client, cash=20_000)
    checker = await _second_person(pool, client, school_id)
    async with pool.acquire() as conn:
        from tests.support import make_student

        bob = await make_student(conn, school_id, "S002", name="韩梅梅")
        purses_a = await postings.open_purses(conn, school_id, alice)
        purses_b = await postings.open_purses(conn, school_id, bob)
    body = {
        "client_id": cid(),
        "from_account": purses_a["cash"],
        "to_account": purses_b["cash"],
        "amount": "50.00",
        "memo": "wrong card charged",
    }
    # when: the maker proposes it (twice: a retry)
    r = await client.post(f"{ADMIN}/ledger/adjustments", json=body, headers=maker)
    again = await client.post(f"{ADMIN}/ledger/adjustments", json=body, headers=maker)
    # then: pending, nothing moved
    assert r.status_code == 202, r.text
    assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
    approval = r.json()["approval"]
    assert r.json()["status"] == "pending_approval" and approval["amount"] == "50.00"
    assert await balances(pool, bob) == {"cash": 0, "subsidy": 0}
    # the maker cannot approve their own proposal
    own = await _decide(client, maker, approval["id"])
    assert own.status_code == 403 and own.json()["error"]["code"] == "SECOND_PERSON_REQUIRED"
    assert await balances(pool, bob) == {"cash": 0, "subsidy": 0}
    # the second person sees it waiting and approves: now the money moves, once
    listed = (await client.get(f"{ADMIN}/approvals", headers=checker)).json()
    assert [a["id"] for a in listed] == [approval["id"]]
    ok = await _decide(client, checker, approval["id"])
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "approved" and ok.json()["decided_by_name"]
    twice = await _decide(client, checker, approval["id"])
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "APPROVAL_NOT_PENDING"
    assert await balances(pool, bob) == {"cash": 5_000, "subsidy": 0}
    assert await balances(pool, alice) == {"cash": 15_000, "subsidy": 0}
    actions = await _audit(pool)
    assert actions.index("approval.propose") < actions.index("ledger.adjustment")
    assert "approval.approve" in actions
    async with pool.acquire() as conn:
        assert (await check_ledger(conn)).ok


async def test_an_adjustment_cannot_take_a_real_money_account_below_zero(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given: an empty subsidy fund, and a proposal to move 100,000.00 from it into a purse
    maker, school_id, alice = await counter_setup(pool, client)
    checker = await _second_person(pool, client, school_id)
    async with pool.acquire() as conn:
        fund = await postings.system_account(conn, school_id, "subsidy_fund")
        purse = (await postings.open_purses(conn, school_id, alice))["cash"]
    r = await client.post(
        f"{ADMIN}/ledger/adjustments",
        json={
            "client_id": cid(),
            "from_account": fund,
            "to_account": purse,
            "amount": "100000.00",
            "memo": "free money",
        },
        headers=maker,
    )
    assert r.status_code == 202, r.text
    # when: even a second person approves it
    ok = await _decide(client, checker, r.json()["approval"]["id"])
    # then: refused, nothing moved, still waiting (to be rejected)
    assert ok.status_code == 409, ok.text
    assert ok.json()["error"]["code"] == "SYSTEM_ACCOUNT_BELOW_ZERO"
    assert ok.json()["error"]["field"] == "from_account"
    assert await system_balance(pool, school_id, "subsidy_fund") == 0
    assert await balances(pool, alice) == {"cash": 0, "subsidy": 0}
    no = await _decide(client, checker, r.json()["approval"]["id"], approve=False)
    assert no.status_code == 200 and no.json()["status"] == "rejected"


async def test_counter_grants_and_large_deposits_need_a_second_person_and_caps_hold(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given: an operator with an open drawer, the school's default limits
    maker, school_id, alice = await counter_setup(pool, client)
    checker = await _second_person(pool, client, school_id)
    assert (await client.post(f"{URL}/drawer/open", json={}, headers=maker)).status_code == 201
    limits = (await client.get(f"{ADMIN}/money-limits", headers=maker)).json()
    assert limits == {
        "purse_cap": "1000.00",
        "counter_op_cap": "1000.00",
        "deposit_approval_over": "500.00",
        "drawer_float_cap": "5000.00",
    }

    async def deposit(amount: str) -> httpx.Response:
        return await client.post(
            f"{URL}/deposits",
            json={"client_id": cid(), "person_number": "S001", "amount": amount},
            headers=maker,
        )

    # a deposit up to the threshold is booked at once
    small = await deposit("200.00")
    assert small.status_code == 201, small.text
    # one above it waits for a second person
    large = await deposit("600.00")
    assert large.status_code == 202 and large.json()["status"] == "pending_approval"
    assert await balances(pool, alice) == {"cash": 20_000, "subsidy": 0}
    # one above the counter cap is refused outright, naming the amount
    huge = await deposit("999999999.99")
    assert huge.status_code == 422, huge.text
    assert (huge.json()["error"]["code"], huge.json()["error"]["field"]) == (
        "COUNTER_OP_CAP",
        "amount",
    )
    # a grant at the counter always waits for a second person
    grant = await client.post(
        f"{URL}/subsidy-grants",
        json={"client_id": cid(), "person_number": "S001", "amount": "50.00", "memo": "助学"},
        headers=maker,
    )
    assert grant.status_code == 202, grant.text
    assert await balances(pool, alice) == {"cash": 20_000, "subsidy": 0}
    # approved: both are booked, in the maker's drawer
    assert (await _decide(client, checker, large.json()["approval"]["id"])).status_code == 200
    assert (await _decide(client, checker, grant.json()["approval"]["id"])).status_code == 200
    assert await balances(pool, alice) == {"cash": 80_000, "subsidy": 5_000}
    drawer = (await client.get(f"{URL}/drawer", headers=maker)).json()
    assert drawer["cash_in"] == "800.00"
    # the purse cap: 850.00 + 200.00 would pass 1,000.00
    over = await deposit("200.00")
    assert over.status_code == 409 and over.json()["error"]["code"] == "PURSE_CAP_EXCEEDED"
    assert await balances(pool, alice) == {"cash": 80_000, "subsidy": 5_000}
    # a settlement operator cannot raise the caps; the school admin can
    raise_ = await client.put(f"{ADMIN}/money-limits", json={"purse_cap": "5000"}, headers=maker)
    assert raise_.status_code == 403
    async with pool.acquire() as conn:
        await make_user(conn, "principal", "school_admin", school_id)
    admin = await login(client, "principal", "TST")
    bad = await client.put(f"{ADMIN}/money-limits", json={"purse_cap": "-1"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "purse_cap"
    ok = await client.put(f"{ADMIN}/money-limits", json={"purse_cap": "2000.00"}, headers=admin)
    assert ok.status_code == 200 and ok.json()["purse_cap"] == "2000.00"
    assert (await deposit("200.00")).status_code == 201
    async with pool.acquire() as conn:
        assert (await check_ledger(conn)).ok


async def test_a_payout_account_change_waits_for_a_second_person(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    maker, school_id, _ = await counter_setup(pool, client)
    checker = await _second_person(pool, client, school_id)
    async with pool.acquire() as conn:
        from tests.support_payments import make_merchant

        merchant_id, _outlet = await make_merchant(conn, school_id)
    url = f"/api/v1/admin/schools/TST/settlement/merchants/{merchant_id}/payout-account"
    first = {"bank_code": "ICBC", "account_no": "6222000011112222", "account_name": "第一食堂"}
    # the first registration applies at once
    r = await client.put(url, json=first, headers=maker)
    assert r.status_code == 200 and r.json()["status"] == "set", r.text
    # a change is proposed
    attacker = first | {"account_no": "6222999988887777", "account_name": "某人"}
    r = await client.put(url, json=attacker, headers=maker)
    assert r.status_code == 200 and r.json()["status"] == "pending_approval", r.text
    stored = await pool.fetchval(
        "SELECT account_no FROM merchant_payout_accounts WHERE merchant_id = $1", merchant_id
    )
    assert stored == "6222000011112222"
    # the second person rejects it; then a proper change is approved
    approval_id = r.json()["approval"]["id"]
    no = await _decide(client, checker, approval_id, approve=False)
    assert no.status_code == 200 and no.json()["status"] == "rejected"
    change = first | {"account_no": "6222000033334444"}
    r = await client.put(url, json=change, headers=maker)
    assert (await _decide(client, checker, r.json()["approval"]["id"])).status_code == 200
    stored = await pool.fetchval(
        "SELECT account_no FROM merchant_payout_accounts WHERE merchant_id = $1", merchant_id
    )
    assert stored == "6222000033334444"


async def test_a_drawer_opens_with_the_float_of_its_last_close_and_can_always_close(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    maker, school_id, _ = await counter_setup(pool, client)
    checker = await _second_person(pool, client, school_id)
    # a float above the school's cap is refused, naming the field
    big = await client.post(
        f"{URL}/drawer/open", json={"opening_float": "99999999999.99"}, headers=maker
    )
    assert big.status_code == 422, big.text
    assert (big.json()["error"]["code"], big.json()["error"]["field"]) == (
        "DRAWER_FLOAT_CAP",
        "opening_float",
    )
    # the first drawer carries nothing; a counted float of 5,000.00 (the cap) waits for approval
    r = await client.post(f"{URL}/drawer/open", json={"opening_float": "5000.00"}, headers=maker)
    assert r.status_code == 201, r.text
    assert r.json()["opening_float"] == "0.00"
    approval: dict[str, Any] = r.json()["float_approval"]
    assert approval["status"] == "pending"
    assert (await _decide(client, checker, approval["id"])).status_code == 200
    drawer = (await client.get(f"{URL}/drawer", headers=maker)).json()
    assert drawer["opening_float"] == "5000.00"
    # a day at the cap of every operation still closes against its float
    for _ in range(3):
        r = await client.post(
            f"{URL}/deposits",
            json={"client_id": cid(), "person_number": "S001", "amount": "300.00"},
            headers=maker,
        )
        assert r.status_code == 201, r.text
    closed = await client.post(
        f"{URL}/drawer/close", json={"counted_cash": "5900.00"}, headers=maker
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["difference"] == "0.00"
    # the next day's drawer opens with what was counted at this close
    await pool.execute(
        "UPDATE cash_desk_sessions SET business_date = business_date - 1 WHERE school_id = $1",
        school_id,
    )
    r = await client.post(f"{URL}/drawer/open", json={}, headers=maker)
    assert r.status_code == 201 and r.json()["opening_float"] == "5900.00", r.text
    assert r.json()["float_approval"] is None
