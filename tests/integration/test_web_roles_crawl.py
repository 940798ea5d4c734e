"""Crawl every page as every role: no page answers 500, a role sees only its own menu, and
nothing of another school shows up (its pages answer 404)."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.app import create_app
from campuscard.config import Settings
from tests.support import make_school, make_student, make_user
from tests.support_web import web_login

LINK = re.compile(r'href="(/[^"#]*)"')
MENU = re.compile(r'data-menu="([a-z0-9_.]+)"')

# menu prefix per role: a role never sees another audience's menu
ROLE_AREAS = {
    "platform_admin": "a.",
    "school_admin": "a.",
    "card_center": "a.",
    "settlement": "a.",
    "teacher": "a.",
    "merchant_manager": "p.",
    "merchant_staff": "p.",
    "cardholder": "m.",
    "guardian": "m.",
}
# within the console, pages a role must not see
NEVER = {
    "teacher": {
        "a.reports",
        "a.dashboard",
        "a.cards",
        "a.audit",
        "a.settlement",
        "a.reconciliation",
        "a.payroll",
    },
    "card_center": {
        "a.reports",
        "a.settlement",
        "a.reconciliation",
        "a.consumption",
        "a.payroll",
    },
    "settlement": {"a.cards", "a.classes"},
    "guardian": set(),
    "cardholder": {"m.children"},
}
SKIP = ("/static/", "/lang/", "/logout")


async def _campus(conn: asyncpg.Connection[Any]) -> dict[str, Any]:
    a = await make_school(conn, "AAA")
    b = await make_school(conn, "BBB")
    student_a = await make_student(conn, a.id, "A001", cash=5000, name="甲同学")
    student_b = await make_student(conn, b.id, "B001", cash=7000, name="乙外校生")
    await conn.execute(
        "INSERT INTO cards(school_id, person_id, number, state) VALUES ($1, $2, '88000001', 'active')",
        a.id,
        student_a,
    )
    merchant = await conn.fetchval(
        "INSERT INTO merchants(school_id, name, channel, status) VALUES ($1, '一食堂', 'canteen', "
        "'approved') RETURNING id",
        a.id,
    )
    await conn.fetchval(
        "INSERT INTO merchants(school_id, name, channel, status) VALUES ($1, '外校食堂', 'canteen', "
        "'approved') RETURNING id",
        b.id,
    )
    users = {
        "platform_admin": ("root", None),
        "school_admin": ("sa", a.code),
        "card_center": ("cc", a.code),
        "settlement": ("st", a.code),
        "teacher": ("tc", a.code),
        "merchant_manager": ("mm", a.code),
        "merchant_staff": ("ms", a.code),
        "cardholder": ("A001", a.code),
        "guardian": ("parent", a.code),
    }
    for role, (username, _) in users.items():
        school_id = None if role == "platform_admin" else a.id
        uid = await make_user(
            conn,
            username,
            role,
            school_id,
            merchant_id=merchant if role.startswith("merchant") else None,
            person_id=student_a if role == "cardholder" else None,
        )
        if role == "guardian":
            await conn.execute(
                "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
                uid,
                student_a,
                a.id,
            )
    return {"a": a, "b": b, "student_b": student_b, "users": users}


def _foreign_urls(code: str, student_b: int) -> list[str]:
    base = f"/admin/s/{code}"
    return [
        f"{base}/",
        f"{base}/people",
        f"{base}/people/{student_b}",
        f"{base}/classes",
        f"{base}/cards",
        f"{base}/merchants",
        f"{base}/reports",
        f"{base}/reports/export.csv?kind=merchant",
        f"{base}/audit",
        f"{base}/settlement",
        f"{base}/reconciliation",
        f"{base}/consumption",
        f"/m/?person={student_b}",
        f"/m/transactions?person={student_b}",
        f"/m/card?person={student_b}",
        f"/m/leave?person={student_b}",
        f"{base}/access/zone/new",
        f"{base}/access/visitor/new",
        f"{base}/access/systems",
    ]


@pytest.mark.parametrize("role", sorted(ROLE_AREAS))
async def test_every_page_as_every_role(
    role: str, settings: Settings, pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    campus = await _campus(conn)
    username, school = campus["users"][role]
    app = create_app(settings, pool=pool)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        await web_login(client, username, school)
        seen: set[str] = set()
        queue = ["/"]
        menus: set[str] = set()
        while queue and len(seen) < 60:
            url = queue.pop(0)
            if url in seen or url.startswith(SKIP):
                continue
            seen.add(url)
            r = await client.get(url)
            assert r.status_code < 500, (role, url, r.text[:500])
            if r.status_code in (302, 303):
                queue.insert(0, r.headers["location"])
                continue
            assert r.status_code in (200, 403, 404), (role, url, r.status_code)
            if "text/html" in r.headers.get("content-type", ""):
                # a platform admin works across schools; everyone else sees only their own
                assert role == "platform_admin" or (
                    "乙外校生" not in r.text and "外校食堂" not in r.text
                ), (role, url)
                menus.update(MENU.findall(r.text))
                queue.extend(u.replace("&amp;", "&") for u in LINK.findall(r.text))
        assert len(seen) > 1
        assert all(key.startswith(ROLE_AREAS[role]) for key in menus), (role, menus)
        assert not (menus & NEVER.get(role, set())), (role, menus)
        # another school's pages do not exist for this role (platform admin sees all schools)
        if role != "platform_admin":
            for url in _foreign_urls(campus["b"].code, campus["student_b"]):
                r = await client.get(url)
                assert r.status_code in (303, 403, 404), (role, url, r.status_code)
                assert "乙外校生" not in r.text and "外校食堂" not in r.text, (role, url)


async def test_platform_admin_chooses_a_school_first(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    await make_school(conn, "AAA")
    await make_user(conn, "root", "platform_admin", None)
    await web_login(client, "root", None)
    home = await client.get("/admin/")
    assert home.status_code == 200 and "/admin/s/AAA/" in home.text
    assert "/admin/s//" not in home.text
    inside = await client.get("/admin/s/AAA/people")
    assert inside.status_code == 200 and 'data-menu="a.reports"' in inside.text
