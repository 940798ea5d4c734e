"""Read-only queries of money in and out: a cardholder's automatic top-up, recent top-up
orders and bank transfers, as their top-up page shows them."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn, PgPool


async def auto_topup_setting(
    db: Conn | PgPool, person_id: int, *, school_id: int
) -> dict[str, Any] | None:
    """The person's automatic top-up row, or None when they never set one."""
    row = await db.fetchrow(
        "SELECT * FROM auto_topups WHERE school_id = $1 AND person_id = $2", school_id, person_id
    )
    return dict(row) if row is not None else None


async def recent_topup_orders(
    db: Conn | PgPool, person_id: int, *, school_id: int, limit: int = 10
) -> list[dict[str, Any]]:
    """The person's latest online top-up orders (provider orders of purpose 'topup')."""
    rows = await db.fetch(
        "SELECT * FROM provider_orders WHERE school_id = $3 AND person_id = $1 "
        "AND purpose = 'topup' ORDER BY id DESC LIMIT $2",
        person_id,
        limit,
        school_id,
    )
    return [dict(r) for r in rows]


async def recent_bank_transfers(
    db: Conn | PgPool, person_id: int, *, school_id: int, limit: int = 10
) -> list[dict[str, Any]]:
    """The person's latest bank transfers (loads and payouts)."""
    rows = await db.fetch(
        "SELECT * FROM bank_transfers WHERE school_id = $3 AND person_id = $1 "
        "ORDER BY id DESC LIMIT $2",
        person_id,
        limit,
        school_id,
    )
    return [dict(r) for r in rows]
