"""Escrowed orders: paying puts the money in a hold, never with the shop; it reaches the merchant
on the buyer's confirmation, on the buyer's one-time code at the door, or when the confirmation
window has passed; in part; an order not shipped in time is refunded by itself; an unpaid order
closes; a dispute is decided by two people; the ledger check stays clean throughout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from campuscard.orders import buying, disputes, jobs, rules, shop
from campuscard.platform import four_eyes
from campuscard.platform.errors import DomainError
from tests.support_orders import Store, campus_store, cid, new_order


async def _purse(conn: Conn, person: int) -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT balance, held FROM accounts WHERE person_id = $1 AND purse = 'cash'", person
    )
    assert row is not None
    return row["balance"], row["held"]


async def _paid(
    pool: PgPool, conn: Conn, s: Store, order_no: str, buyer: int = 0, **kw: Any
) -> int:
    created = await shop.do_create_order(
        conn, s.shop, new_order(order_no, f"B{buyer + 1:03d}", **kw)
    )
    paid = await buying.do_pay(pool, s.holders[buyer], s.school_id, created["id"], client_id=cid())
    assert paid.status == 200, paid.body
    assert paid.body["state"] == "wait_seller_send" and paid.body["held"] == "60.00"
    return int(created["id"])


async def _age(conn: Conn, order_id: int, column: str) -> None:
    """The order's deadline is now in the past (the job compares with now())."""
    await conn.execute(
        f"UPDATE orders SET {column} = now() - interval '1 second' WHERE id = $1", order_id
    )


async def _ledger_clean(conn: Conn) -> None:
    report = await check_ledger(conn)
    assert report.violations == []


async def test_paying_holds_the_money_and_the_buyer_releases_it_in_parts(
    pool: PgPool, conn: Conn, settings: Settings
) -> None:
    # given a campus store and a buyer with 1,000.00
    s = await campus_store(conn, settings)
    # when the shop creates an order of 60.00 (and resends it)
    created = await shop.do_create_order(conn, s.shop, new_order("SO-1001"))
    again = await shop.do_create_order(conn, s.shop, new_order("SO-1001"))
    assert created["state"] == "wait_buyer_pay" and created["amount"] == "60.00"
    assert again["id"] == created["id"] and again["replayed"] is True
    with pytest.raises(DomainError) as other:
        await shop.do_create_order(conn, s.shop, new_order("SO-1001", title="别的东西"))
    assert other.value.code == "IDEMPOTENCY_KEY_REUSED"
    # then only the buyer can pay it, and paying holds the money (the shop has nothing yet)
    stranger = await buying.do_pay(pool, s.holders[1], s.school_id, created["id"], client_id=cid())
    assert stranger.status == 404
    key = cid()
    paid = await buying.do_pay(pool, s.holders[0], s.school_id, created["id"], client_id=key)
    replay = await buying.do_pay(pool, s.holders[0], s.school_id, created["id"], client_id=key)
    assert paid.status == 200 and replay.replayed and replay.body == paid.body
    assert await _purse(conn, s.buyers[0]) == (100_000, 6_000)
    assert await postings.merchant_balance(conn, s.merchant_id) == 0
    # when the shop ships and the buyer accepts 45.00 worth (the book), then the rest
    await shop.do_ship(conn, s.shop, "SO-1001", tracking="SF1234567")
    part = await buying.do_confirm(
        pool, s.holders[0], s.school_id, created["id"], client_id=cid(), amount=4_500
    )
    assert part.status == 200, part.body
    assert part.body["state"] == "wait_buyer_confirm"
    assert (part.body["released"], part.body["held"]) == ("45.00", "15.00")
    assert await _purse(conn, s.buyers[0]) == (95_500, 1_500)
    assert await postings.merchant_balance(conn, s.merchant_id) == 4_500
    too_much = await buying.do_confirm(
        pool, s.holders[0], s.school_id, created["id"], client_id=cid(), amount=2_000
    )
    assert too_much.status == 422 and too_much.body["error"]["code"] == "AMOUNT_ABOVE_HELD"
    rest = await buying.do_confirm(pool, s.holders[0], s.school_id, created["id"], client_id=cid())
    assert rest.body["state"] == "finished" and rest.body["released"] == "60.00"
    assert await _purse(conn, s.buyers[0]) == (94_000, 0)
    assert await postings.merchant_balance(conn, s.merchant_id) == 6_000
    # each hold of the order resolved exactly once
    states = await conn.fetch(
        "SELECT state, amount, captured FROM holds WHERE owner_id = $1 ORDER BY id",
        str(created["id"]),
    )
    assert [(r["state"], r["amount"], r["captured"]) for r in states] == [
        ("voided", 6_000, 0),  # placed again with a fresh timeout when shipped
        ("captured", 6_000, 4_500),
        ("captured", 1_500, 1_500),
    ]
    await _ledger_clean(conn)


