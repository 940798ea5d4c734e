"""An anonymous merchant application is no working account: until an operator approves the
merchant, its applicant sees only its own application — no users, outlets, class lists or
card applications."""

from __future__ import annotations

import httpx

from campuscard.db.pool import PgPool
from tests.support import login, make_school, make_student, make_user

APPLICATION = {
    "name": "路边摊",
    "channel": "other",
    "contact_name": "某人",
    "contact_phone": "13800000009",
    "username": "stall",
    "password": "stall-pass-123",
}


async def test_an_applicant_sees_only_its_application_until_approved(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given: a school with a student, and an anonymous merchant application
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_student(conn, school.id, "2026000001")
        await make_user(conn, "boss", "school_admin", school.id)
    applied = await client.post("/api/v1/schools/TST/merchant-applications", json=APPLICATION)
    assert applied.status_code == 201, applied.text
    merchant_id = applied.json()["id"]
    applicant = await login(client, "stall", "TST", password="stall-pass-123")

    # when / then: its own application is visible
    own = await client.get(f"/api/v1/merchants/{merchant_id}", headers=applicant)
    assert own.status_code == 200 and own.json()["status"] == "pending"
    # and nothing else works
    outlet = await client.post(
        f"/api/v1/merchants/{merchant_id}/outlets", json={"name": "1号"}, headers=applicant
    )
    staff = await client.post(
        f"/api/v1/merchants/{merchant_id}/staff",
        json={"username": "stall2", "password": "stall2-pass-123", "display_name": "x"},
        headers=applicant,
    )
    classes = await client.get(
        "/api/v1/card-applications/options/classes", params={"school": "TST"}, headers=applicant
    )
    card = await client.post(
        "/api/v1/card-applications",
        json={
            "client_id": "apply-stall-000001",
            "province": "32",
            "school": "TST",
            "class_name": "x",
            "name": "x",
            "number": "2026000001",
        },
        headers=applicant,
    )
    assert outlet.status_code == 404, outlet.text
    assert staff.status_code == 404, staff.text
    assert classes.status_code == 403 and classes.json()["error"]["code"] == "MERCHANT_NOT_APPROVED"
    assert card.status_code == 403 and card.json()["error"]["code"] == "MERCHANT_NOT_APPROVED"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outlets") == 0
        assert await conn.fetchval("SELECT count(*) FROM card_applications") == 0
        assert await conn.fetchval("SELECT count(*) FROM users WHERE username = 'stall2'") == 0

    # once approved, the same sign-in manages its merchant
    admin = await login(client, "boss", "TST")
    decided = await client.post(
        f"/api/v1/admin/merchants/{merchant_id}/decision",
        json={"decision": "approve"},
        headers=admin,
    )
    assert decided.status_code == 200, decided.text
    later = await client.post(
        f"/api/v1/merchants/{merchant_id}/outlets", json={"name": "1号"}, headers=applicant
    )
    assert later.status_code == 201, later.text
