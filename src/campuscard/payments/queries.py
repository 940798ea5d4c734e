"""Read-only queries of payments: merchants, outlets and terminals as the API and pages list
and check them. ``db`` is a pool or a connection (both answer the same calls)."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn, PgPool


async def merchant_channel(db: Conn | PgPool, merchant_id: int) -> str | None:
    """The channel a merchant's payments are admitted under (None: no such merchant)."""
    channel: str | None = await db.fetchval(
        "SELECT channel FROM merchants WHERE id = $1", merchant_id
    )
    return channel


async def merchant_school_id(db: Conn | PgPool, merchant_id: int) -> int | None:
    """The school a merchant belongs to, or None when there is no such merchant."""
    school_id: int | None = await db.fetchval(
        "SELECT school_id FROM merchants WHERE id = $1", merchant_id
    )
    return school_id


async def merchant_name(db: Conn | PgPool, merchant_id: int) -> str | None:
    name: str | None = await db.fetchval("SELECT name FROM merchants WHERE id = $1", merchant_id)
    return name


async def merchant_in_school(db: Conn | PgPool, merchant_id: int, school_id: int) -> bool:
    found = await db.fetchval(
        "SELECT 1 FROM merchants WHERE id = $1 AND school_id = $2", merchant_id, school_id
    )
    return found is not None


async def terminal_in_school(db: Conn | PgPool, terminal_id: int, school_id: int) -> bool:
    found = await db.fetchval(
        "SELECT 1 FROM terminals WHERE id = $1 AND school_id = $2", terminal_id, school_id
    )
    return found is not None


async def school_outlets(db: Conn | PgPool, school_id: int) -> list[dict[str, Any]]:
    """The school's outlets with their merchant's name, by merchant then outlet name."""
    rows = await db.fetch(
        "SELECT o.id, o.name, m.name AS merchant FROM outlets o "
        "JOIN merchants m ON m.school_id = o.school_id AND m.id = o.merchant_id "
        "WHERE o.school_id = $1 "
        "ORDER BY m.name, o.name",
        school_id,
    )
    return [dict(r) for r in rows]
