"""Offline housekeeping: a record that waited longer than the school's ``chain_wait_hours`` for a
missing card counter settles with the gap named (the missing record may never come: a till
broken before it uploaded)."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.offline import ingest
from campuscard.platform.tasks import periodic


@periodic("offline-settle-overdue", seconds=600)
async def settle_overdue(pool: PgPool, settings: Settings) -> int:
    """Every school with waiting records: settle those that waited too long, one transaction per
    school."""
    total = 0
    for school_id in await ingest.schools_with_waiting_records(pool):
        total += await ingest.do_settle_overdue_school(pool, school_id)
    return total
