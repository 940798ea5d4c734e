"""Attendance housekeeping: close the periods that ended (absences counted, parents told)."""

from __future__ import annotations

from campuscard.attendance import notices
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform.tasks import periodic


@periodic("attendance-periods-close", seconds=60)
async def close_periods(pool: PgPool, settings: Settings) -> int:
    return await notices.close_due_periods(pool)
