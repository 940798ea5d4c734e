"""The POS page: binding a browser to a terminal, card payments by a keyboard-wedge reader,
refusals, refunds with permission, receipts, takings per window and terminal."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx

from campuscard.cards import lifecycle
from campuscard.config import Settings
from tests.support import ROOT, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant
from tests.support_web import csrf_from, page_csrf, web_login


async def _shop(conn: asyncpg.Connection[Any], settings: Settings) -> dict[str, Any]:
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    device = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    other_merchant, _ = await make_merchant(conn, school.id, "校园超市", channel="supermarket")
    other_device = await make_device(conn, settings, school.id, other_merchant, sn="POS-0002")
    person, card = await make_cardholder(conn, school.id, "S001", cash=5000)
    await make_user(conn, "boss", "merchant_manager", school.id, merchant_id=merchant_id)
    await make_user(conn, "cashier", "merchant_staff", school.id, merchant_id=merchant_id)
    return {
        "school": school,
        "merchant": merchant_id,
        "device": device,
        "other_device": other_device,
        "person": person,
        "card": card,
    }


async def _bind(client: httpx.AsyncClient, terminal_id: int) -> httpx.Response:
    token = await page_csrf(client, "/pos/setup")
    return await client.post("/pos/setup", data={"terminal_id": terminal_id, "csrf_token": token})


async def _charge(client: httpx.AsyncClient, amount: str, scan: str, **extra: str) -> str:
    page = await client.get("/pos/")
    assert page.status_code == 200, page.text
    client_id = re.search(r'name="client_id" value="([^"]+)"', page.text)
    assert client_id
    r = await client.post(
        "/pos/pay",
        data={
            "amount": amount,
            "scan": scan,
            "client_id": client_id.group(1),
            "csrf_token": csrf_from(page.text),
            **extra,
        },
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200, r.text
    return r.text


async def test_manager_binds_the_till_and_the_cashier_charges_a_card(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    shop = await _shop(conn, settings)
    # given: a till not bound yet sends staff to setup, where only a manager can bind
    await web_login(client, "cashier", shop["school"].code)
    r = await client.get("/pos/")
    assert r.status_code == 303 and r.headers["location"] == "/pos/setup"
    assert 'data-testid="terminal-choice"' not in (await client.get("/pos/setup")).text
    await web_login(client, "boss", shop["school"].code)
    # another merchant's terminal cannot be bound
    assert (await _bind(client, shop["other_device"].id)).status_code == 404
    assert (await _bind(client, shop["device"].id)).status_code == 303
    binding = client.cookies.get("cc_pos")
    # when the cashier (same browser) charges 12.50 with the card's UID typed by the reader
    await web_login(client, "cashier", shop["school"].code)
    client.cookies.set("cc_pos", binding or "", path="/pos")
    html = await _charge(client, "12.5", shop["card"]["uid"])
    # then it is approved, booked on the bound terminal, and the purse paid
    assert 'class="result ok"' in html and "¥12.50" in html
    school_id = shop["school"].id
    row = await conn.fetchrow(
        "SELECT terminal_id, amount, method FROM payments WHERE school_id = $1", school_id
    )
    assert dict(row) == {"terminal_id": shop["device"].id, "amount": 1250, "method": "card"}
    assert (
        await conn.fetchval(
            "SELECT balance FROM accounts WHERE school_id = $1 AND person_id = $2"
            " AND purse = 'cash'",
            school_id,
            shop["person"],
        )
        == 3750
    )
    recent = await client.get("/pos/")
    assert "¥12.50" in recent.text  # the till's last payments
    takings = await client.get("/pos/takings")
    assert 'data-testid="takings-total">¥12.50<' in takings.text
    assert "POS-0001" in takings.text and "1号窗口" in takings.text


async def test_lost_card_unknown_card_and_bad_amount_are_refused_and_change_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    shop = await _shop(conn, settings)
    await web_login(client, "boss", shop["school"].code)
    await _bind(client, shop["device"].id)
    await lifecycle.report_loss(conn, ROOT, shop["card"]["id"], channel="counter")
    lost = await _charge(client, "3.00", shop["card"]["uid"])
    assert 'class="result bad"' in lost and "CARD_LOST" in lost and 'data-sound="bad"' in lost
    unknown = await _charge(client, "3.00", "DEADBEEF")
    assert "CARD_UNKNOWN" in unknown
    bad = await _charge(client, "3.005", shop["card"]["uid"])
    assert "AMOUNT_" in bad
    assert await conn.fetchval("SELECT count(*) FROM payments") == 0


async def test_a_forged_binding_cookie_is_ignored(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    shop = await _shop(conn, settings)
    await web_login(client, "cashier", shop["school"].code)
    client.cookies.set("cc_pos", f"{shop['other_device'].id}.1.{'0' * 32}", path="/pos")
    r = await client.get("/pos/")
    assert r.status_code == 303 and r.headers["location"] == "/pos/setup"


async def test_refund_needs_permission_and_never_exceeds_the_payment(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    shop = await _shop(conn, settings)
    await web_login(client, "boss", shop["school"].code)
    await _bind(client, shop["device"].id)
    binding = client.cookies.get("cc_pos")
    await _charge(client, "20.00", shop["card"]["uid"])
    payment_id = await conn.fetchval("SELECT id FROM payments")
    # a cashier without the refund permission sees the receipt but no refund form
    await web_login(client, "cashier", shop["school"].code)
    client.cookies.set("cc_pos", binding or "", path="/pos")
    receipt = await client.get(f"/pos/receipt/{payment_id}")
    assert receipt.status_code == 200 and "¥20.00" in receipt.text
    assert 'data-testid="refund-form"' not in receipt.text
    forged = await client.post(
        f"/pos/receipt/{payment_id}/refund",
        data={
            "amount": "5.00",
            "reason": "x",
            "client_id": "web-forged-0001",
            "csrf_token": csrf_from(receipt.text),
        },
    )
    assert forged.status_code == 403
    # the manager refunds 5.00, then cannot refund more than the 15.00 left
    await web_login(client, "boss", shop["school"].code)
    client.cookies.set("cc_pos", binding or "", path="/pos")
    receipt = await client.get(f"/pos/receipt/{payment_id}")
    form = receipt.text[receipt.text.index('data-testid="refund-form"') :]
    client_id = re.search(r'name="client_id" value="([^"]+)"', form)
    assert client_id
    ok = await client.post(
        f"/pos/receipt/{payment_id}/refund",
        data={
            "amount": "5.00",
            "reason": "少打一份",
            "client_id": client_id.group(1),
            "csrf_token": csrf_from(receipt.text),
        },
    )
    assert ok.status_code == 303
    too_much = await client.post(
        f"/pos/receipt/{payment_id}/refund",
        data={
            "amount": "15.01",
            "reason": "x",
            "client_id": "web-refund-0002",
            "csrf_token": csrf_from(receipt.text),
        },
    )
    assert too_much.status_code in (409, 422)
    assert await conn.fetchval("SELECT refunded FROM payments") == 500
    assert (
        await conn.fetchval(
            "SELECT balance FROM accounts WHERE person_id = $1 AND purse = 'cash'", shop["person"]
        )
        == 5000 - 2000 + 500
    )


async def test_a_payment_code_pays_once_and_a_refusal_leaves_it_unused(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    from campuscard.payments import codes
    from campuscard.platform.actors import Actor, Grant

    shop = await _shop(conn, settings)
    student = Actor(
        name="S001",
        person_id=shop["person"],
        school_id=shop["school"].id,
        grants=frozenset({Grant("cardholder", shop["school"].id)}),
    )
    code = (await codes.do_mint_code(conn, settings, student)).code
    await web_login(client, "boss", shop["school"].code)
    await _bind(client, shop["device"].id)
    await _charge(client, "45.00", shop["card"]["uid"])  # 5.00 left
    # more than the balance: refused, and the code is still good
    refused = await _charge(client, "8.80", code)
    assert "INSUFFICIENT_FUNDS" in refused
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 0
    ok = await _charge(client, "4.40", code)
    assert 'class="result ok"' in ok and "¥4.40" in ok
    assert await conn.fetchval("SELECT method FROM payments ORDER BY id DESC LIMIT 1") == "code"
    again = await _charge(client, "0.50", code)
    assert "PAYCODE_USED" in again
    assert await conn.fetchval("SELECT count(*) FROM payments") == 2
