"""Worker jobs of monitoring: payments read every two seconds (an alert reaches the phone well
within a minute of the payment), and the daily pass."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.monitoring import daily, events
from campuscard.platform.tasks import periodic


@periodic("monitoring-events", seconds=2)
async def monitoring_events(pool: PgPool, settings: Settings) -> int:
    return (await events.scan_all(pool)).alerts


@periodic("monitoring-daily", seconds=600)
async def monitoring_daily(pool: PgPool, settings: Settings) -> int:
    return await daily.run_due(pool)
