"""Ledger housekeeping: release holds nobody captured or voided before they expired."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger import holds
from campuscard.ledger.holds_rules import EXPIRY_PERIOD_SECONDS
from campuscard.platform.tasks import periodic


@periodic("holds-expire", seconds=EXPIRY_PERIOD_SECONDS)
async def expire_holds(pool: PgPool, settings: Settings) -> int:
    """Every school's overdue holds expire (the money is available again), 500 per statement."""
    total = 0
    for school_id in await holds.schools_with_due_holds(pool):
        while True:
            done = await holds.expire_due_holds(pool, school_id, limit=500)
            total += done
            if done < 500:
                break
    return total
