"""Deliver what the outbox holds now, once, and return: the one-shot form of the worker's
delivery (tests, and a command that must not wait). Deliveries are procrastinate jobs
(``platform/queue.py``); the long-running worker is ``platform/worker.py``."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform import queue


async def deliver_batch(pool: PgPool, settings: Settings) -> int:
    """Run every delivery job that is due, then stop; returns how many rows were delivered.
    A delivery that fails is rescheduled with back-off, as in the worker."""
    counts = queue.Counts()
    app = queue.build_app(settings, pool, periodic_jobs=False, counts=counts)
    async with app.open_async():
        await queue.run_worker(app, wait=False, name="deliver-once")
    return counts.delivered
