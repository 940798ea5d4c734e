"""The cardholder's card, limits and PIN pages and the card center's card page."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import make_cardholder
from tests.support_web import page_csrf, web_login


async def test_cardholder_reports_loss_online_and_only_the_card_center_unblocks(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    person, card = await make_cardholder(conn, school.id, "S001", cash=100)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    await make_user(conn, "desk", "card_center", school.id)
    # the student reports the card lost from the phone
    await web_login(client, "S001", school.code)
    token = await page_csrf(client, "/m/card")
    r = await client.post(f"/m/card/{card['id']}/loss", data={"csrf_token": token})
    assert r.status_code == 303
    assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", card["id"]) == "lost"
    page = await client.get("/m/card?done=loss")
    assert 'data-testid="loss-done"' in page.text and "已挂失" in page.text
    assert 'data-testid="report-loss"' not in page.text
    # the card center unblocks only with the verification written down
    await web_login(client, "desk", school.code)
    url = f"/admin/s/{school.code}/cards/{card['id']}"
    token = await page_csrf(client, url)
    missing = await client.post(f"{url}/unblock", data={"csrf_token": token, "reason": " "})
    assert missing.status_code == 422 and "身份核验记录" in missing.text
    ok = await client.post(f"{url}/unblock", data={"csrf_token": token, "reason": "已核对身份证"})
    assert ok.status_code == 303
    assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", card["id"]) == "active"
    history = await client.get(url)
    assert "已核对身份证" in history.text


async def test_someone_elses_card_cannot_be_reported_lost(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    me, _ = await make_cardholder(conn, school.id, "S001")
    _, theirs = await make_cardholder(conn, school.id, "S002")
    await make_user(conn, "S001", "cardholder", school.id, person_id=me)
    await web_login(client, "S001", school.code)
    token = await page_csrf(client, "/m/card")
    r = await client.post(f"/m/card/{theirs['id']}/loss", data={"csrf_token": token})
    assert r.status_code in (403, 404)
    assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", theirs["id"]) == "active"


async def test_limits_can_only_be_lowered_and_pin_needs_the_password(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    person, _ = await make_cardholder(conn, school.id, "S001")
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    await web_login(client, "S001", school.code)
    token = await page_csrf(client, "/m/settings")
    lower = await client.post(
        "/m/settings/limits",
        data={"csrf_token": token, "per_tx_limit": "10.00", "daily_limit": "30.00"},
    )
    assert lower.status_code == 303
    row = await conn.fetchrow(
        "SELECT per_tx_limit, daily_limit FROM pay_settings WHERE person_id = $1", person
    )
    assert dict(row) == {"per_tx_limit": 1000, "daily_limit": 3000}
    higher = await client.post(
        "/m/settings/limits",
        data={"csrf_token": token, "per_tx_limit": "99999.00", "daily_limit": ""},
    )
    assert higher.status_code == 403 and 'data-testid="settings-error"' in higher.text
    bad_amount = await client.post(
        "/m/settings/limits", data={"csrf_token": token, "per_tx_limit": "1.234"}
    )
    assert bad_amount.status_code == 422
    wrong = await client.post(
        "/m/settings/pin",
        data={
            "csrf_token": token,
            "new_pin": "246810",
            "new_pin_again": "246810",
            "password": "not-my-password",
        },
    )
    assert wrong.status_code == 401
    assert not await conn.fetchval(
        "SELECT pin_hash IS NOT NULL FROM pay_settings WHERE person_id = $1", person
    )
    differ = await client.post(
        "/m/settings/pin",
        data={
            "csrf_token": token,
            "new_pin": "246810",
            "new_pin_again": "246811",
            "password": PASSWORD,
        },
    )
    assert differ.status_code == 422
    ok = await client.post(
        "/m/settings/pin",
        data={
            "csrf_token": token,
            "new_pin": "246810",
            "new_pin_again": "246810",
            "password": PASSWORD,
        },
    )
    assert ok.status_code == 303
    assert await conn.fetchval(
        "SELECT pin_hash IS NOT NULL FROM pay_settings WHERE person_id = $1", person
    )


async def test_console_registers_approves_merchants_and_terminals_with_keys_shown_once(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "ops", "school_admin", school.id)
    await make_user(conn, "desk", "card_center", school.id)
    await web_login(client, "ops", school.code)
    url = f"/admin/s/{school.code}/merchants"
    token = await page_csrf(client, url)
    r = await client.post(
        url, data={"csrf_token": token, "name": "水果店", "channel": "other", "commission": "1.50"}
    )
    assert r.status_code == 303
    merchant = await conn.fetchrow("SELECT id, status, commission_bp FROM merchants")
    assert (merchant["status"], merchant["commission_bp"]) == ("pending", 150)
    bad = await client.post(
        url, data={"csrf_token": token, "name": "坏", "channel": "other", "commission": "1.5.0"}
    )
    assert bad.status_code == 422 and 'data-testid="form-error"' in bad.text
    ok = await client.post(f"{url}/{merchant['id']}/approve", data={"csrf_token": token})
    assert ok.status_code == 303
    assert await conn.fetchval("SELECT status FROM merchants") == "approved"
    reg = await client.post(
        f"/admin/s/{school.code}/terminals",
        data={
            "csrf_token": token,
            "sn": "POS-FRUIT-1",
            "kind": "pos",
            "merchant_id": str(merchant["id"]),
            "outlet_id": "",
            "location": "东门",
        },
    )
    assert reg.status_code == 200 and 'data-testid="key-hex"' in reg.text
    listing = await client.get(url)
    assert "POS-FRUIT-1" in listing.text and 'data-testid="key-hex"' not in listing.text
    terminal_id = await conn.fetchval("SELECT id FROM terminals WHERE sn = 'POS-FRUIT-1'")
    rotated = await client.post(
        f"/admin/s/{school.code}/terminals/{terminal_id}/rotate", data={"csrf_token": token}
    )
    assert rotated.status_code == 200 and 'data-testid="key-hex"' in rotated.text
    assert await conn.fetchval("SELECT key_version FROM terminals WHERE id = $1", terminal_id) == 2
    # the card center sees merchants but may not approve or register
    await web_login(client, "desk", school.code)
    view = await client.get(url)
    assert view.status_code == 200 and 'data-testid="terminal-form"' not in view.text
    token = await page_csrf(client, url)
    refused = await client.post(f"{url}/{merchant['id']}/suspend", data={"csrf_token": token})
    assert refused.status_code in (403, 404)
    assert await conn.fetchval("SELECT status FROM merchants") == "approved"


async def test_card_center_replaces_and_cancels_cards_from_the_console(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # given a student with 100.00 on a lost card, and a second student leaving
    school = await make_school(conn)
    person, card = await make_cardholder(conn, school.id, "S001", cash=10_000)
    await conn.execute("UPDATE cards SET state = 'lost' WHERE id = $1", card["id"])
    other, other_card = await make_cardholder(conn, school.id, "S002", cash=2_345)
    await make_user(conn, "desk", "card_center", school.id)
    await web_login(client, "desk", school.code)
    url = f"/admin/s/{school.code}/cards/{card['id']}"
    token = await page_csrf(client, url)
    assert 'data-testid="card-action-replace"' in (await client.get(url)).text

    # when a bad chip UID is typed, the page says so and nothing changes
    bad = await client.post(
        f"{url}/replace", data={"csrf_token": token, "number": "990000000001", "uid": "xyz"}
    )
    assert bad.status_code == 422
    assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", card["id"]) == "lost"

    # when the card center replaces the lost card
    r = await client.post(
        f"{url}/replace",
        data={
            "csrf_token": token,
            "number": "990000000001",
            "uid": "04B20001",
            "fee_source": "purse",
        },
    )

    # then the new card is active, the old one replaced, and the fee came from the purse
    assert r.status_code == 303
    new_id = await conn.fetchval("SELECT id FROM cards WHERE number = '990000000001'")
    assert r.headers["location"].endswith(f"/cards/{new_id}?done=replace")
    assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", card["id"]) == "replaced"
    assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", new_id) == "active"
    cash = await conn.fetchval(
        "SELECT balance FROM accounts WHERE person_id = $1 AND purse = 'cash'", person
    )
    assert cash == 10_000 - 2_000  # the default replacement fee
    page = await client.get(r.headers["location"])
    assert 'data-testid="card-done"' in page.text

    # when the other student's card is cancelled with cash paid at the counter
    url2 = f"/admin/s/{school.code}/cards/{other_card['id']}"
    token = await page_csrf(client, url2)
    missing = await client.post(f"{url2}/cancel", data={"csrf_token": token, "reason": " "})
    assert missing.status_code == 422
    r = await client.post(
        f"{url2}/cancel", data={"csrf_token": token, "route": "cash_desk", "reason": "毕业离校"}
    )
    assert r.status_code == 303
    assert (
        await conn.fetchval("SELECT state FROM cards WHERE id = $1", other_card["id"])
        == "cancelled"
    )
    assert (
        await conn.fetchval(
            "SELECT coalesce(sum(balance), 0) FROM accounts WHERE person_id = $1", other
        )
        == 0
    )
