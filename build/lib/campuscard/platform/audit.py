"""The append-only audit log: every administrative action, written in the action's transaction."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn
from campuscard.platform.actors import Actor
from campuscard.platform.requestctx import current_request


async def record(
    conn: Conn,
    actor: Actor,
    action: str,
    *,
    school_id: int | None,
    target_type: str = "",
    target_id: object = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    req = current_request()
    await conn.execute(
        """INSERT INTO audit_log(school_id, actor_user_id, actor, action, target_type, target_id,
                                 before, after, request_id, ip)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        school_id,
        actor.user_id,
        actor.name,
        action,
        target_type,
        str(target_id),
        before,
        after,
        req.request_id,
        req.ip,
    )