async def test_the_one_time_code_releases_at_the_door_and_wrong_codes_lock_it(
    pool: PgPool, conn: Conn, settings: Settings
) -> None:
    s = await campus_store(conn, settings)
    first = await _paid(pool, conn, s, "SO-2001")
    second = await _paid(pool, conn, s, "SO-2002", buyer=1)
    # the buyer's phone shows the code while the goods are awaited
    mine = await buying.get_my_order(conn, settings, s.holders[0], s.school_id, first)
    code = mine["delivery_code"]
    assert len(code) == 6 and code.isdigit()
    other = await buying.get_my_order(conn, settings, s.holders[1], s.school_id, second)
    assert other["delivery_code"] != code or first == second
    with pytest.raises(DomainError):
        await buying.get_my_order(conn, settings, s.holders[1], s.school_id, first)
    # a wrong code is counted and refused; the right one releases everything, once
    wrong = "000000" if code != "000000" else "111111"
    answer = await shop.do_deliver_with_code(conn, settings, s.shop, "SO-2001", code=wrong)
    assert answer.refusal is not None and answer.refusal.code == "CODE_WRONG"
    done = await shop.do_deliver_with_code(conn, settings, s.shop, "SO-2001", code=code)
    assert done.view is not None and done.view["state"] == "finished"
    again = await shop.do_deliver_with_code(conn, settings, s.shop, "SO-2001", code=code)
    assert again.view is not None and again.view["replayed"] is True
    assert await postings.merchant_balance(conn, s.merchant_id) == 6_000
    # five wrong codes lock the other order's code; the buyer confirms on the phone instead
    right = rules.delivery_code(settings.master_key.get_secret_value(), s.school_id, second)
    bad = "123456" if right != "123456" else "654321"
    codes = []
    for _ in range(rules.MAX_CODE_FAILURES):
        a = await shop.do_deliver_with_code(conn, settings, s.shop, "SO-2002", code=bad)
        assert a.refusal is not None
        codes.append(a.refusal.code)
    locked = await shop.do_deliver_with_code(conn, settings, s.shop, "SO-2002", code=right)
    assert codes == ["CODE_WRONG"] * 5 and locked.refusal is not None
    assert locked.refusal.code == "CODE_LOCKED"
    assert await _purse(conn, s.buyers[1]) == (100_000, 6_000)
    await _ledger_clean(conn)


async def test_the_clock_closes_unpaid_refunds_unshipped_and_releases_unconfirmed(
    pool: PgPool, conn: Conn, settings: Settings
) -> None:
    s = await campus_store(conn, settings)
    unpaid = await shop.do_create_order(conn, s.shop, new_order("SO-3001"))
    unshipped = await _paid(pool, conn, s, "SO-3002")
    shipped = await _paid(pool, conn, s, "SO-3003", buyer=1)
    await shop.do_ship(conn, s.shop, "SO-3003")
    # the shop refunds a line it cannot deliver before the deadline passes (partial, once)
    r = await shop.do_refund(
        conn, s.shop, "SO-3002", refund_no="RF-1", amount=1_500, reason="笔记本缺货"
    )
    r2 = await shop.do_refund(
        conn, s.shop, "SO-3002", refund_no="RF-1", amount=1_500, reason="笔记本缺货"
    )
    assert r["refunded"] == "15.00" and r["held"] == "45.00" and r2["replayed"] is True
    # nothing is due yet
    assert await jobs.run_order_deadlines(pool) == jobs.Tick()
    # when every deadline has passed
    await _age(conn, unpaid["id"], "pay_by")
    await _age(conn, unshipped, "ship_by")
    await _age(conn, shipped, "release_at")
    tick = await jobs.run_order_deadlines(pool)
    assert (tick.closed_unpaid, tick.refunded_unshipped, tick.released_by_time) == (1, 1, 1)
    views = {o["order_no"]: o for o in await shop_orders(conn, s)}
    assert views["SO-3001"]["state"] == "closed" and views["SO-3001"]["close_reason"] == "not_paid"
    assert views["SO-3002"]["state"] == "closed"
    assert views["SO-3002"]["close_reason"] == "not_shipped"
    assert views["SO-3002"]["refunded"] == "60.00"
    assert views["SO-3003"]["state"] == "finished" and views["SO-3003"]["released"] == "60.00"
    assert await _purse(conn, s.buyers[0]) == (100_000, 0)  # all of it came back
    assert await _purse(conn, s.buyers[1]) == (94_000, 0)
    assert await postings.merchant_balance(conn, s.merchant_id) == 6_000
    # paying a closed order is refused; a second pass finds nothing
    late = await buying.do_pay(pool, s.holders[0], s.school_id, unpaid["id"], client_id=cid())
    assert late.status == 409
    assert await jobs.run_order_deadlines(pool) == jobs.Tick()
    notes = await conn.fetch(
        "SELECT kind FROM notifications WHERE person_id = $1 ORDER BY id", s.buyers[0]
    )
    assert "order_refunded" in [n["kind"] for n in notes]
    await _ledger_clean(conn)


async def shop_orders(conn: Conn, s: Store) -> list[dict[str, Any]]:
    from campuscard.orders import queries

    return await queries.orders_of_merchant(conn, s.school_id, s.merchant_id)


