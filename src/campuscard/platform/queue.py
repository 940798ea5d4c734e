"""Background jobs on procrastinate, a PostgreSQL task queue (decision 0240).

- **Side effects.** A use case writes an ``outbox`` row (topic, payload, school, dedupe key:
  the record of what must happen) and, in the same statement, defers the procrastinate job
  ``outbox.deliver`` for it by calling procrastinate's defer function on the business
  connection (``notifications.enqueue``). The job exists exactly when the change committed.
- **Delivery** runs outside any transaction: read the row, call the topic's handler (it talks
  to the outside party through an adapter, passing the row id as its deduplication key), then
  mark the row delivered. A handler that raises is retried with exponential back-off up to
  ``MAX_ATTEMPTS`` times; then the job is ``failed`` and the console lists it
  (``/admin/jobs``) with retry and cancel.
- **Periodic jobs** (``@periodic``) become procrastinate periodic tasks: every worker process
  runs the deferrer, and procrastinate records each tick once (a unique row per task and
  tick), so a job runs once per tick however many workers there are. Each has a lock named
  after it, so a slow run and the next tick never overlap, and a queueing lock, so ticks missed
  while every worker was down do not pile up.
- **Wake-up** by NOTIFY (procrastinate's trigger on its jobs table); polling is the fallback.
- **Crashes.** A worker that dies in a job stops beating; ``jobs-stalled`` puts its jobs back
  to run again (at least once; handlers deduplicate by the outbox row id).
- **Purge.** Succeeded jobs and delivered or cancelled outbox rows go after
  ``PURGE_AFTER_HOURS``; failed jobs stay until someone retries or cancels them.

The registry feature modules use is ``platform/tasks.py`` (``@outbox_handler``, ``@periodic``,
``JOB_MODULES``); this module turns it into a procrastinate app bound to a pool and settings.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import procrastinate

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform.tasks import OUTBOX_HANDLERS, PERIODIC, Periodic

log = logging.getLogger("campuscard.jobs")

QUEUE_OUTBOX = "outbox"
QUEUE_PERIODIC = "periodic"
DELIVER_TASK = "outbox.deliver"
PERIODIC_PREFIX = "periodic."

# 2, 4, 8 … 4096 s between attempts: about two and a half hours of trying in all, enough to
# ride out a gateway's bad afternoon; then the job is failed and waits for a person.
MAX_ATTEMPTS = 12
RETRY = procrastinate.RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2)

STALLED_SECONDS = 30.0  # a worker silent this long is dead; its running jobs run again
HEARTBEAT_SECONDS = 10.0  # procrastinate's own worker heartbeat (below STALLED_SECONDS)
PURGE_AFTER_HOURS = 72
CONCURRENCY = 4  # jobs one worker runs at once (they wait on outside parties, not on CPU)

# procrastinate's defer function, called on the business connection: one outbox row in, its
# job deferred by the same statement (so also atomic outside an explicit transaction); a row
# held until ``available_at`` (quiet hours) has its job scheduled for then
ENQUEUE_SQL = f"""
WITH row AS (
    INSERT INTO outbox(school_id, topic, payload, dedupe_key, available_at)
    VALUES ($1, $2, $3, $4, coalesce($5, now()))
    ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, available_at
)
SELECT row.id, procrastinate_defer_jobs_v1(ARRAY[ROW(
           '{QUEUE_OUTBOX}', '{DELIVER_TASK}', 0, NULL, NULL,
           jsonb_build_object('outbox_id', row.id),
           CASE WHEN $5::timestamptz IS NOT NULL THEN row.available_at END
       )::procrastinate_job_to_defer_v1]) AS job_ids
  FROM row"""


class NoHandler(RuntimeError):
    """An outbox row whose topic no loaded module handles (a job module missing from
    JOB_MODULES): retried, then failed and listed, never silently dropped."""


def cron_for(seconds: float) -> str:
    """The cron line that ticks every ``seconds`` (procrastinate's sixth field is seconds)."""
    s = int(seconds)
    if s != seconds or s <= 0:
        raise ValueError(f"a periodic job's interval is whole seconds: {seconds}")
    if s < 60 and 60 % s == 0:
        return f"*/{s} * * * * *"
    minutes, rest = divmod(s, 60)
    if not rest and minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    hours, rest = divmod(s, 3600)
    if not rest and hours <= 24 and 24 % hours == 0:
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    raise ValueError(f"{s} s does not divide a minute, an hour or a day evenly")


def periodic_task_name(job: Periodic) -> str:
    return PERIODIC_PREFIX + job.name


@dataclass
class Counts:
    """What one worker did (tests and the one-shot ``deliver_batch`` read it)."""

    delivered: int = 0
    failed_attempts: int = 0


def connector_for(settings: Settings) -> procrastinate.PsycopgConnector:
    """procrastinate's own small psycopg pool; the business code keeps its asyncpg pool."""
    return procrastinate.PsycopgConnector(
        conninfo=settings.database_url,
        kwargs={"application_name": "campuscard-jobs"},
        min_size=1,
        max_size=CONCURRENCY + 2,  # the jobs, the NOTIFY listener, the heartbeat
    )


def manager_app(settings: Settings) -> procrastinate.App:
    """An app without tasks, for reading and changing jobs (the console's jobs page)."""
    return procrastinate.App(connector=connector_for(settings))


async def deliver(pool: PgPool, settings: Settings, outbox_id: int, counts: Counts) -> None:
    """Deliver one outbox row, outside any transaction. At least once: the handler gets the
    row id and passes it on as the outside party's deduplication key."""
    row = await pool.fetchrow(
        "SELECT topic, payload, delivered_at, cancelled_at FROM outbox WHERE id = $1", outbox_id
    )
    if row is None or row["delivered_at"] is not None or row["cancelled_at"] is not None:
        return  # delivered before a crash could record the job's end, cancelled, or purged
    handler = OUTBOX_HANDLERS.get(row["topic"])
    try:
        if handler is None:
            raise NoHandler(f"no handler for outbox topic {row['topic']!r}")
        await handler(pool, settings, dict(row["payload"]) | {"outbox_id": outbox_id})
    except Exception as err:
        counts.failed_attempts += 1
        await pool.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
            outbox_id,
            repr(err)[:500],
        )
        raise
    await pool.execute(
        """UPDATE outbox SET attempts = attempts + 1, delivered_at = now(), last_error = NULL
            WHERE id = $1 AND delivered_at IS NULL""",
        outbox_id,
    )
    counts.delivered += 1


