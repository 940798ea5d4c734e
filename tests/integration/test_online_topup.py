"""Online top-up through the provider simulator: credited exactly once whatever the callbacks
do; unsigned, unknown and wrong-amount callbacks refused and logged."""

from __future__ import annotations

import asyncio

import httpx

from campuscard.adapters.provider import signing
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger.checks import check_ledger
from campuscard.moneyflows import provider_orders
from campuscard.platform import outbox
from campuscard.platform.tasks import load_job_modules
from tests.support import login, make_school, make_student, make_user
from tests.support_moneyflows import (
    MCH_ID,
    PROVIDER_KEY,
    balances,
    cid,
    provider_world,
    system_balance,
    wait_for,
)


async def _holder(pool: PgPool, client: httpx.AsyncClient) -> tuple[int, int, dict[str, str]]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S001")
        await make_user(conn, "stu1", "cardholder", school.id, person_id=person)
    return school.id, person, await login(client, "stu1", "TST")


async def _callbacks(pool: PgPool) -> list[str]:
    rows = await pool.fetch("SELECT outcome FROM provider_callbacks ORDER BY id")
    return [r["outcome"] for r in rows]


async def test_paid_order_is_credited_once_with_duplicate_callbacks(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    school_id, person, headers = await _holder(pool, client)
    with provider_world(settings) as (_wired, sim, app_url):
        sim.notify_mode = "duplicate"  # the provider sends every notify twice
        async with httpx.AsyncClient(base_url=app_url) as api:
            # given an order opened twice with the same client id
            body = {"client_id": cid(), "person_id": person, "amount": "88.80"}
            first = await api.post("/api/v1/topups", json=body, headers=headers)
            again = await api.post("/api/v1/topups", json=body, headers=headers)
            assert first.status_code == 201, first.text
            assert first.json()["id"] == again.json()["id"]
            order = first.json()
            assert order["status"] == "pending" and order["pay_url"]
            # when the payer pays on the cashier page
            page = await api.get(order["pay_url"])
            assert "88.80" in page.text
            paid = await api.post(order["pay_url"], data={"action": "pay"})
            assert paid.status_code == 200
            # then the purse is credited once, through the notify
            assert await wait_for(lambda: _is_paid(pool, order["id"]))
            assert await wait_for(lambda: _count(pool, 2))
            # a replayed notify long after changes nothing
            late = await api.post(
                "/api/v1/providers/notify",
                json=sim.notify_params(sim.orders[order["out_trade_no"]]),
            )
            assert late.json()["return_code"] == "SUCCESS"
            view = (await api.get(f"/api/v1/topups/{order['id']}", headers=headers)).json()
        assert view["status"] == "paid" and view["paid_via"] == "notify"
        assert await balances(pool, person) == {"cash": 8880, "subsidy": 0}
        assert sorted(await _callbacks(pool)) == ["credited", "duplicate", "duplicate"]
        assert -await system_balance(pool, school_id, "provider_clearing") == sim.held(MCH_ID)
        inbox = await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE person_id = $1 AND kind = 'topup_paid'",
            person,
        )
        assert inbox == 1


async def _is_paid(pool: PgPool, order_id: int) -> bool:
    return (
        await pool.fetchval("SELECT status FROM provider_orders WHERE id = $1", order_id) == "paid"
    )


