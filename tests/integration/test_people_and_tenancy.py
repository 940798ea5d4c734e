"""People in schools: created and edited with an audit trail; no school sees another's data."""

import itertools

import asyncpg
import httpx
import pytest

from campuscard.db.pool import PgPool
from tests.support import login, make_school, make_user


async def _two_schools(pool: PgPool) -> None:
    async with pool.acquire() as conn:
        a = await make_school(conn, "AAA")
        b = await make_school(conn, "BBB")
        await make_user(conn, "admin-a", "school_admin", a.id)
        await make_user(conn, "admin-b", "school_admin", b.id)
        await make_user(conn, "root", "platform_admin", None)


async def test_create_edit_and_find_a_person_with_guardian(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    await _two_schools(pool)
    h = await login(client, "admin-a", "AAA")
    cls = await client.post(
        "/api/v1/admin/schools/AAA/classes", json={"name": "一年级1班"}, headers=h
    )
    assert cls.status_code == 201
    r = await client.post(
        "/api/v1/admin/schools/AAA/persons",
        json={
            "kind": "student",
            "number": "2026001",
            "name": "李四",
            "class_id": cls.json()["id"],
            "phone": "13800000000",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["class_name"] == "一年级1班"
    g = await client.post(
        f"/api/v1/admin/persons/{pid}/guardians",
        json={"name": "李爸爸", "phone": "13900000000"},
        headers=h,
    )
    assert g.status_code == 201
    p = await client.patch(f"/api/v1/admin/persons/{pid}", json={"name": "李思"}, headers=h)
    assert p.json()["name"] == "李思"
    assert p.json()["guardians"][0]["phone"] == "13900000000"
    found = await client.get("/api/v1/admin/schools/AAA/persons", params={"q": "李"}, headers=h)
    assert [x["number"] for x in found.json()] == ["2026001"]
    audit = (await client.get("/api/v1/admin/schools/AAA/audit", headers=h)).json()
    actions = [a["action"] for a in audit]
    assert actions[:4] == ["person.update", "guardian.add", "person.create", "class.create"]
    assert audit[0]["before"] == {"name": "李四"}
    assert audit[0]["after"] == {"name": "李思"}


async def test_duplicate_student_number_is_refused(pool: PgPool, client: httpx.AsyncClient) -> None:
    await _two_schools(pool)
    h = await login(client, "admin-a", "AAA")
    body = {"kind": "student", "number": "2026001", "name": "李四"}
    assert (
        await client.post("/api/v1/admin/schools/AAA/persons", json=body, headers=h)
    ).status_code == 201
    r = await client.post("/api/v1/admin/schools/AAA/persons", json=body, headers=h)
    assert r.status_code == 409
    assert r.json()["error"]["field"] == "number"
    # the same number in another school is fine
    hb = await login(client, "admin-b", "BBB")
    assert (
        await client.post("/api/v1/admin/schools/BBB/persons", json=body, headers=hb)
    ).status_code == 201


async def test_another_schools_data_is_invisible(pool: PgPool, client: httpx.AsyncClient) -> None:
    await _two_schools(pool)
    ha = await login(client, "admin-a", "AAA")
    hb = await login(client, "admin-b", "BBB")
    r = await client.post(
        "/api/v1/admin/schools/AAA/persons",
        json={"kind": "student", "number": "1", "name": "甲"},
        headers=ha,
    )
    pid = r.json()["id"]
    for url in (
        "/api/v1/admin/schools/AAA/persons",
        "/api/v1/admin/schools/AAA/audit",
        f"/api/v1/admin/persons/{pid}",
    ):
        r = await client.get(url, headers=hb)
        assert r.status_code in (403, 404), url
        assert "甲" not in r.text
    assert (
        await client.patch(f"/api/v1/admin/persons/{pid}", json={"name": "乙"}, headers=hb)
    ).status_code in (403, 404)
    root = await login(client, "root", None)
    assert (await client.get(f"/api/v1/admin/persons/{pid}", headers=root)).status_code == 200


async def test_bad_person_input_names_the_field(pool: PgPool, client: httpx.AsyncClient) -> None:
    await _two_schools(pool)
    h = await login(client, "admin-a", "AAA")
    cases = [
        ({"kind": "alien", "number": "1", "name": "x"}, "kind"),
        ({"kind": "student", "number": "有空格 1", "name": "x"}, "number"),
        ({"kind": "student", "number": "1", "name": ""}, "name"),
        ({"kind": "student", "number": "1", "name": "x", "phone": "call me"}, "phone"),
        ({"kind": "student", "number": "1", "name": "x", "class_id": 999999}, "class_id"),
        ({"kind": "student", "number": "1", "name": "x", "extra": 1}, "extra"),
    ]
    for body, field in cases:
        r = await client.post("/api/v1/admin/schools/AAA/persons", json=body, headers=h)
        assert r.status_code in (404, 422), r.text
        assert r.json()["error"]["field"] == field, body
    assert (await client.get("/api/v1/admin/schools/AAA/persons", headers=h)).json() == []


async def test_teacher_cannot_read_the_audit_log(pool: PgPool, client: httpx.AsyncClient) -> None:
    async with pool.acquire() as conn:
        s = await make_school(conn, "AAA")
        await make_user(conn, "teach", "teacher", s.id)
    h = await login(client, "teach", "AAA")
    r = await client.get("/api/v1/admin/schools/AAA/audit", headers=h)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "ROLE_REQUIRED"


async def test_audit_log_cannot_be_edited(pool: PgPool, client: httpx.AsyncClient) -> None:
    await _two_schools(pool)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") >= 2
        for sql in (
            "UPDATE audit_log SET action = 'x'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.RestrictViolationError):
                await conn.execute(sql)
        # each entry is chained to the one before it
        rows = await conn.fetch("SELECT prev_hash, hash FROM audit_log ORDER BY id")
        for before, after in itertools.pairwise(rows):
            assert after["prev_hash"] == before["hash"]
