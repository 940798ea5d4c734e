"""The worker loop: outbox delivery every second, periodic jobs on their own intervals."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from campuscard.config import Settings
from campuscard.db.pool import PgPool, create_pool_when_ready
from campuscard.platform import heartbeats, outbox
from campuscard.platform.jobs import reseal_sms_outbox
from campuscard.platform.tasks import PERIODIC, load_job_modules

log = logging.getLogger("campuscard.worker")

HEARTBEAT_SECONDS = 5.0  # how often a worker records that it is alive (/api/ready reads it)


async def run_once(pool: PgPool, settings: Settings, due: dict[str, float] | None = None) -> None:
    """One pass: deliver the outbox, then run every periodic job that is due."""
    await outbox.deliver_batch(pool, settings)
    now = time.monotonic()
    for job in PERIODIC.values():
        if due is not None and due.get(job.name, 0.0) > now:
            continue
        try:
            await job.run(pool, settings)
        except Exception:
            log.exception("periodic job %s failed", job.name)
        if due is not None:
            due[job.name] = now + job.seconds


async def run_forever(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    load_job_modules()
    # started with the web process: outlive a database that is restarting at that moment
    pool = await create_pool_when_ready(settings.database_url, min_size=1, max_size=5, wait=600)
    due: dict[str, float] = {}
    name, started_at = heartbeats.worker_name(), datetime.now(UTC)
    next_beat = 0.0
    try:
        # text sealed by the former scheme is sealed again with AES-GCM once, before delivery
        await reseal_sms_outbox(pool, settings)
        while stop is None or not stop.is_set():
            if time.monotonic() >= next_beat:
                try:
                    await heartbeats.record_heartbeat(pool, name, started_at)
                except Exception:
                    log.exception("could not record the worker's heartbeat")
                next_beat = time.monotonic() + HEARTBEAT_SECONDS
            await run_once(pool, settings, due)
            await asyncio.sleep(1.0)
    finally:
        await pool.close()
