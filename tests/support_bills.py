"""Builders for the bills tests: a school with a class, students, two finance operators, the
term's fee items and bills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from campuscard.bills import billing
from campuscard.ledger.money import Money
from campuscard.platform.actors import Actor, Grant
from tests.support import make_school, make_student, make_user

TERM = "2026-2027-1"


@dataclass
class BillsWorld:
    school_id: int
    code: str
    finance: Actor
    second: Actor
    class_id: int
    students: list[int]


def finance_actor(school_id: int, user_id: int, name: str) -> Actor:
    return Actor(name=name, user_id=user_id, grants=frozenset({Grant("settlement", school_id)}))


def holder_actor(school_id: int, user_id: int, person_id: int, name: str) -> Actor:
    return Actor(
        name=name,
        user_id=user_id,
        school_id=school_id,
        person_id=person_id,
        grants=frozenset({Grant("cardholder", school_id)}),
    )


async def bills_world(
    conn: asyncpg.Connection[Any], *, students: int = 2, cash: int = 0, code: str = "TST"
) -> BillsWorld:
    school = await make_school(conn, code)
    class_id = await conn.fetchval(
        "INSERT INTO classes(school_id, name) VALUES ($1, '计算机2601') RETURNING id", school.id
    )
    a = await make_user(conn, f"fin-a-{code}", "settlement", school.id)
    b = await make_user(conn, f"fin-b-{code}", "settlement", school.id)
    people = []
    for i in range(students):
        pid = await make_student(conn, school.id, f"S{i + 1:03d}", cash=cash, name=f"学生{i + 1}")
        await conn.execute(
            "UPDATE persons SET class_id = $2, major = '计算机', dorm = '东区3栋' WHERE id = $1",
            pid,
            class_id,
        )
        people.append(pid)
    return BillsWorld(
        school.id,
        school.code,
        finance_actor(school.id, a, f"fin-a-{code}"),
        finance_actor(school.id, b, f"fin-b-{code}"),
        class_id,
        people,
    )


async def tuition_and_dorm(
    conn: asyncpg.Connection[Any], w: BillsWorld, *, due: date, tuition: str = "5000.00"
) -> dict[str, Any]:
    """Tuition for everyone, accommodation by dorm building; then the term's bills."""
    await billing.do_create_item(
        conn,
        w.finance,
        w.school_id,
        term=TERM,
        kind="tuition",
        name="学费",
        amount=Money.parse(tuition),
        due_date=due,
    )
    await billing.do_create_item(
        conn,
        w.finance,
        w.school_id,
        term=TERM,
        kind="accommodation",
        name="住宿费",
        amount=None,
        due_date=due,
        rates=[billing.Rate("dorm", "东区3栋", Money.parse("1200.00"))],
    )
    return await billing.do_issue_bills(conn, w.finance, w.school_id, term=TERM)


async def bill_of(conn: asyncpg.Connection[Any], school_id: int, person_id: int) -> int:
    bill_id: int = await conn.fetchval(
        "SELECT id FROM bills WHERE school_id = $1 AND person_id = $2 AND term = $3",
        school_id,
        person_id,
        TERM,
    )
    return bill_id
