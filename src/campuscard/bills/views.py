"""Reads of bills with the permission check in front: the student, a linked parent or the
finance office see a student's bills and receipts; the finance office sees the school's lists;
a teacher sees arrears by class (the supervision view)."""

from __future__ import annotations

from typing import Any

from campuscard.bills import payments, queries
from campuscard.db.pool import PgPool
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound


async def bills_of(
    pool: PgPool, actor: Actor, school_id: int, person_id: int
) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        await payments.check_can_see(conn, actor, school_id, person_id)
        return await queries.bills_of_person(conn, school_id, person_id)


async def bill(pool: PgPool, actor: Actor, school_id: int, bill_id: int) -> dict[str, Any]:
    async with pool.acquire() as conn:
        person_id = await conn.fetchval(
            "SELECT person_id FROM bills WHERE school_id = $1 AND id = $2", school_id, bill_id
        )
        if person_id is None:
            raise NotFound("no such bill", field="bill_id")
        await payments.check_can_see(conn, actor, school_id, person_id)
        return await queries.bill_detail(conn, school_id, bill_id)


async def receipt(pool: PgPool, actor: Actor, school_id: int, receipt_no: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        person_id = await queries.payment_person(conn, school_id, receipt_no)
        if person_id is None:
            raise NotFound("no such receipt", field="receipt_no")
        await payments.check_can_see(conn, actor, school_id, person_id)
        return await queries.receipt(conn, school_id, receipt_no)


async def arrears(pool: PgPool, actor: Actor, school_id: int) -> dict[str, Any]:
    """Arrears by age and by class: the finance office, and teachers (supervision view)."""
    actor.require("settlement", "teacher", school_id=school_id)
    return await queries.arrears_summary(pool, school_id)


async def items(
    pool: PgPool, actor: Actor, school_id: int, term: str | None
) -> list[dict[str, Any]]:
    """The fee items with their books (the finance office)."""
    actor.require("settlement", school_id=school_id)
    return await queries.items(pool, school_id, term)


async def school_bills(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    *,
    term: str | None,
    status: str | None,
    class_id: int | None,
    overdue_only: bool,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    actor.require("settlement", school_id=school_id)
    return await queries.bills_list(
        pool,
        school_id,
        term=term,
        status=status,
        class_id=class_id,
        overdue_only=overdue_only,
        limit=limit,
        offset=offset,
    )
