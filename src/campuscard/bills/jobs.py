"""Bills in the background: the arrears pass (late fees, holds, reminders) for every school
with open bills."""

from __future__ import annotations

from campuscard.bills import arrears, utilities
from campuscard.bills import payments as _payments  # noqa: F401  (the 'bill' order purpose)
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform.tasks import periodic


@periodic("bills-arrears", seconds=3600)
async def arrears_pass(pool: PgPool, settings: Settings) -> int:
    """Every school with open bills; returns how many bills were looked at."""
    total = 0
    for r in await pool.fetch("SELECT DISTINCT school_id FROM bills WHERE status = 'open'"):
        total += (await arrears.run_school(pool, r["school_id"])).bills
    return total


@periodic("utilities-resolve", seconds=30)
async def utilities_resolve(pool: PgPool, settings: Settings) -> int:
    """Top-ups whose vendor answer was lost: ask again, settle exactly once."""
    return await utilities.resolve_pending(pool, settings)


@periodic("utilities-auto", seconds=3600)
async def utilities_auto(pool: PgPool, settings: Settings) -> int:
    """Meters below a resident's threshold get their automatic top-up (once a day)."""
    return await utilities.auto_top_up(pool, settings)