async def test_a_dispute_is_decided_by_two_people_and_its_hold_outlives_no_timeout(
    pool: PgPool, conn: Conn, settings: Settings
) -> None:
    s = await campus_store(conn, settings)
    order = await _paid(pool, conn, s, "SO-4001")
    await shop.do_ship(conn, s.shop, "SO-4001")
    opened = await buying.do_dispute(
        pool, s.holders[0], s.school_id, order, client_id=cid(), reason="书有破损，少了一本笔记本"
    )
    assert opened.body["state"] == "disputed"
    # the timers stop: the confirmation window passing releases nothing
    await _age(conn, order, "release_at")
    assert (await jobs.run_order_deadlines(pool)).released_by_time == 0
    # a hold close to its timeout is placed again (the money stays held, never expires)
    await conn.execute(
        "UPDATE holds SET expires_at = now() + interval '1 hour' "
        "WHERE owner_id = $1 AND state = 'pending'",
        str(order),
    )
    assert (await jobs.run_order_deadlines(pool)).renewed == 1
    assert await _purse(conn, s.buyers[0]) == (100_000, 6_000)
    # the settlement center proposes 40.00 to the shop, 20.00 back; the proposer cannot approve
    proposal = await disputes.do_propose_decision(
        conn, s.center, s.school_id, order, to_merchant=4_000, note="笔记本未送达，书有轻微破损"
    )
    approval_id = proposal["approval"]["id"]
    with pytest.raises(DomainError) as twice:
        await disputes.do_propose_decision(
            conn, s.second, s.school_id, order, to_merchant=0, note="全额退款"
        )
    assert twice.value.code == "DECISION_PENDING"
    with pytest.raises(DomainError) as same:
        await four_eyes.do_decide(pool, s.center, s.school_id, approval_id, approve=True)
    assert same.value.code == "SECOND_PERSON_REQUIRED"
    assert await postings.merchant_balance(conn, s.merchant_id) == 0
    decided = await four_eyes.do_decide(pool, s.second, s.school_id, approval_id, approve=True)
    assert decided["status"] == "approved"
    view = decided["result"]["order"]
    assert (view["state"], view["released"], view["refunded"]) == ("finished", "40.00", "20.00")
    assert await _purse(conn, s.buyers[0]) == (96_000, 0)
    assert await postings.merchant_balance(conn, s.merchant_id) == 4_000
    pending = "SELECT count(*) FROM holds WHERE school_id = $1 AND state = 'pending'"
    assert await conn.fetchval(pending, s.school_id) == 0
    await _ledger_clean(conn)
    # the ledger check proves the escrow tier: an order claiming more than its holds captured
    # is caught
    await conn.execute(
        "UPDATE orders SET released = released + 1, refunded = refunded - 1 WHERE school_id = $1",
        s.school_id,
    )
    report = await check_ledger(conn)
    assert [v.split(":")[0] for v in report.violations] == [
        "O3 an order released other than its holds captured"
    ]


async def test_bad_orders_are_refused_by_field_and_nothing_is_written(
    pool: PgPool, conn: Conn, settings: Settings
) -> None:
    s = await campus_store(conn, settings, cash=1_000)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"order_no": "x"}, "order_no"),
        ({"items": []}, "items"),
        ({"items": [{"name": "书", "qty": 0, "unit_price": "1.00"}]}, "items[0].qty"),
        ({"items": [{"name": "书", "qty": 1, "unit_price": "1.005"}]}, "items[0].unit_price"),
        ({"items": [{"name": "书", "qty": 1, "unit_price": "1.00", "x": 1}]}, "items[0]"),
        ({"buyer": "NOBODY"}, "buyer_number"),
        ({"ship_within_hours": 24 * 30}, "ship_within_hours"),
        ({"confirm_within_hours": 0}, "confirm_within_hours"),
        ({"pay_within_minutes": 0}, "pay_within_minutes"),
        ({"title": " "}, "title"),
    ]
    for i, (change, field) in enumerate(cases):
        change = dict(change)
        order_no = change.pop("order_no", f"BAD-{i:03d}")
        buyer = change.pop("buyer", "B001")
        with pytest.raises(DomainError) as err:
            await shop.do_create_order(conn, s.shop, new_order(order_no, buyer, **change))
        assert err.value.field == field, (change, err.value)
    assert await conn.fetchval("SELECT count(*) FROM orders") == 0
    # a buyer with 10.00 cannot pay 60.00: refused, nothing held, the order still waits
    created = await shop.do_create_order(conn, s.shop, new_order("SO-5001"))
    poor = await buying.do_pay(pool, s.holders[0], s.school_id, created["id"], client_id=cid())
    assert poor.status == 409 and poor.body["error"]["code"] == "INSUFFICIENT_FUNDS"
    assert await _purse(conn, s.buyers[0]) == (1_000, 0)
    # a shipped order cannot be cancelled; an unpaid one can
    cancelled = await shop.do_cancel(conn, s.shop, "SO-5001")
    assert cancelled["state"] == "closed" and cancelled["close_reason"] == "cancelled"
    assert timedelta(hours=1) == rules.MIN_WINDOW
