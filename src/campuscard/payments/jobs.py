"""Payment housekeeping: forget payment-code attempt counts whose window has long passed."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform.tasks import periodic


@periodic("forget-paycode-throttle", seconds=3600)
async def forget_paycode_throttle(pool: PgPool, settings: Settings) -> int:
    """Attempt counts are kept a day after their window opened, then forgotten (the window
    itself is ten minutes)."""
    async with pool.acquire() as conn:
        done = await conn.execute(
            "DELETE FROM paycode_throttle WHERE window_start < now() - interval '1 day'"
        )
    return int(done.split()[-1])
