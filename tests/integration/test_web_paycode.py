"""The payment-code page over HTTP: only the cardholder gets it; unbinding needs the CSRF token."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from campuscard.config import Settings
from tests.support import make_school, make_user
from tests.support_paycodes import make_holder
from tests.support_web import csrf_from, web_login


async def test_page_shows_the_bound_phone_and_unbinds_it(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id, "S7")
    await web_login(client, "uS7", school.code)
    r = await client.get("/m/paycode")
    assert r.status_code == 200
    assert f'data-device="{holder.device.id}"' in r.text
    assert "/static/js/paycode.js" in r.text
    # without the CSRF token nothing changes
    bad = await client.post("/m/paycode/unbind", data={"device_id": str(holder.device.id)})
    assert bad.status_code == 403
    ok = await client.post(
        "/m/paycode/unbind",
        data={"device_id": str(holder.device.id), "csrf_token": csrf_from(r.text)},
    )
    assert ok.status_code == 303
    status = await conn.fetchval(
        "SELECT status FROM paycode_devices WHERE id = $1", holder.device.id
    )
    assert status == "revoked"
    again = await client.get("/m/paycode")
    assert 'data-device=""' in again.text


async def test_other_roles_do_not_get_the_page(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "parent1", "guardian", school.id)
    await make_user(conn, "cc1", "card_center", school.id)
    for username in ("parent1", "cc1"):
        await web_login(client, username, school.code)
        r = await client.get("/m/paycode")
        assert r.status_code == 403, (username, r.status_code)


async def test_a_display_is_only_for_the_merchant_of_the_till(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    ids = []
    for name in ("一食堂", "超市"):
        merchant_id = await conn.fetchval(
            "INSERT INTO merchants(school_id, name, channel, status) "
            "VALUES ($1, $2, 'canteen', 'approved') RETURNING id",
            school.id,
            name,
        )
        terminal_id = await conn.fetchval(
            "INSERT INTO terminals(school_id, sn, kind, merchant_id) "
            "VALUES ($1, $2, 'pos', $3) RETURNING id",
            school.id,
            f"POS-{merchant_id:04d}",
            merchant_id,
        )
        ids.append((merchant_id, terminal_id))
    await make_user(conn, "staff1", "merchant_staff", school.id, merchant_id=ids[0][0])
    await web_login(client, "staff1", school.code)
    listing = await client.get("/pos/display")
    assert listing.status_code == 200
    assert f"/pos/display/{ids[0][1]}" in listing.text
    assert f"/pos/display/{ids[1][1]}" not in listing.text
    assert (await client.get(f"/pos/display/{ids[0][1]}")).status_code == 200
    assert (await client.get(f"/pos/display/{ids[1][1]}")).status_code == 404
    assert (await client.get("/pos/display/99999999999999999999")).status_code in (404, 422)
