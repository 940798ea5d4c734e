"""A parent sees their linked children (and only them) on the phone pages."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.support import make_school, make_student, make_user
from tests.support_web import page_csrf, web_login


async def test_parent_chooses_a_child_and_sees_only_linked_children(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    first = await make_student(conn, school.id, "S001", cash=1100, name="大宝")
    second = await make_student(conn, school.id, "S002", cash=2200, name="二宝")
    stranger = await make_student(conn, school.id, "S003", cash=3300, name="别人家")
    parent = await make_user(conn, "mum", "guardian", school.id)
    for child in (first, second):
        await conn.execute(
            "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
            parent,
            child,
            school.id,
        )
    await web_login(client, "mum", school.code)
    # with two children the home page asks which one
    r = await client.get("/m/")
    assert r.status_code == 303 and r.headers["location"] == "/m/children"
    kids = await client.get("/m/children")
    assert "大宝" in kids.text and "二宝" in kids.text and "别人家" not in kids.text
    token = await page_csrf(client, "/m/children")
    chosen = await client.post(f"/m/children/{second}", data={"csrf_token": token})
    assert chosen.status_code == 303
    home = await client.get("/m/")
    assert 'data-testid="balance-total">¥22.00<' in home.text and "二宝" in home.text
    # the chosen child's statement and cards
    statement = await client.get("/m/transactions")
    assert statement.status_code == 200 and "二宝" in statement.text
    assert "期初余额" in statement.text and "22.00" in statement.text
    assert "大宝" not in statement.text
    assert (await client.get("/m/card")).status_code == 200
    # another family's child: neither by link nor by choosing
    assert (await client.get(f"/m/?person={stranger}")).status_code == 404
    assert (await client.get(f"/m/transactions?person={stranger}")).status_code == 404
    refused = await client.post(f"/m/children/{stranger}", data={"csrf_token": token})
    assert refused.status_code == 404
    # a stale choice (the link was removed) sends the parent back to choosing
    client.cookies.set("cc_child", str(stranger), path="/m")
    stale = await client.get("/m/")
    assert stale.status_code == 303 and stale.headers["location"] == "/m/children"