async def _count(pool: PgPool, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM provider_callbacks") >= n


async def test_missing_callback_is_settled_by_the_query_job_and_late_callback_ignored(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    school_id, person, headers = await _holder(pool, client)
    with provider_world(settings) as (wired, sim, app_url):
        sim.notify_mode = "drop"
        async with httpx.AsyncClient(base_url=app_url) as api:
            r = await api.post(
                "/api/v1/topups",
                json={"client_id": cid(), "person_id": person, "amount": "20.00"},
                headers=headers,
            )
            order = r.json()
            await api.post(order["pay_url"], data={"action": "pay"})
            await asyncio.sleep(0.2)
            assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
            # when the periodic query runs
            assert await provider_orders.resolve_overdue_orders(pool, wired) == 1
            assert await provider_orders.resolve_overdue_orders(pool, wired) == 0
            # then it is paid via query; the late notify is a duplicate
            late = await api.post(
                "/api/v1/providers/notify",
                json=sim.notify_params(sim.orders[order["out_trade_no"]]),
            )
            assert late.status_code == 200
    row = await pool.fetchrow("SELECT status, paid_via FROM provider_orders")
    assert (row["status"], row["paid_via"]) == ("paid", "query")
    assert await balances(pool, person) == {"cash": 2000, "subsidy": 0}
    assert await _callbacks(pool) == ["duplicate"]
    assert -await system_balance(pool, school_id, "provider_clearing") == 2000


async def test_bad_callbacks_are_refused_and_logged(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    _, person, headers = await _holder(pool, client)
    with provider_world(settings) as (_wired, sim, app_url):
        sim.notify_mode = "drop"
        async with httpx.AsyncClient(base_url=app_url) as api:
            order = (
                await api.post(
                    "/api/v1/topups",
                    json={"client_id": cid(), "person_id": person, "amount": "10.00"},
                    headers=headers,
                )
            ).json()
            await api.post(order["pay_url"], data={"action": "pay"})
            good = sim.notify_params(sim.orders[order["out_trade_no"]])
            unsigned = {k: v for k, v in good.items() if k != "sign"}
            forged = signing.signed(good | {"total_fee": "100000"}, "someone-elses-key")
            wrong_amount = signing.signed(good | {"total_fee": "1000000"}, PROVIDER_KEY)
            unknown = signing.signed(good | {"out_trade_no": "CC0001NOPE"}, PROVIDER_KEY)
            for params, status in (
                (unsigned, 400),
                (forged, 400),
                (wrong_amount, 400),
                (unknown, 404),
            ):
                r = await api.post("/api/v1/providers/notify", json=params)
                assert r.status_code == status, r.text
                assert r.json()["return_code"] == "FAIL"
            r = await api.post("/api/v1/providers/notify", content=b"<xml>not json</xml>")
            assert r.status_code == 400
            assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
            # the genuine one still works afterwards
            r = await api.post("/api/v1/providers/notify", json=good)
            assert r.json()["return_code"] == "SUCCESS"
    assert await _callbacks(pool) == [
        "unsigned",
        "bad_signature",
        "wrong_amount",
        "unknown_order",
        "malformed",
        "credited",
    ]
    assert await balances(pool, person) == {"cash": 1000, "subsidy": 0}


async def test_unpaid_order_expires_and_is_closed_at_the_provider(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    _, person, headers = await _holder(pool, client)
    with provider_world(settings) as (wired, sim, app_url):
        async with httpx.AsyncClient(base_url=app_url) as api:
            order = (
                await api.post(
                    "/api/v1/topups",
                    json={"client_id": cid(), "person_id": person, "amount": "10.00"},
                    headers=headers,
                )
            ).json()
            assert await provider_orders.resolve_overdue_orders(pool, wired) == 0  # not due
            await pool.execute("UPDATE provider_orders SET expires_at = now() - interval '1s'")
            await provider_orders.resolve_overdue_orders(pool, wired)
            assert sim.orders[order["out_trade_no"]].state == "CLOSED"
            page = await api.post(order["pay_url"], data={"action": "pay"})
            assert "支付成功" not in page.text
    assert await pool.fetchval("SELECT status FROM provider_orders") == "expired"
    assert await balances(pool, person) == {"cash": 0, "subsidy": 0}


async def test_parent_tops_up_a_linked_child_only(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        child = await make_student(conn, school.id, "S001")
        other = await make_student(conn, school.id, "S002")
        parent = await make_user(conn, "mum", "guardian", school.id)
        await conn.execute(
            "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
            parent,
            child,
            school.id,
        )
    headers = await login(client, "mum", "TST")
    with provider_world(settings) as (_wired, _sim, app_url):
        async with httpx.AsyncClient(base_url=app_url) as api:
            r = await api.post(
                "/api/v1/topups",
                json={"client_id": cid(), "person_id": other, "amount": "10.00"},
                headers=headers,
            )
            assert r.status_code == 404
            order = (
                await api.post(
                    "/api/v1/topups",
                    json={"client_id": cid(), "person_id": child, "amount": "50.00"},
                    headers=headers,
                )
            ).json()
            await api.post(order["pay_url"], data={"action": "pay"})
            assert await wait_for(lambda: _is_paid(pool, order["id"]))
    assert await balances(pool, child) == {"cash": 5000, "subsidy": 0}
    assert await balances(pool, other) == {"cash": 0, "subsidy": 0}
    told = await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'topup_paid'", parent
    )
    assert told == 1


async def test_refund_books_now_and_reaches_the_provider(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    school_id, person, headers = await _holder(pool, client)
    async with pool.acquire() as conn:
        await make_user(conn, "settle", "settlement", school_id)
    admin = await login(client, "settle", "TST")
    with provider_world(settings) as (wired, sim, app_url):
        async with httpx.AsyncClient(base_url=app_url) as api:
            order = (
                await api.post(
                    "/api/v1/topups",
                    json={"client_id": cid(), "person_id": person, "amount": "30.00"},
                    headers=headers,
                )
            ).json()
            await api.post(order["pay_url"], data={"action": "pay"})
            assert await wait_for(lambda: _is_paid(pool, order["id"]))
            r = await api.post(
                f"/api/v1/admin/provider-orders/{order['id']}/refund",
                json={"reason": "误充"},
                headers=admin,
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "refunded"
            again = await api.post(
                f"/api/v1/admin/provider-orders/{order['id']}/refund",
                json={"reason": "误充"},
                headers=admin,
            )
            assert again.status_code == 409
            load_job_modules()
            assert await outbox.deliver_batch(pool, wired) >= 1
        assert sim.held(MCH_ID) == 0
        assert await system_balance(pool, school_id, "provider_clearing") == 0
    assert await balances(pool, person) == {"cash": 0, "subsidy": 0}
    async with pool.acquire() as conn:
        assert (await check_ledger(conn)).ok
