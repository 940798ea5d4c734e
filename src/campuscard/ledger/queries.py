"""Read-only queries of the ledger: accounts as they stand."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn, PgPool


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
