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
    assert missing.status_code == 422 and "verif" in missing.text
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
