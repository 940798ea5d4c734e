"""Managing sign-ins: who may create whom, cardholder and parent logins, unlock, deactivate."""

import httpx

from campuscard.db.pool import PgPool
from tests.support import PASSWORD, login, make_school, make_student, make_user


async def _school(pool: PgPool) -> tuple[int, int]:
    async with pool.acquire() as conn:
        school = await make_school(conn, "AAA")
        other = await make_school(conn, "BBB")
        await make_user(conn, "boss", "school_admin", school.id)
        await make_user(conn, "boss-b", "school_admin", other.id)
        await make_user(conn, "clerk", "card_center", school.id)
        person = await make_student(conn, school.id, "2026001", name="王五")
        await conn.execute(
            "INSERT INTO merchants(school_id, name, channel, status) VALUES ($1, '食堂', 'canteen', 'approved')",
            school.id,
        )
    return school.id, person


async def test_school_admin_creates_staff_who_can_sign_in(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    await _school(pool)
    h = await login(client, "boss", "AAA")
    r = await client.post(
        "/api/v1/admin/schools/AAA/users",
        json={
            "username": "cashier",
            "password": "long-enough-1",
            "display_name": "收银员",
            "roles": [{"role": "settlement"}],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    cashier = await login(client, "cashier", "AAA", "long-enough-1")
    me = (await client.get("/api/v1/auth/me", headers=cashier)).json()
    assert [g["role"] for g in me["roles"]] == ["settlement"]
    listed = (await client.get("/api/v1/admin/schools/AAA/users", headers=h)).json()
    assert {u["username"] for u in listed} >= {"boss", "clerk", "cashier"}
    audit = (
        await client.get("/api/v1/admin/schools/AAA/audit", params={"action": "user."}, headers=h)
    ).json()
    assert audit[0]["action"] == "user.create"


async def test_role_rules_are_enforced(pool: PgPool, client: httpx.AsyncClient) -> None:
    await _school(pool)
    boss = await login(client, "boss", "AAA")
    clerk = await login(client, "clerk", "AAA")
    base = {"username": "newbie", "password": "long-enough-1"}
    cases = [
        (clerk, base | {"roles": [{"role": "teacher"}]}, 403, None),
        (boss, base | {"roles": [{"role": "platform_admin"}]}, 422, "roles[0].role"),
        (boss, base | {"roles": [{"role": "merchant_staff"}]}, 422, "roles"),
        (boss, base | {"roles": [{"role": "teacher", "merchant_id": 1}]}, 422, "roles"),
        (boss, base | {"roles": [{"role": "merchant_staff", "merchant_id": 999}]}, 404, "roles"),
        (boss, base | {"roles": []}, 422, "roles"),
        (boss, base | {"password": "short", "roles": [{"role": "teacher"}]}, 422, "password"),
        (boss, {**base, "username": "boss", "roles": [{"role": "teacher"}]}, 409, "username"),
    ]
    for headers, body, status, field in cases:
        r = await client.post("/api/v1/admin/schools/AAA/users", json=body, headers=headers)
        assert r.status_code == status, (body, r.text)
        if field:
            assert r.json()["error"]["field"] == field
    # another school's admin cannot touch this school
    other = await login(client, "boss-b", "BBB")
    r = await client.post(
        "/api/v1/admin/schools/AAA/users",
        json=base | {"roles": [{"role": "teacher"}]},
        headers=other,
    )
    assert r.status_code == 404


async def test_cardholder_and_parent_logins(pool: PgPool, client: httpx.AsyncClient) -> None:
    _, person = await _school(pool)
    clerk = await login(client, "clerk", "AAA")
    r = await client.post(
        f"/api/v1/admin/persons/{person}/login", json={"password": "student-pass-1"}, headers=clerk
    )
    assert r.status_code == 201
    student = await login(client, "2026001", "AAA", "student-pass-1")
    assert (await client.get("/api/v1/auth/me", headers=student)).json()["person_id"] == person
    again = await client.post(
        f"/api/v1/admin/persons/{person}/login", json={"password": "student-pass-1"}, headers=clerk
    )
    assert again.status_code == 409

    r = await client.post(
        f"/api/v1/admin/persons/{person}/guardian-login",
        json={"phone": "13912345678", "password": "parent-pass-1"},
        headers=clerk,
    )
    assert r.status_code == 201
    parent = await login(client, "13912345678", "AAA", "parent-pass-1")
    me = (await client.get("/api/v1/auth/me", headers=parent)).json()
    assert [g["role"] for g in me["roles"]] == ["guardian"]
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT person_id FROM guardian_links WHERE user_id = $1", me["user_id"]
            )
            == person
        )


async def test_unlock_deactivate_and_password_changes(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    await _school(pool)
    boss = await login(client, "boss", "AAA")
    clerk_id = (
        await client.get("/api/v1/auth/me", headers=await login(client, "clerk", "AAA"))
    ).json()["user_id"]
    for _ in range(3):
        await client.post(
            "/api/v1/auth/login",
            json={"username": "clerk", "password": "nope-nope", "school": "AAA"},
        )
    locked = await client.post(
        "/api/v1/auth/login", json={"username": "clerk", "password": PASSWORD, "school": "AAA"}
    )
    assert locked.status_code == 429
    assert (
        await client.post(f"/api/v1/admin/users/{clerk_id}/unlock", headers=boss)
    ).status_code == 200
    clerk = await login(client, "clerk", "AAA")

    r = await client.post(
        "/api/v1/auth/password",
        json={"old_password": "wrong", "new_password": "new-password-9"},
        headers=clerk,
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "old_password"
    r = await client.post(
        "/api/v1/auth/password",
        json={"old_password": PASSWORD, "new_password": "new-password-9"},
        headers=clerk,
    )
    assert r.status_code == 200
    clerk = await login(client, "clerk", "AAA", "new-password-9")

    assert (
        await client.post(f"/api/v1/admin/users/{clerk_id}/deactivate", headers=boss)
    ).status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=clerk)).status_code == 401
    r = await client.post(
        "/api/v1/auth/login",
        json={"username": "clerk", "password": "new-password-9", "school": "AAA"},
    )
    assert r.status_code == 401
