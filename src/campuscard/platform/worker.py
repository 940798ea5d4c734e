"""The job worker: procrastinate runs outbox deliveries and periodic jobs (``platform/queue.py``);
beside it, this process records a heartbeat that ``/api/ready`` reads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool, create_pool_when_ready
from campuscard.platform import heartbeats, queue
from campuscard.platform.jobs import reseal_sms_outbox
from campuscard.platform.tasks import load_job_modules

log = logging.getLogger("campuscard.worker")

HEARTBEAT_SECONDS = 5.0  # how often a worker records that it is alive (/api/ready reads it)


async def _beat(pool: PgPool, name: str, started_at: datetime) -> None:
    while True:
        try:
            await heartbeats.record_heartbeat(pool, name, started_at)
        except Exception:
            log.exception("could not record the worker's heartbeat")
        await asyncio.sleep(HEARTBEAT_SECONDS)


async def run_forever(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run jobs until ``stop`` is set (or the task is cancelled); a running job gets up to
    ten seconds to finish, and one that does not is run again by another worker."""
    load_job_modules()
    # started with the web process: outlive a database that is restarting at that moment
    pool = await create_pool_when_ready(settings.database_url, min_size=1, max_size=5, wait=600)
    name, started_at = heartbeats.worker_name(), datetime.now(UTC)
    beat = asyncio.create_task(_beat(pool, name, started_at))
    try:
        # text sealed by the former scheme is sealed again with AES-GCM once, before delivery
        await reseal_sms_outbox(pool, settings)
        app = queue.build_app(settings, pool)
        async with app.open_async():
            jobs = asyncio.create_task(queue.run_worker(app, wait=True, name=name))
            waits: list[asyncio.Task[Any]] = [jobs]
            if stop is not None:
                waits.append(asyncio.create_task(stop.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits[1:]:
                    task.cancel()
                if not jobs.done():
                    jobs.cancel()  # procrastinate stops fetching and lets running jobs end
                with contextlib.suppress(asyncio.CancelledError):
                    await jobs
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        await pool.close()
