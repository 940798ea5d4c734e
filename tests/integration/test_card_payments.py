"""Card payments at the POS: booking, every refusal, idempotency, PIN, limits (issue 3)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from campuscard.platform import live
from tests.support import ROOT, login, make_school, make_user
from tests.support_payments import (
    Device,
    device_call,
    make_cardholder,
    make_device,
    make_merchant,
    pay,
    set_pin,
)


async def _campus(
    pool: PgPool,
    settings: Settings,
    *,
    cash: int = 10_000,
    subsidy: int = 3_000,
    merchant_status: str = "approved",
) -> tuple[Device, int, dict[str, Any], int]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, outlet_id = await make_merchant(conn, school.id, status=merchant_status)
        dev = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
        person_id, card = await make_cardholder(conn, school.id, "S1", cash=cash, subsidy=subsidy)
    return dev, person_id, card, merchant_id


async def test_payment_debits_subsidy_first_credits_merchant_and_answers_a_receipt(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    # given 100.00 cash and 30.00 subsidy
    dev, person_id, card, merchant_id = await _campus(pool, settings)

    # when the POS books 42.50
    r = await pay(client, dev, card, "42.50", client_id="pos1-000001")

    # then subsidy pays first, the merchant gets all of it, and the receipt says so
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["result"] == "approved"
    assert receipt["paid_from"] == {"subsidy": "30.00", "cash": "12.50"}
    assert receipt["balance"] == "87.50"
    assert receipt["balances"] == {"cash": "87.50", "subsidy": "0.00"}
    assert receipt["merchant"] == "第一食堂" and receipt["outlet"] == "1号窗口"
    assert receipt["card_number"].endswith(card["number"][-4:])
    assert receipt["channel"] == "canteen"
    async with pool.acquire() as conn:
        assert await postings.purse_balances(conn, person_id) == {"cash": 8_750, "subsidy": 0}
        assert await postings.merchant_balance(conn, merchant_id) == 4_250
        row = await conn.fetchrow("SELECT * FROM payments WHERE id = $1", receipt["payment_id"])
        assert row["channel"] == "canteen" and row["from_subsidy"] == 3_000
        assert row["outlet_id"] is not None and row["business_date"] is not None
        assert (await check_ledger(conn)).ok


async def test_payment_event_is_published_on_commit(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings, db_url: str
) -> None:
    import asyncpg

    dev, person_id, card, _ = await _campus(pool, settings)
    listener = await asyncpg.connect(db_url)
    events: list[dict[str, Any]] = []
    # (the payments' events come in arrays: many per NOTIFY)
    await listener.add_listener("cc_events", lambda *a: events.extend(live.events_of(a[3])))
    try:
        r = await pay(client, dev, card, "12.50")
        assert r.status_code == 200
        for _ in range(50):
            if any(e["type"] == "payment" for e in events):
                break
            await asyncio.sleep(0.02)
    finally:
        await listener.close()
    event = next(e for e in events if e["type"] == "payment")
    assert event == {
        "type": "payment",
        "school_id": dev.school_id,
        "person_id": person_id,
        "payment_id": r.json()["payment_id"],
        "amount": "12.50",
        "merchant": "第一食堂",
        "outlet": "1号窗口",
        "balance": "117.50",
        "available": "117.50",
    }


async def test_purse_order_cash_first_when_the_school_says_so(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, _ = await _campus(pool, settings)
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE schools SET settings = '{"purse_order": "cash_first"}' WHERE id = $1""",
            dev.school_id,
        )
    r = await pay(client, dev, card, "20.00")
    assert r.json()["paid_from"] == {"cash": "20.00", "subsidy": "0.00"}


