"""Builders for test data. They write through the same services the application uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from campuscard.ledger import postings
from campuscard.people import directory
from campuscard.platform import auth
from campuscard.platform.actors import Actor, Grant

PASSWORD = "correct-horse-battery"
ROOT = Actor(name="test-root", grants=frozenset({Grant("platform_admin", None)}))


@dataclass
class School:
    id: int
    code: str


async def make_school(conn: asyncpg.Connection[Any], code: str = "TST") -> School:
    await conn.execute(
        "INSERT INTO provinces(code, name, name_en) VALUES ('32', '江苏省', 'Jiangsu') "
        "ON CONFLICT DO NOTHING"
    )
    school_id = await directory.create_school(
        conn, ROOT, province_code="32", code=code, name=f"测试学校{code}", name_en=f"Test {code}"
    )
    return School(school_id, code)


async def make_user(
    conn: asyncpg.Connection[Any],
    username: str,
    role: str,
    school_id: int | None,
    *,
    merchant_id: int | None = None,
    person_id: int | None = None,
) -> int:
    return await auth.create_user(
        conn,
        username=username,
        password=PASSWORD,
        school_id=school_id,
        roles=[(role, school_id if role != "platform_admin" else None, merchant_id)],
        person_id=person_id,
    )


async def make_student(
    conn: asyncpg.Connection[Any],
    school_id: int,
    number: str,
    *,
    cash: int = 0,
    subsidy: int = 0,
    name: str = "张三",
) -> int:
    person_id = await directory.create_person(
        conn,
        ROOT,
        school_id,
        directory.PersonData(kind="student", number=number, name=name),
        open_account=True,
    )
    if cash or subsidy:
        await fund(conn, school_id, person_id, cash=cash, subsidy=subsidy)
    return person_id


async def fund(
    conn: asyncpg.Connection[Any],
    school_id: int,
    person_id: int,
    *,
    cash: int = 0,
    subsidy: int = 0,
) -> None:
    purses = await postings.open_purses(conn, school_id, person_id)
    opening = await postings.system_account(conn, school_id, "opening_balances")
    legs = [postings.Leg(opening, -(cash + subsidy))]
    if cash:
        legs.append(postings.Leg(purses["cash"], cash))
    if subsidy:
        legs.append(postings.Leg(purses["subsidy"], subsidy))
    async with conn.transaction():
        await postings.post(conn, school_id=school_id, kind="opening_balance", legs=legs)


async def login(
    client: httpx.AsyncClient, username: str, school: str | None, password: str = PASSWORD
) -> dict[str, str]:
    r = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password, "school": school}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}
