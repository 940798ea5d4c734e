"""Builders for the issuing tests: import files, a school with students, parents, kiosks."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from openpyxl import Workbook

from campuscard.config import Settings
from campuscard.issuing import imports
from campuscard.issuing.import_rules import HEADERS_EN, HEADERS_ZH, build_frame
from campuscard.issuing.pickup import Kiosk
from campuscard.platform import auth
from campuscard.platform.actors import Actor, Grant
from tests.support import PASSWORD, login, make_school

PROVINCE = "江苏省"


def xlsx(rows: Sequence[Sequence[Any]], *, header: Sequence[str] = HEADERS_ZH) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def student_rows(
    school_name: str, n: int, *, start: int = 1, classes: Sequence[str] = ("一年级1班", "一年级2班")
) -> list[list[Any]]:
    return [
        [
            i,
            PROVINCE,
            school_name,
            f"学生{i}",
            classes[i % len(classes)],
            f"2026{i:06d}",
            "",
        ]
        for i in range(start, start + n)
    ]


def english(rows: Sequence[Sequence[Any]]) -> bytes:
    return xlsx(rows, header=HEADERS_EN)


@dataclass
class Campus:
    school_id: int
    code: str
    name: str
    teacher: Actor
    teacher_user_id: int


async def make_campus(
    conn: asyncpg.Connection[Any], code: str = "ISS", students: int = 6
) -> Campus:
    """A school, a teacher, and ``students`` imported students (numbers 2026000001...)."""
    school = await make_school(conn, code)
    name = await conn.fetchval("SELECT name FROM schools WHERE id = $1", school.id)
    teacher_id = await auth.create_user(
        conn,
        username=f"teacher-{code.lower()}",
        password=PASSWORD,
        school_id=school.id,
        roles=[("teacher", school.id, None)],
    )
    teacher = await auth.load_actor(conn, teacher_id)
    if students:
        await imports.do_import_students(
            conn,
            teacher,
            school.id,
            frame=build_frame(xlsx(student_rows(name, students))),
            filename="class.xlsx",
        )
    return Campus(school.id, code, name, teacher, teacher_id)


async def make_parent(
    conn: asyncpg.Connection[Any],
    campus: Campus,
    username: str,
    phone: str,
    *,
    guardian_of: str | None = None,
) -> Actor:
    """A parent user; with ``guardian_of`` (a student number) the school has the phone on
    record as that student's guardian."""
    user_id = await auth.create_user(
        conn, username=username, password=PASSWORD, school_id=None, roles=[], phone=phone
    )
    if guardian_of is not None:
        await conn.execute(
            """INSERT INTO guardians(school_id, person_id, name, phone)
               SELECT school_id, id, '家长', $3 FROM persons WHERE school_id = $1 AND number = $2""",
            campus.school_id,
            guardian_of,
            phone,
        )
    return await auth.load_actor(conn, user_id)


async def make_kiosk(conn: asyncpg.Connection[Any], campus: Campus, sn: str) -> Kiosk:
    terminal_id = await conn.fetchval(
        "INSERT INTO terminals(school_id, sn, kind, location) VALUES ($1, $2, 'kiosk', '大厅') "
        "RETURNING id",
        campus.school_id,
        sn,
    )
    return Kiosk(terminal_id=terminal_id, school_id=campus.school_id, sn=sn)


def card_center(campus: Campus) -> Actor:
    return Actor(name="card-center", grants=frozenset({Grant("card_center", campus.school_id)}))


def issuing_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update=changes)


async def make_counter_campus(conn: asyncpg.Connection[Any]) -> Campus:
    """A campus with parent1 (guardian of student 2026000001) and teacher-iss also at the card
    center, so counter applications can be applied for and produced."""
    campus = await make_campus(conn)
    await make_parent(conn, campus, "parent1", "13900000001", guardian_of="2026000001")
    await conn.execute(
        "INSERT INTO user_roles(user_id, role, school_id) SELECT id, 'card_center', $1 "
        "FROM users WHERE username = 'teacher-iss'",
        campus.school_id,
    )
    return campus


async def apply_at_counter(
    client: httpx.AsyncClient, campus: Campus, client_id: str
) -> httpx.Response:
    """parent1 applies online for student 2026000001's card, to be collected at the counter."""
    parent = await login(client, "parent1", None)
    return await client.post(
        "/api/v1/card-applications",
        headers=parent,
        json={
            "client_id": client_id,
            "province": "32",
            "school": campus.code,
            "class_name": "一年级2班",
            "name": "学生1",
            "number": "2026000001",
            "delivery": "counter",
        },
    )
