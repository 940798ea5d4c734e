"""A parent login reads the child's balance and statement: only the card center or the school
admin links one, and the link is audited. A teacher cannot make themselves a parent."""

from __future__ import annotations

import httpx

from campuscard.db.pool import PgPool
from tests.support import login, make_school, make_student, make_user


async def test_a_teacher_cannot_link_a_parent_login_to_read_a_student(
    pool: PgPool, client: httpx.AsyncClient
) -> None:
    # given: a student with money, a teacher and the card center of the school
    async with pool.acquire() as conn:
        school = await make_school(conn, "AAA")
        person = await make_student(conn, school.id, "2026001", cash=5000)
        await make_user(conn, "teach", "teacher", school.id)
        await make_user(conn, "clerk", "card_center", school.id)
    teacher = await login(client, "teach", "AAA")
    body = {"phone": "13911112222", "password": "parent-pass-1"}

    # when: the teacher creates a parent login for the student
    r = await client.post(
        f"/api/v1/admin/persons/{person}/guardian-login", json=body, headers=teacher
    )

    # then: refused, nothing created, so no one signs in to read the balance
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "ROLE_REQUIRED"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM guardian_links") == 0
        assert (
            await conn.fetchval("SELECT count(*) FROM users WHERE username = $1", body["phone"])
            == 0
        )

    # the card center may, and the link is in the audit log under its name
    clerk = await login(client, "clerk", "AAA")
    ok = await client.post(
        f"/api/v1/admin/persons/{person}/guardian-login", json=body, headers=clerk
    )
    assert ok.status_code == 201, ok.text
    async with pool.acquire() as conn:
        entry = await conn.fetchrow(
            """SELECT a.target_id, u.username FROM audit_log a JOIN users u ON u.id = a.actor_user_id
                WHERE a.action = 'user.link_guardian'"""
        )
    assert entry is not None and (entry["target_id"], entry["username"]) == (str(person), "clerk")
