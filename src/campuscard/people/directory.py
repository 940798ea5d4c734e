"""Schools, classes, people and guardians: the tenancy every other feature hangs on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger import postings
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

PERSON_COLUMNS = (
    "p.id, p.school_id, p.kind, p.number, p.name, p.class_id, c.name AS class_name, p.phone, "
    "p.category, p.account_status, p.status"
)


@dataclass(frozen=True)
class PersonData:
    kind: str
    number: str
    name: str
    class_id: int | None = None
    phone: str | None = None
    category: str = "regular"


async def open_school_accounts(conn: Conn | Tx, school_id: int) -> None:
    """Open the system accounts a new school needs, in the transaction that creates it: the
    ledger's, settlement's, the offline receivable and payroll's (decision 0232: no trigger
    on schools)."""
    await conn.execute(
        "SELECT cc_create_system_accounts($1), cc_create_settlement_accounts($1), "
        "cc_create_offline_accounts($1), cc_create_payroll_accounts($1)",
        school_id,
    )


@owns_transaction
async def create_school(
    tx: Tx,
    actor: Actor,
    *,
    province_code: str,
    code: str,
    name: str,
    name_en: str = "",
    timezone: str = "Asia/Shanghai",
) -> int:
    actor.require("platform_admin", school_id=None)
    province_id = await tx.fetchval("SELECT id FROM provinces WHERE code = $1", province_code)
    if province_id is None:
        raise NotFound(f"unknown province {province_code!r}", field="province")
    try:
        school_id: int = await tx.fetchval(
            """INSERT INTO schools(province_id, code, name, name_en, timezone)
               VALUES ($1, $2, $3, $4, $5) RETURNING id""",
            province_id,
            code,
            name,
            name_en,
            timezone,
        )
        await open_school_accounts(tx, school_id)
        await audit.record(
            tx,
            actor,
            "school.create",
            school_id=school_id,
            target_type="school",
            target_id=school_id,
            after={"code": code, "name": name, "timezone": timezone},
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"school {code!r} already exists", field="code") from err
    except asyncpg.InvalidParameterValueError as err:
        raise ValidationFailed(f"unknown time zone {timezone!r}", field="timezone") from err
    return school_id


async def school_by_code(conn: Conn, code: str) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM schools WHERE code = $1", code)
    if row is None:
        raise NotFound(f"unknown school {code!r}", field="school")
    return dict(row)


@owns_transaction
async def create_class(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    name: str,
    kind: str = "class",
    grade: str = "",
) -> int:
    actor.require("school_admin", "teacher", school_id=school_id)
    try:
        class_id: int = await tx.fetchval(
            "INSERT INTO classes(school_id, kind, name, grade) VALUES ($1, $2, $3, $4) "
            "RETURNING id",
            school_id,
            kind,
            name,
            grade,
        )
        await audit.record(
            tx,
            actor,
            "class.create",
            school_id=school_id,
            target_type="class",
            target_id=class_id,
            after={"name": name, "kind": kind, "grade": grade},
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"class {name!r} already exists in this school", field="name") from err
    return class_id


async def _check_class(conn: Conn, school_id: int, class_id: int | None) -> None:
    if class_id is None:
        return
    found = await conn.fetchval(
        "SELECT 1 FROM classes WHERE id = $1 AND school_id = $2", class_id, school_id
    )
    if not found:
        raise NotFound("class not found in this school", field="class_id")


@owns_transaction
async def create_person(
    tx: Tx,
    actor: Actor,
    school_id: int,
    data: PersonData,
    *,
    open_account: bool = False,
) -> int:
    actor.require("school_admin", "card_center", "teacher", school_id=school_id)
    await _check_class(tx, school_id, data.class_id)
    try:
        person_id: int = await tx.fetchval(
            """INSERT INTO persons(school_id, kind, number, name, class_id, phone, category,
                                   account_status)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            school_id,
            data.kind,
            data.number,
            data.name,
            data.class_id,
            data.phone,
            data.category,
            "active" if open_account else "none",
        )
        if open_account:
            await postings.open_purses(tx, school_id, person_id)
        await audit.record(
            tx,
            actor,
            "person.create",
            school_id=school_id,
            target_type="person",
            target_id=person_id,
            after=asdict(data),
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(
            f"number {data.number!r} is already used in this school",
            code="DUPLICATE_NUMBER",
            field="number",
        ) from err
    return person_id


async def get_person(conn: Conn, actor: Actor, person_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {PERSON_COLUMNS} FROM persons p "
        "LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id "
        "WHERE p.id = $1",
        person_id,
    )
    if row is None or not can_see_person(actor, row["school_id"], person_id):
        raise NotFound("person not found", field="person_id")
    person = dict(row)
    person["guardians"] = [
        dict(g)
        for g in await conn.fetch(
            "SELECT id, name, phone, relation FROM guardians WHERE school_id = $1 "
            "AND person_id = $2 ORDER BY id",
            row["school_id"],
            person_id,
        )
    ]
    return person


def can_see_person(actor: Actor, school_id: int, person_id: int) -> bool:
    if actor.person_id == person_id:
        return True
    return actor.has("school_admin", "card_center", "settlement", "teacher", school_id=school_id)


@owns_transaction
async def update_person(
    tx: Tx,
    actor: Actor,
    person_id: int,
    changes: dict[str, Any],
) -> dict[str, Any]:
    allowed = {"name", "class_id", "phone", "category", "kind"}
    unknown = set(changes) - allowed
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationFailed(f"{field} cannot be changed here", field=field)
    for required in ("name", "category", "kind"):
        if required in changes and changes[required] is None:
            raise ValidationFailed(f"{required} cannot be emptied", field=required)
    before = await distribution.lock_row(
        tx, "persons", person_id, "school_id, name, class_id, phone, category, kind"
    )
    if before is None:
        raise NotFound("person not found", field="person_id")
    school_id = before["school_id"]
    actor.require("school_admin", "card_center", "teacher", school_id=school_id)
    if "class_id" in changes:
        await _check_class(tx, school_id, changes["class_id"])
    after = {k: before[k] for k in allowed} | changes
    await tx.execute(
        """UPDATE persons SET name = $2, class_id = $3, phone = $4, category = $5, kind = $6,
                              updated_at = now() WHERE id = $1""",
        person_id,
        after["name"],
        after["class_id"],
        after["phone"],
        after["category"],
        after["kind"],
    )
    await audit.record(
        tx,
        actor,
        "person.update",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        before={k: before[k] for k in changes},
        after=changes,
    )
    return await get_person(tx, actor, person_id)


async def search_persons(
    conn: Conn,
    actor: Actor,
    school_id: int,
    *,
    query: str = "",
    class_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    actor.require("school_admin", "card_center", "settlement", "teacher", school_id=school_id)
    rows = await conn.fetch(
        f"""SELECT {PERSON_COLUMNS} FROM persons p
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
             WHERE p.school_id = $1
               AND ($2 = '' OR p.number ILIKE $2 || '%' OR p.name ILIKE '%' || $2 || '%')
               AND ($3::bigint IS NULL OR p.class_id = $3)
             ORDER BY p.number LIMIT $4 OFFSET $5""",
        school_id,
        query,
        class_id,
        limit,
        offset,
    )
    return [dict(r) for r in rows]


@owns_transaction
async def add_guardian(
    tx: Tx,
    actor: Actor,
    person_id: int,
    *,
    name: str,
    phone: str,
    relation: str = "parent",
) -> int:
    school_id = await tx.fetchval("SELECT school_id FROM persons WHERE id = $1", person_id)
    if school_id is None:
        raise NotFound("person not found", field="person_id")
    actor.require("school_admin", "card_center", "teacher", school_id=school_id)
    try:
        guardian_id: int = await tx.fetchval(
            """INSERT INTO guardians(school_id, person_id, name, phone, relation)
               VALUES ($1, $2, $3, $4, $5) RETURNING id""",
            school_id,
            person_id,
            name,
            phone,
            relation,
        )
        await audit.record(
            tx,
            actor,
            "guardian.add",
            school_id=school_id,
            target_type="person",
            target_id=person_id,
            after={"name": name, "phone": phone, "relation": relation},
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict("this guardian phone is already linked", field="phone") from err
    return guardian_id
