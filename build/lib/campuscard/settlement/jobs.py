"""End-of-day job: once a school's business day is over, close it (clearing, statements,
ledger booking, payout instruction). Closing is idempotent, so every web process may run it."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform.actors import SYSTEM
from campuscard.platform.errors import DomainError
from campuscard.platform.tasks import periodic
from campuscard.settlement import clearing

log = logging.getLogger("campuscard.settlement")


async def close_finished_days(pool: PgPool) -> list[dict[str, Any]]:
    """Close yesterday's business day of every school that has not closed it yet."""
    rows = await pool.fetch(
        """SELECT s.id, cc_business_date(s.id) - 1 AS day,
                  (SELECT max(business_date) FROM settlement_days d WHERE d.school_id = s.id)
                      AS last_closed
             FROM schools s ORDER BY s.id"""
    )
    closed = []
    for r in rows:
        day: date = r["day"]
        last: date | None = r["last_closed"]
        if last is not None and last >= day:
            continue
        try:
            closed.append(await clearing.do_close_day(pool, SYSTEM, r["id"], day))
        except DomainError as err:  # logged and retried on the next tick
            log.warning("closing %s for school %s refused: %s", day, r["id"], err.message)
    return closed


@periodic("settlement-close-day", seconds=300)
async def settlement_close_day(pool: PgPool, settings: Settings) -> int:
    return len(await close_finished_days(pool))


__all__ = ["close_finished_days", "settlement_close_day"]
