"""Read-only queries of the ledger: accounts as they stand."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.ledger.limits import MoneyLimits, limits_from_settings


async def school_accounts(
    db: Conn | PgPool, school_id: int, *, kind: str | None, person_id: int | None
) -> list[dict[str, Any]]:
    """The school's accounts by id (at most 1,000), optionally of one kind or one person."""
    rows = await db.fetch(
        """SELECT id, kind, purse, person_id, merchant_id, shard, system_code, balance, version
             FROM accounts WHERE school_id = $1 AND ($2::text IS NULL OR kind = $2)
              AND ($3::bigint IS NULL OR person_id = $3)
            ORDER BY id LIMIT 1000""",
        school_id,
        kind,
        person_id,
    )
    return [dict(r) for r in rows]


async def school_limits(conn: Conn, school_id: int) -> MoneyLimits:
    """The school's money limits (caps and the deposit threshold), defaults filled in."""
    settings = await conn.fetchval("SELECT settings FROM schools WHERE id = $1", school_id)
    return limits_from_settings(settings)


async def person_total(conn: Conn, person_id: int) -> int:
    """What a person's purses hold together. Called after booking money in, in the same
    transaction: the booking holds the purse rows, so the sum includes every committed
    booking and this one (a check after the fact needs no lock order of its own)."""
    total: int = await conn.fetchval(
        "SELECT coalesce(sum(balance), 0)::bigint FROM accounts "
        "WHERE person_id = $1 AND kind = 'purse'",
        person_id,
    )
    return total
