"""Read-only queries of the platform: the audit log, and whether the database answers."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn, PgPool


async def database_answers(db: Conn | PgPool) -> None:
    """One round trip to the database (raises when it does not answer)."""
    await db.fetchval("SELECT 1")


async def audit_entries(
    db: Conn | PgPool, school_id: int, *, action_prefix: str, before_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """The school's audit log, newest first: entries whose action starts with
    ``action_prefix`` ('' for all), older than ``before_id`` when given, at most ``limit``."""
    rows = await db.fetch(
        """SELECT id, actor, action, target_type, target_id, before, after, request_id, created_at
             FROM audit_log
            WHERE school_id = $1 AND ($2 = '' OR action LIKE $2 || '%')
              AND ($3::bigint IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4""",
        school_id,
        action_prefix,
        before_id,
        limit,
    )
    return [dict(r) for r in rows]
