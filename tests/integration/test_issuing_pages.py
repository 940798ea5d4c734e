"""Pages for getting a card: the parent's application form (lists, never typed), the console's
imports page, approval queue and production queue."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support import make_user
from tests.support_issuing import make_campus, make_parent
from tests.support_web import csrf_from, web_login


async def test_parent_applies_on_the_phone_and_sees_the_code_once(
    client: httpx.AsyncClient, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
        parent = await make_parent(
            conn, campus, "13900000001", "13900000001", guardian_of="2026000001"
        )
        await conn.execute(  # a school-made parent sign-in (guardian role)
            "UPDATE users SET school_id = $1 WHERE id = $2", campus.school_id, parent.user_id
        )
        await conn.execute(
            "INSERT INTO user_roles(user_id, role, school_id) VALUES ($1, 'guardian', $2)",
            parent.user_id,
            campus.school_id,
        )
    await web_login(client, "13900000001", campus.code)
    form = await client.get("/m/apply")
    assert form.status_code == 200 and 'value="32"' in form.text
    schools = await client.get("/m/apply/schools?province=32")
    assert f'value="{campus.code}"' in schools.text
    classes = await client.get(f"/m/apply/classes?school={campus.code}")
    assert 'value="一年级2班"' in classes.text
    data = {
        "csrf_token": csrf_from(form.text),
        "client_id": "web-apply-000001",
        "province": "32",
        "school": campus.code,
        "class_name": "一年级2班",
        "name": "学生9",
        "number": "2026000001",
    }
    wrong = await client.post("/m/apply", data=data)
    assert wrong.status_code == 422 and 'data-field="name"' in wrong.text
    right = await client.post(
        "/m/apply", data=data | {"name": "学生1", "client_id": "web-apply-000002"}
    )
    assert right.status_code == 200, right.text
    code = re.search(r'data-testid="pickup-code">([0-9 ]+)<', right.text)
    assert code and len(code.group(1).replace(" ", "")) == 16
    again = await client.get("/m/apply")
    assert code.group(1) not in again.text  # shown once only


async def test_console_queues_approve_produce_and_hand_out(
    client: httpx.AsyncClient, pool: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
        await make_user(conn, "cc1", "card_center", campus.school_id)
        stranger = await make_parent(conn, campus, "stranger", "13900000009")
    from campuscard.config import Settings
    from campuscard.issuing import applications as apps

    async with pool.acquire() as conn:
        outcome, _ = await apps.do_apply(
            conn,
            Settings(_env_file=None),  # type: ignore[call-arg]
            stranger,
            apps.ApplicationInput(
                province="32",
                school=campus.code,
                class_name="一年级2班",
                name="学生1",
                number="2026000001",
                delivery="counter",
            ),
            client_id="queue-apply-0001",
        )
    app_id = outcome.body["id"]
    await web_login(client, "cc1", campus.code)
    queue = await client.get(f"/admin/s/{campus.code}/applications")
    assert queue.status_code == 200 and f'data-testid="approve-{app_id}"' in queue.text
    approved = await client.post(
        f"/admin/s/{campus.code}/applications/{app_id}",
        data={"csrf_token": csrf_from(queue.text), "decision": "approve"},
    )
    assert approved.status_code == 303
    production = await client.get(f"/admin/s/{campus.code}/production")
    assert "学生1" in production.text
    token = csrf_from(production.text)
    produced = await client.post(
        f"/admin/s/{campus.code}/production/produced",
        data={"csrf_token": token, "application_id": str(app_id)},
    )
    assert produced.status_code == 303
    handed = await client.post(
        f"/admin/s/{campus.code}/production/{app_id}/hand-out",
        data={"csrf_token": token, "card_number": "56000001", "card_uid": "0a0b0c0d"},
    )
    assert handed.status_code == 303
    assert await pool.fetchval("SELECT status FROM card_applications") == "issued"
    imports = await client.get(f"/admin/s/{campus.code}/imports")
    assert imports.status_code == 200 and "class.xlsx" in imports.text
    assert 'src="/static/js/import_upload.js"' in imports.text
