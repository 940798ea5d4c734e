"""The school's money limits: read them, and let a school admin change them (audited).

A settlement operator may not raise the caps that hold their own work in check; only the
school admin may.
"""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger import limits
from campuscard.ledger.queries import school_limits
from campuscard.platform import audit
from campuscard.platform.actors import Actor


async def get_money_limits(conn: Conn, actor: Actor, school_id: int) -> dict[str, str]:
    actor.require("settlement", "card_center", school_id=school_id)
    return (await school_limits(conn, school_id)).view()


@owns_transaction
async def do_set_money_limits(
    tx: Tx, actor: Actor, school_id: int, changes: dict[str, Any]
) -> dict[str, str]:
    actor.require("school_admin", school_id=school_id)
    fen = limits.parse_limit_changes(changes)
    current = await tx.fetchval("SELECT settings FROM schools WHERE id = $1 FOR UPDATE", school_id)
    before = limits.limits_from_settings(current)
    after = limits.check_limits(fen, base=before)
    await tx.execute(
        "UPDATE schools SET settings = jsonb_set(settings, '{money_limits}', $2) WHERE id = $1",
        school_id,
        after.to_json(),
    )
    await audit.record(
        tx,
        actor,
        "school.money_limits",
        school_id=school_id,
        target_type="school",
        target_id=school_id,
        before=before.view(),
        after=after.view(),
    )
    return after.view()
