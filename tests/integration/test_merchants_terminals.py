"""Merchants register and are approved; terminals are registered, rotated, disabled and
report heartbeats; the console shows which are offline (issue 3)."""

from __future__ import annotations

import httpx

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from tests.support import login, make_school, make_user
from tests.support_payments import (
    Device,
    device_call,
    make_cardholder,
    make_device,
    make_merchant,
    pay,
)


async def test_merchant_applies_admin_approves_then_terminal_takes_payments(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "boss", "school_admin", school.id)
        _, card = await make_cardholder(conn, school.id, "S1", cash=5_000)
    admin = await login(client, "boss", "TST")

    applied = await client.post(
        "/api/v1/schools/TST/merchant-applications",
        json={
            "name": "二食堂",
            "channel": "canteen",
            "contact_name": "王师傅",
            "contact_phone": "13800000000",
            "username": "canteen2",
            "password": "canteen2-pass",
        },
    )
    assert applied.status_code == 201, applied.text
    merchant_id = applied.json()["id"]
    manager = await login(client, "canteen2", "TST", password="canteen2-pass")
    # before approval the applicant adds nothing (test_merchant_applicant.py); the admin may
    outlet = await client.post(
        f"/api/v1/merchants/{merchant_id}/outlets", json={"name": "3号窗口"}, headers=admin
    )
    term = await client.post(
        "/api/v1/admin/schools/TST/terminals",
        headers=admin,
        json={
            "sn": "POS-C2-01",
            "kind": "pos",
            "merchant_id": merchant_id,
            "outlet_id": outlet.json()["id"],
        },
    )
    assert term.status_code == 201, term.text
    dev = Device(
        term.json()["id"], "POS-C2-01", bytes.fromhex(term.json()["key"]), 1, merchant_id, school.id
    )

    pending = await pay(client, dev, card, "3.00")
    decided = await client.post(
        f"/api/v1/admin/merchants/{merchant_id}/decision",
        json={"decision": "approve", "commission_bp": 50},
        headers=admin,
    )
    approved = await pay(client, dev, card, "3.00")

    assert pending.json()["error"]["code"] == "MERCHANT_NOT_APPROVED"
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    assert approved.status_code == 200 and approved.json()["outlet"] == "3号窗口"
    inbox = await client.get(f"/api/v1/merchants/{merchant_id}", headers=manager)
    assert inbox.json()["commission_bp"] == 50
    refused = await client.post(
        f"/api/v1/admin/merchants/{merchant_id}/decision",
        json={"decision": "reject"},
        headers=admin,
    )
    assert refused.status_code == 409


async def test_heartbeat_online_status_disable_and_admin_rotation(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "boss", "school_admin", school.id)
    admin = await login(client, "boss", "TST")
    reg = await client.post(
        "/api/v1/admin/schools/TST/terminals",
        headers=admin,
        json={"sn": "KIOSK-0001", "kind": "kiosk", "location": "图书馆"},
    )
    dev = Device(
        reg.json()["id"], "KIOSK-0001", bytes.fromhex(reg.json()["key"]), 1, None, school.id
    )
    before = await client.get("/api/v1/admin/schools/TST/terminals", headers=admin)
    hb = await device_call(
        client,
        dev,
        "POST",
        "/api/v1/terminal/heartbeat",
        {"app_version": "1.2.0", "blacklist_version": 0},
    )
    after = await client.get("/api/v1/admin/schools/TST/terminals", headers=admin)
    assert before.json()[0]["online"] is False
    assert hb.status_code == 200 and hb.json()["blacklist_version"] == 0
    assert after.json()[0]["online"] is True
    assert after.json()[0]["heartbeat"]["app_version"] == "1.2.0"

    rotated = await client.post(f"/api/v1/admin/terminals/{dev.id}/rotate-key", headers=admin)
    assert rotated.json()["key_version"] == 2 and rotated.json()["key"] != dev.key.hex()
    disabled = await client.post(
        f"/api/v1/admin/terminals/{dev.id}/status",
        headers=admin,
        json={"status": "disabled", "reason": "stolen"},
    )
    assert disabled.status_code == 200
    rekeyed = Device(
        dev.id,
        dev.sn,
        bytes.fromhex(rotated.json()["key"]),
        rotated.json()["key_version"],
        dev.merchant_id,
        dev.school_id,
    )
    refused = await device_call(client, rekeyed, "POST", "/api/v1/terminal/heartbeat", {})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "TERMINAL_DISABLED"
    async with pool.acquire() as conn:
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE school_id = $1 AND target_type = 'terminal' "
                "ORDER BY id",
                dev.school_id,
            )
        ]
    assert actions == ["terminal.register", "terminal.rotate_key", "terminal.status"]


async def test_terminal_key_is_never_stored(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "boss", "school_admin", school.id)
    admin = await login(client, "boss", "TST")
    reg = await client.post(
        "/api/v1/admin/schools/TST/terminals",
        headers=admin,
        json={"sn": "DOOR-0001", "kind": "door"},
    )
    key = reg.json()["key"]
    async with pool.acquire() as conn:
        dump = await conn.fetchval("SELECT row_to_json(t)::text FROM terminals t")
        audit = await conn.fetchval("SELECT string_agg(after::text, '') FROM audit_log")
    assert key not in dump and key not in audit


async def test_a_till_that_just_took_a_payment_shows_online_without_a_heartbeat(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "boss", "school_admin", school.id)
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
        _, card = await make_cardholder(conn, school.id, "S001", cash=1000)
    admin = await login(client, "boss", "TST")
    before = await client.get("/api/v1/admin/schools/TST/terminals", headers=admin)
    paid = await pay(client, dev, card, "3.00")
    after = await client.get("/api/v1/admin/schools/TST/terminals", headers=admin)
    assert before.json()[0]["online"] is False
    assert paid.status_code == 200, paid.text
    assert after.json()[0]["online"] is True