async def test_retry_replays_and_new_payload_under_same_id_is_409(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, person_id, card, _ = await _campus(pool, settings)
    first = await pay(client, dev, card, "10.00", client_id="pos1-retry-01")
    again = await asyncio.gather(
        *(pay(client, dev, card, "10.00", client_id="pos1-retry-01") for _ in range(4))
    )
    other = await pay(client, dev, card, "11.00", client_id="pos1-retry-01")

    assert first.status_code == 200
    for r in again:
        assert r.status_code == 200 and r.json() == first.json()
        assert r.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    async with pool.acquire() as conn:
        assert sum((await postings.purse_balances(conn, person_id)).values()) == 12_000


async def test_a_refused_payment_stays_refused_on_retry(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, person_id, card, _ = await _campus(pool, settings, cash=1_000, subsidy=0)
    first = await pay(client, dev, card, "20.00", client_id="pos1-poor-0001")
    assert first.status_code == 409
    assert first.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    async with pool.acquire() as conn:
        await postings.post(
            conn,
            school_id=dev.school_id,
            kind="test",
            legs=postings.legs_move(
                await postings.system_account(conn, dev.school_id, "cash_desk"),
                (await postings.open_purses(conn, dev.school_id, person_id))["cash"],
                5_000,
            ),
        )
    again = await pay(client, dev, card, "20.00", client_id="pos1-poor-0001")
    assert again.status_code == 409 and again.json() == first.json()


@pytest.mark.parametrize(
    ("action", "code"),
    [("report_loss", "CARD_LOST"), ("freeze", "CARD_FROZEN"), ("expire", "CARD_EXPIRED")],
)
async def test_blocked_card_is_refused(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings, action: str, code: str
) -> None:
    dev, _person_id, card, _ = await _campus(pool, settings)
    async with pool.acquire() as conn:
        if action == "report_loss":
            await lifecycle.report_loss(conn, ROOT, card["id"])
        elif action == "freeze":
            await lifecycle.freeze_card(conn, ROOT, card["id"], reason="investigation")
        else:
            await conn.execute(
                "UPDATE cards SET expires_on = current_date - 2 WHERE id = $1", card["id"]
            )
    r = await pay(client, dev, card, "5.00")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == code


async def test_replaced_card_is_refused_and_new_card_pays_from_same_balance(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, _ = await _campus(pool, settings)
    async with pool.acquire() as conn:
        new = await lifecycle.replace_card(
            conn, ROOT, card["id"], number="990000000001", uid="0A0B0C0D"
        )
    old = await pay(client, dev, card, "5.00")
    fresh = await pay(client, dev, new, "5.00")
    assert old.json()["error"]["code"] == "CARD_REPLACED"
    assert fresh.status_code == 200
    # 130.00 - 20.00 replacement fee - 5.00
    assert fresh.json()["balance"] == "105.00"


async def test_uid_not_matching_the_card_number_is_refused(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, _ = await _campus(pool, settings)
    r = await pay(client, dev, card | {"uid": "DEADBEEF"}, "5.00")
    assert r.status_code == 403
    assert r.json()["error"] | {"message": ""} == {
        "code": "CARD_UID_MISMATCH",
        "message": "",
        "field": "card_uid",
    }


async def test_limits_per_transaction_and_per_day(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, person_id, card, _ = await _campus(pool, settings, cash=500_000)
    async with pool.acquire() as conn:
        await set_pin(conn, settings, person_id)
        await conn.execute(
            """UPDATE schools SET settings = '{"payments": {"per_tx_limit": 20000,
                   "daily_limit": 30000}}' WHERE id = $1""",
            dev.school_id,
        )
    over_tx = await pay(client, dev, card, "200.01", pin="135790")
    ok = await pay(client, dev, card, "200.00", pin="135790")
    over_day = await pay(client, dev, card, "100.01", pin="135790")
    assert over_tx.json()["error"]["code"] == "OVER_TRANSACTION_LIMIT"
    assert ok.status_code == 200
    assert over_day.json()["error"]["code"] == "OVER_DAILY_LIMIT"
    assert over_day.json()["error"]["details"]["spent_today"] == "200.00"


async def test_holder_lowers_own_limit_but_cannot_raise_it(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    from tests.support import login, make_user

    dev, person_id, card, _ = await _campus(pool, settings)
    async with pool.acquire() as conn:
        await make_user(conn, "s1", "cardholder", dev.school_id, person_id=person_id)
    h = await login(client, "s1", "TST")
    low = await client.put("/api/v1/me/limits", json={"per_tx_limit": "8.00"}, headers=h)
    high = await client.put("/api/v1/me/limits", json={"per_tx_limit": "5000.00"}, headers=h)
    assert low.status_code == 200 and low.json()["per_tx_limit"] == "8.00"
    assert high.status_code == 403 and high.json()["error"]["code"] == "LIMIT_ABOVE_SCHOOL"
    r = await pay(client, dev, card, "8.01")
    assert r.json()["error"]["code"] == "OVER_TRANSACTION_LIMIT"


async def test_pin_missing_wrong_and_locked(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, person_id, card, _ = await _campus(pool, settings)
    async with pool.acquire() as conn:
        await set_pin(conn, settings, person_id, "246813")
    check = await device_call(
        client,
        dev,
        "POST",
        "/api/v1/terminal/pay/check",
        {"card_number": card["number"], "card_uid": card["uid"], "amount": "60.00"},
    )
    small = await pay(client, dev, card, "50.00")
    missing = await pay(client, dev, card, "60.00")
    wrong1 = await pay(client, dev, card, "60.00", pin="111222")
    right = await pay(client, dev, card, "60.00", pin="246813")
    wrong2 = await pay(client, dev, card, "60.00", pin="111223")
    wrong3 = await pay(client, dev, card, "60.00", pin="111224")
    wrong4 = await pay(client, dev, card, "60.00", pin="111225")
    locked = await pay(client, dev, card, "60.00", pin="246813")

    assert check.status_code == 200 and check.json()["pin_required"] is True
    assert small.status_code == 200  # 50.00 is not above the 50.00 threshold
    assert missing.json()["error"]["code"] == "PIN_REQUIRED"
    assert wrong1.json()["error"]["code"] == "PIN_WRONG"
    assert wrong1.json()["error"]["details"]["tries_left"] == 2
    assert right.status_code == 200, right.text  # a right PIN resets the count
    assert wrong2.json()["error"]["code"] == "PIN_WRONG"
    assert wrong3.json()["error"]["code"] == "PIN_WRONG"
    assert wrong4.json()["error"]["code"] == "PIN_LOCKED"
    assert locked.json()["error"]["code"] == "PIN_LOCKED"
    # even a small payment is refused while locked, until the PIN is reset
    assert (await pay(client, dev, card, "1.00")).json()["error"]["code"] == "PIN_LOCKED"
    async with pool.acquire() as conn:
        await set_pin(conn, settings, person_id, "975310")
    assert (await pay(client, dev, card, "1.00")).status_code == 200


async def test_daily_cumulative_pin_threshold(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, _ = await _campus(pool, settings, cash=50_000)
    for _ in range(4):
        assert (await pay(client, dev, card, "50.00")).status_code == 200
    # 200.00 spent today: the next payment takes the day over 200.00 and needs the PIN
    assert (await pay(client, dev, card, "0.01")).json()["error"]["code"] == "PIN_REQUIRED"


async def test_merchant_not_approved_is_refused(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _, card, _ = await _campus(pool, settings, merchant_status="pending")
    r = await pay(client, dev, card, "5.00")
    assert r.status_code == 403 and r.json()["error"]["code"] == "MERCHANT_NOT_APPROVED"


async def test_unknown_terminal_bad_signature_stale_timestamp_reused_nonce(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, _ = await _campus(pool, settings)
    body = {
        "client_id": "sig-test-0001",
        "card_number": card["number"],
        "card_uid": card["uid"],
        "amount": "1.00",
    }
    path = "/api/v1/terminal/pay"
    unknown = await device_call(
        client, Device(0, "POS-NOPE", dev.key, 1, None, 0), "POST", path, body
    )
    bad = await device_call(client, dev, "POST", path, body, key=b"x" * 32)
    stale = await device_call(client, dev, "POST", path, body, timestamp=int(time.time()) - 301)
    first = await device_call(client, dev, "POST", path, body, nonce_value="nonce-reused-0001")
    reused = await device_call(
        client,
        dev,
        "POST",
        path,
        body | {"client_id": "sig-test-0002"},
        nonce_value="nonce-reused-0001",
    )
    tampered_headers = dict(first.request.headers)
    tampered = await client.post(
        path,
        content=json.dumps(body | {"amount": "99.00"}).encode(),
        headers=tampered_headers | {"X-CC-Nonce": "nonce-other-00001"},
    )

    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "TERMINAL_UNKNOWN"
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "SIGNATURE_INVALID"
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "TIMESTAMP_STALE"
    assert first.status_code == 200
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "NONCE_REUSED"
    assert tampered.json()["error"]["code"] == "SIGNATURE_INVALID"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 1


async def test_key_rotation_old_key_works_until_new_is_used(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    dev, _person_id, card, _ = await _campus(pool, settings)
    r = await device_call(client, dev, "POST", "/api/v1/terminal/key/rotate")
    assert r.status_code == 200, r.text
    new = Device(
        dev.id,
        dev.sn,
        bytes.fromhex(r.json()["key"]),
        r.json()["key_version"],
        dev.merchant_id,
        dev.school_id,
    )
    assert new.key_version == 2
    # the old key still works (the answer might have been lost) ...
    assert (await pay(client, dev, card, "1.00")).status_code == 200
    # ... until the device signs with the new one
    hb = await device_call(client, new, "POST", "/api/v1/terminal/heartbeat", {})
    assert hb.status_code == 200, hb.text
    old = await pay(client, dev, card, "1.00")
    assert old.status_code == 401 and old.json()["error"]["code"] == "KEY_VERSION_INVALID"
    assert (await pay(client, new, card, "1.00")).status_code == 200


async def test_a_resent_rotation_signed_with_the_old_key_returns_the_same_new_key(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    """The protocol says to resend a rotation when unsure: the resend, signed with the only key
    the device has, gets the same new key back until the device has used it."""
    # given: a rotation whose answer the device never received
    dev, _person_id, card, _ = await _campus(pool, settings)
    lost = await device_call(client, dev, "POST", "/api/v1/terminal/key/rotate")
    assert lost.status_code == 200, lost.text
    # when: the device resends it, signed with its old key (twice: still unsure)
    again = await device_call(client, dev, "POST", "/api/v1/terminal/key/rotate")
    third = await device_call(client, dev, "POST", "/api/v1/terminal/key/rotate")
    # then: the same new key, not a newer one
    assert again.status_code == 200, again.text
    assert again.json() == lost.json() == third.json()
    assert again.json()["key_version"] == 2
    new = Device(
        dev.id,
        dev.sn,
        bytes.fromhex(again.json()["key"]),
        2,
        dev.merchant_id,
        dev.school_id,
    )
    assert (await pay(client, new, card, "1.00")).status_code == 200
    # once the new key is used, the old one is gone, and so is the resend's answer
    late = await device_call(client, dev, "POST", "/api/v1/terminal/key/rotate")
    assert late.status_code == 401 and late.json()["error"]["code"] == "KEY_VERSION_INVALID"
    # the device can rotate again with its new key
    rotated = await device_call(client, new, "POST", "/api/v1/terminal/key/rotate")
    assert rotated.status_code == 200 and rotated.json()["key_version"] == 3


async def test_an_operator_rotation_revokes_the_old_key_at_once(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    """An operator rotates because a key may have leaked: the old key has no grace."""
    # given: a terminal whose key works
    dev, _person_id, card, _ = await _campus(pool, settings)
    async with pool.acquire() as conn:
        await make_user(conn, "ops-rotate", "settlement", dev.school_id)
    admin = await login(client, "ops-rotate", "TST")
    assert (await pay(client, dev, card, "1.00")).status_code == 200
    # when: an operator rotates it
    rotated = await client.post(f"/api/v1/admin/terminals/{dev.id}/rotate-key", headers=admin)
    assert rotated.status_code == 200, rotated.text
    # then: the old key is refused at once; the new one works
    old = await pay(client, dev, card, "1.00")
    assert old.status_code == 401 and old.json()["error"]["code"] == "KEY_VERSION_INVALID"
    new = Device(
        dev.id,
        dev.sn,
        bytes.fromhex(rotated.json()["key"]),
        rotated.json()["key_version"],
        dev.merchant_id,
        dev.school_id,
    )
    assert (await pay(client, new, card, "1.00")).status_code == 200


async def test_code_payer_pays_once_with_same_rules(pool: PgPool, settings: Settings) -> None:
    from campuscard.ledger.money import Money
    from campuscard.payments import booking, terminals

    dev, person_id, _card, _ = await _campus(pool, settings)
    signed = terminals.SignedTerminal(
        terminals.TerminalRow(
            dev.id, dev.sn, dev.school_id, "pos", "active", dev.merchant_id, None, 1, None
        ),
        1,
        "n" * 16,
        int(time.time()),
        b"",
    )
    payer = booking.VerifiedPayer(person_id, "paycode:dev1:0001")
    async with pool.acquire() as conn:
        first = await booking.book_payment(
            conn, settings, signed, client_id="code-pay-0001", payer=payer, amount=Money(500)
        )
        signed2 = terminals.SignedTerminal(signed.terminal, 1, "m" * 16, signed.timestamp, b"")
        second = await booking.book_payment(
            conn, settings, signed2, client_id="code-pay-0002", payer=payer, amount=Money(500)
        )
        signed3 = terminals.SignedTerminal(signed.terminal, 1, "o" * 16, signed.timestamp, b"")
        big = await booking.book_payment(
            conn,
            settings,
            signed3,
            client_id="code-pay-0003",
            payer=booking.VerifiedPayer(person_id, "paycode:dev1:0002"),
            amount=Money(6000),
        )
    assert first.ok and first.body["method"] == "code"
    assert second.body["error"]["code"] == "CREDENTIAL_USED"
    assert big.body["error"]["code"] == "PIN_REQUIRED"


async def test_school_payment_rules_api_changes_the_pin_threshold(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    from tests.support import login, make_user

    dev, _, card, _ = await _campus(pool, settings)
    async with pool.acquire() as conn:
        await make_user(conn, "boss", "school_admin", dev.school_id)
    h = await login(client, "boss", "TST")
    bad = await client.put(
        "/api/v1/admin/schools/TST/payment-rules",
        headers=h,
        json={"per_tx_limit": "10.00", "daily_limit": "5.00"},
    )
    ok = await client.put(
        "/api/v1/admin/schools/TST/payment-rules", headers=h, json={"pin_over_per_tx": "30.00"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "per_tx_limit"
    assert ok.status_code == 200 and ok.json()["pin_over_per_tx"] == "30.00"
    assert ok.json()["purse_order"] == ["subsidy", "cash"]
    assert (await pay(client, dev, card, "30.01")).json()["error"]["code"] == "PIN_REQUIRED"
    assert (await pay(client, dev, card, "30.00")).status_code == 200


async def test_busy_canteen_spreads_credits_over_shards_by_terminal(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    # given a canteen with 8 account shards and 8 windows
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, _ = await make_merchant(conn, school.id, shards=8)
        devices = [
            await make_device(conn, settings, school.id, merchant_id, f"POS-W{i:03d}")
            for i in range(8)
        ]
        _, card = await make_cardholder(conn, school.id, "S1", cash=50_000)

    # when every window takes a payment at once
    answers = await asyncio.gather(*(pay(client, d, card, "3.00") for d in devices))

    # then each window credited its own shard (no single hot row), and the sum is right
    assert all(a.status_code == 200 for a in answers)
    async with pool.acquire() as conn:
        shards = await conn.fetch(
            "SELECT a.shard, a.balance FROM accounts a WHERE a.merchant_id = $1 ORDER BY shard",
            merchant_id,
        )
        assert [s["balance"] for s in shards] == [300] * 8
        assert await postings.merchant_balance(conn, merchant_id) == 2_400
