"""Escrowed orders over HTTP: the shop's server signs its requests like a till, the buyer pays
and reads the delivery code on the phone, the courier's code releases the order; a till, a
resent nonce and a bad body are refused by field."""

from __future__ import annotations

import httpx

from campuscard.config import Settings
from campuscard.db.pool import Conn
from campuscard.ledger import postings
from campuscard.platform import auth
from tests.support import PASSWORD, login
from tests.support_orders import campus_store, cid
from tests.support_payments import device_call, make_device, nonce

SHOP = "/api/v1/terminal/shop/orders"
BODY = {
    "order_no": "WEB-0001",
    "buyer_number": "B001",
    "title": "打印店：毕业论文装订",
    "items": [
        {"name": "论文打印（双面）", "qty": 120, "unit_price": "0.20"},
        {"name": "精装封面", "qty": 2, "unit_price": "18.00"},
    ],
    "delivery_address": "图书馆一楼 打印店自取",
    "ship_within_hours": 24,
    "confirm_within_hours": 48,
}


async def test_a_shop_sells_through_its_signed_terminal_and_the_code_releases_it(
    client: httpx.AsyncClient, conn: Conn, settings: Settings
) -> None:
    s = await campus_store(conn, settings)
    # given the buyer signed in on the phone
    await conn.execute(
        "UPDATE users SET password_hash = $1 WHERE username = 'buyer1-TST'",
        await auth.make_password_hash(PASSWORD),
    )
    phone = await login(client, "buyer1-TST", "TST")
    # when the shop creates the order (and resends it)
    r = await device_call(client, s.device, "POST", SHOP, BODY)
    assert r.status_code == 200, r.text
    order = r.json()
    assert (order["amount"], order["state"]) == ("60.00", "wait_buyer_pay")
    again = await device_call(client, s.device, "POST", SHOP, BODY)
    assert again.json()["id"] == order["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    # a resent nonce, a till of another merchant kind and a bad line are refused by field
    fixed = nonce()
    await device_call(client, s.device, "GET", f"{SHOP}/WEB-0001", nonce_value=fixed)
    reused = await device_call(client, s.device, "GET", f"{SHOP}/WEB-0001", nonce_value=fixed)
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "NONCE_REUSED"
    till = await make_device(conn, settings, s.school_id, s.merchant_id, "POS-0009")
    not_shop = await device_call(client, till, "POST", SHOP, {**BODY, "order_no": "WEB-0002"})
    assert not_shop.status_code == 403 and not_shop.json()["error"]["code"] == "NOT_A_SHOP"
    bad_line = {
        **BODY,
        "order_no": "WEB-0003",
        "items": [{"name": "x", "qty": 1, "unit_price": "1.001"}],
    }
    bad = await device_call(client, s.device, "POST", SHOP, bad_line)
    assert bad.status_code == 422 and "unit_price" in bad.text
    # then the buyer pays on the phone: held, nothing with the shop yet
    paid = await client.post(
        f"/api/v1/schools/TST/orders/{order['id']}/payment",
        json={"client_id": cid()},
        headers=phone,
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["held"] == "60.00"
    assert await postings.merchant_balance(conn, s.merchant_id) == 0
    shipped = await device_call(
        client, s.device, "POST", f"{SHOP}/WEB-0001/ship", {"tracking": "自取"}
    )
    assert shipped.json()["state"] == "wait_buyer_confirm"
    mine = await client.get(f"/api/v1/schools/TST/orders/{order['id']}", headers=phone)
    code = mine.json()["delivery_code"]
    assert [e["kind"] for e in mine.json()["history"]][:3] == ["created", "paid", "hold_renewed"]
    listed = await client.get("/api/v1/schools/TST/my/orders", headers=phone)
    assert [o["order_no"] for o in listed.json()] == ["WEB-0001"]
    # when the courier enters a wrong code, then the right one
    wrong = await device_call(
        client,
        s.device,
        "POST",
        f"{SHOP}/WEB-0001/deliver",
        {"code": "000000" if code != "000000" else "999999"},
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "CODE_WRONG"
    done = await device_call(client, s.device, "POST", f"{SHOP}/WEB-0001/deliver", {"code": code})
    assert done.status_code == 200 and done.json()["state"] == "finished"
    assert await postings.merchant_balance(conn, s.merchant_id) == 6_000
    # the code is gone from the buyer's page once used
    after = await client.get(f"/api/v1/schools/TST/orders/{order['id']}", headers=phone)
    assert after.json()["delivery_code"] is None