async def retry_stalled(app: procrastinate.App) -> int:
    """Put the jobs of workers that stopped beating back in the queue; returns how many."""
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_SECONDS))
    for job in stalled:
        log.warning("job %s (%s) was running on a dead worker: run again", job.id, job.task_name)
        await app.job_manager.retry_job(job)
    return len(stalled)


async def purge(app: procrastinate.App, pool: PgPool) -> None:
    """Forget what is done: succeeded and cancelled jobs, delivered and cancelled rows."""
    await app.job_manager.delete_old_jobs(nb_hours=PURGE_AFTER_HOURS, include_cancelled=True)
    await pool.execute(
        """DELETE FROM outbox
            WHERE coalesce(delivered_at, cancelled_at) < now() - make_interval(hours => $1)""",
        PURGE_AFTER_HOURS,
    )


def build_app(
    settings: Settings, pool: PgPool, *, periodic_jobs: bool = True, counts: Counts | None = None
) -> procrastinate.App:
    """A procrastinate app whose tasks run the registry's handlers and jobs on ``pool``.
    Without ``periodic_jobs`` it only delivers (the one-shot ``deliver_batch``)."""
    app = procrastinate.App(connector=connector_for(settings))
    tally = counts if counts is not None else Counts()

    @app.task(name=DELIVER_TASK, queue=QUEUE_OUTBOX, retry=RETRY)
    async def deliver_task(outbox_id: int) -> None:
        await deliver(pool, settings, outbox_id, tally)

    if not periodic_jobs:
        return app
    for job in PERIODIC.values():
        _add_periodic(app, periodic_task_name(job), job.seconds, _bound(job.run, pool, settings))

    async def stalled() -> None:
        await retry_stalled(app)

    async def purge_done() -> None:
        await purge(app, pool)

    _add_periodic(app, "jobs.stalled", STALLED_SECONDS, stalled)
    _add_periodic(app, "jobs.purge", 3600, purge_done)
    return app


def _bound(
    run: Callable[[PgPool, Settings], Awaitable[Any]], pool: PgPool, settings: Settings
) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await run(pool, settings)

    return call


def _add_periodic(
    app: procrastinate.App, name: str, seconds: float, run: Callable[[], Awaitable[Any]]
) -> None:
    async def tick(timestamp: int) -> None:
        await run()

    task = app.task(name=name, queue=QUEUE_PERIODIC, lock=name, queueing_lock=name)(tick)
    app.periodic(cron=cron_for(seconds))(task)


async def run_worker(app: procrastinate.App, *, wait: bool, name: str) -> None:
    """Run ``app``'s jobs: until cancelled (``wait``), or until the queue is empty."""
    await app.run_worker_async(
        wait=wait,
        name=name,
        concurrency=CONCURRENCY,
        listen_notify=True,
        install_signal_handlers=False,
        update_heartbeat_interval=HEARTBEAT_SECONDS,
        stalled_worker_timeout=STALLED_SECONDS,
        shutdown_graceful_timeout=10.0,
    )
