"""Checkout checks and personal readers: the card center binds a reader to one card; it refuses
every other card, counts wrong PINs, and with its card and the right PIN pays its cardholder's
order into a hold (a reader cannot be made through the ordinary terminal registration). An
order to an address other than the one on file is paid only with the PIN, which then puts the
new address on file."""

from __future__ import annotations

import httpx
import pytest

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.orders import buying, checkout, readers, shop
from campuscard.payments import terminals
from campuscard.platform.errors import DomainError
from tests.support import ROOT
from tests.support_orders import campus_store, cid, new_order
from tests.support_payments import Device, device_call, set_pin

READER = "/api/v1/terminal/reader/orders"


async def test_a_personal_reader_pays_its_own_cards_orders_and_refuses_others(
    client: httpx.AsyncClient, pool: PgPool, conn: Conn, settings: Settings
) -> None:
    s = await campus_store(conn, settings)
    cards = []
    for i, person in enumerate(s.buyers):
        cards.append(
            await lifecycle.issue_card(
                conn,
                ROOT,
                person_id=person,
                number=f"8800000{i + 1:05d}",
                uid=f"04B1000{i + 1}",
                deposit_fen=0,
            )
        )
        await set_pin(conn, settings, person)
    # given a reader registered for the first buyer's card
    reg = await readers.do_register_personal_reader(
        conn,
        ROOT,
        settings,
        s.school_id,
        sn="HOME-0001",
        card_number=cards[0]["number"],
        location="家里书房",
    )
    reader = Device(reg["id"], "HOME-0001", bytes.fromhex(reg["key"]), 1, None, s.school_id)
    with pytest.raises(DomainError) as unknown:
        await readers.do_register_personal_reader(
            conn, ROOT, settings, s.school_id, sn="HOME-0002", card_number="123456789"
        )
    assert unknown.value.field == "card_number"
    with pytest.raises(DomainError) as generic:
        await terminals.register_terminal(
            conn, ROOT, settings, s.school_id, sn="HOME-0003", kind="personal"
        )
    assert generic.value.field == "kind"
    mine = await shop.do_create_order(conn, s.shop, new_order("HR-0001"))
    theirs = await shop.do_create_order(conn, s.shop, new_order("HR-0002", "B002"))
    # the reader lists only its cardholder's orders to pay
    listed = await device_call(client, reader, "GET", READER)
    assert [o["order_no"] for o in listed.json()] == ["HR-0001"]
    pay = f"{READER}/{mine['id']}/pay"
    body = {"card_number": cards[0]["number"], "card_uid": cards[0]["uid"], "pin": "135790"}
    # another card on this reader is refused, whatever its PIN
    other = {"card_number": cards[1]["number"], "card_uid": cards[1]["uid"], "pin": "135790"}
    refused = await device_call(client, reader, "POST", f"{READER}/{theirs['id']}/pay", other)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "CARD_NOT_BOUND"
    # a wrong PIN is counted; the right one pays into a hold
    wrong = await device_call(client, reader, "POST", pay, {**body, "pin": "246801"})
    assert wrong.json()["error"]["code"] == "PIN_WRONG"
    assert wrong.json()["error"]["details"]["tries_left"] == 2
    paid = await device_call(client, reader, "POST", pay, body)
    assert paid.status_code == 200, paid.text
    assert (paid.json()["state"], paid.json()["held"]) == ("wait_seller_send", "60.00")
    assert await conn.fetchval("SELECT paid_via FROM orders WHERE id = $1", mine["id"]) == "reader"
    assert (
        await conn.fetchval(
            "SELECT pin_failures FROM pay_settings WHERE person_id = $1", s.buyers[0]
        )
        == 0
    )
    # the other buyer's order cannot be paid with this reader's card either
    stranger = await device_call(client, reader, "POST", f"{READER}/{theirs['id']}/pay", body)
    assert stranger.status_code == 404
    # a shop terminal is not a reader
    not_reader = await device_call(client, s.device, "GET", READER)
    assert not_reader.status_code == 403

    # checkout: the first address went on file; an order to another one needs the PIN
    on_file = await checkout.address_on_file(conn, s.school_id, s.buyers[0])
    assert on_file == "东区3栋 402"
    moved = await shop.do_create_order(
        conn, s.shop, new_order("HR-0003", delivery_address="西区7栋 101")
    )
    no_pin = await buying.do_pay(pool, s.holders[0], s.school_id, moved["id"], client_id=cid())
    assert no_pin.status == 403 and no_pin.body["error"]["code"] == "ADDRESS_CHANGE_NEEDS_PIN"
    with pytest.raises(DomainError) as bad_pin:
        await buying.do_pay(
            pool,
            s.holders[0],
            s.school_id,
            moved["id"],
            client_id=cid(),
            pin="246801",
            settings=settings,
        )
    assert bad_pin.value.code == "PIN_WRONG"
    with_pin = await buying.do_pay(
        pool,
        s.holders[0],
        s.school_id,
        moved["id"],
        client_id=cid(),
        pin="135790",
        settings=settings,
    )
    assert with_pin.status == 200, with_pin.body
    assert await checkout.address_on_file(conn, s.school_id, s.buyers[0]) == "西区7栋 101"
