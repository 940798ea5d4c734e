"""Prometheus metrics (prometheus-client), served at /metrics to an operator's token.

``campuscard serve`` runs several uvicorn worker processes and a scrape reaches one of them, so
the values live in prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by
``serve`` before any worker starts): a scrape sums every live worker's counters and histograms
(decision 0160). Without the directory (tests, one process) the default registry is used.

Counters and histograms are updated where things happen (a payment answered, a request
finished, a sign-in refused). Gauges of process state (admission queues, pool, live-event
subscribers) are sampled every few seconds by each process, so the hot paths pay nothing for
them. The job queue is one for all processes, in the database: a scrape reads it (one grouped
query) and the scraped process's reading is the value."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

from campuscard.db.pool import PgPool

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SAMPLE_SECONDS = 5.0

PAYMENTS = Counter(
    "campuscard_payments",
    "Payments answered to tills, by channel and outcome (approved or the refusal's code)",
    ["channel", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "campuscard_http_request_seconds",
    "Time to answer an HTTP request, by route group",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PAYMENT_BATCH_SIZE = Histogram(
    "campuscard_payment_batch_size",
    "Card payments booked per database call and commit (group commit, payments/batching.py)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
PAYMENT_BATCH_FALLBACKS = Counter(
    "campuscard_payment_batch_fallbacks",
    "Batches of payments the database refused as a whole, booked again one by one",
)
CONNECTIONS_REBALANCED = Counter(
    "campuscard_connections_rebalanced",
    "Kept-alive connections a worker closed after their answer because it held more than its "
    "share of the server's connections (edge/balance.py)",
)
ADMISSION_WAITING = Gauge(
    "campuscard_admission_queue_depth",
    "Payments waiting for a slot of their channel (sampled)",
    ["channel"],
    multiprocess_mode="livesum",
)
ADMISSION_IN_FLIGHT = Gauge(
    "campuscard_admission_in_flight",
    "Payments holding a slot of their channel (sampled)",
    ["channel"],
    multiprocess_mode="livesum",
)
ADMISSION_REJECTIONS = Counter(
    "campuscard_admission_rejections",
    "Payments refused because their channel was full (429 CHANNEL_BUSY)",
    ["channel"],
)
POOL_CONNECTIONS = Gauge(
    "campuscard_pool_connections",
    "Database connections of the web processes' pools: open, in use, the limit, and acquires "
    "waiting for one (sampled)",
    ["state"],
    multiprocess_mode="livesum",
)
LIVE_SUBSCRIBERS = Gauge(
    "campuscard_live_event_subscribers",
    "Open live-event streams (student pages, till displays; sampled)",
    multiprocess_mode="livesum",
)
SIGN_IN_FAILURES = Counter(
    "campuscard_sign_in_failures",
    "Refused sign-ins: a wrong name or password, or an account that is locked",
    ["reason"],
)
LOCKOUTS = Counter("campuscard_sign_in_lockouts", "Accounts locked after too many failed sign-ins")
# the queue is the database's, not a process's: the latest reading counts, not a sum
JOBS = Gauge(
    "campuscard_jobs",
    "Background jobs by task and state: todo (waiting or scheduled), doing, failed (at scrape)",
    ["task", "status"],
    multiprocess_mode="mostrecent",
)
JOB_OLDEST_SECONDS = Gauge(
    "campuscard_job_oldest_due_seconds",
    "How long the oldest job that is due has waited for a worker, by task (read at scrape)",
    ["task"],
    multiprocess_mode="mostrecent",
)
JOB_STATES = ("todo", "doing", "failed")
JOBS_SQL = """
SELECT j.task_name, j.status::text AS status, count(*) AS jobs,
       max(extract(epoch FROM now() - coalesce(j.scheduled_at, d.at)))
           FILTER (WHERE j.status = 'todo' AND coalesce(j.scheduled_at, d.at) <= now())
           AS oldest_due
  FROM procrastinate_jobs j
  LEFT JOIN LATERAL (SELECT min(e.at) AS at FROM procrastinate_events e
                      WHERE e.job_id = j.id AND e.type = 'deferred') d ON true
 WHERE j.status IN ('todo', 'doing', 'failed')
 GROUP BY 1, 2"""
_job_tasks: set[str] = set()  # tasks seen before: their emptied states read 0, not stale


def count_payment(channel: str, body: Mapping[str, Any], status: int) -> None:
    """One payment answered: approved, waiting (a code payment asks the phone) or refused."""
    if status == 200:
        outcome = "approved"
    elif status == 202:
        outcome = "waiting"
    else:
        error = body.get("error")
        outcome = str(error.get("code")) if isinstance(error, Mapping) else str(status)
    PAYMENTS.labels(channel, outcome).inc()


def route_group(path: str, status: int) -> str:
    """A short, bounded label: 'api:terminal', 'api:admin', 'web:student', 'static'..."""
    if status == 404:
        return "unmatched"  # scans of unknown paths must not grow the label set
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "web:home"
    if parts[0] == "api":
        rest = parts[2:] if len(parts) > 1 and parts[1] == "v1" else parts[1:]
        return f"api:{rest[0]}" if rest else "api"
    if parts[0] == "static":
        return "static"
    return f"web:{parts[0]}"


def observe_request(path: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(route_group(path, status)).observe(seconds)


class Sampler:
    """Copies this process's state into the gauges; rejections become a counter by delta."""

    def __init__(
        self,
        pool: Callable[[], PgPool | None],
        admission: Callable[[], Mapping[str, Mapping[str, int]]],
        subscribers: Callable[[], int],
    ) -> None:
        self._pool = pool
        self._admission = admission
        self._subscribers = subscribers
        self._refused: dict[str, int] = {}

    def sample(self) -> None:
        for channel, stats in self._admission().items():
            ADMISSION_WAITING.labels(channel).set(stats["waiting"])
            ADMISSION_IN_FLIGHT.labels(channel).set(stats["in_flight"])
            refused = stats["refused"]
            new = refused - self._refused.get(channel, 0)
            if new > 0:
                ADMISSION_REJECTIONS.labels(channel).inc(new)
            self._refused[channel] = refused
        pool = self._pool()
        if pool is not None:
            size, idle = pool.get_size(), pool.get_idle_size()
            POOL_CONNECTIONS.labels("open").set(size)
            POOL_CONNECTIONS.labels("in_use").set(size - idle)
            POOL_CONNECTIONS.labels("max").set(pool.get_max_size())
            POOL_CONNECTIONS.labels("waiting").set(getattr(pool, "waiting", 0))
        LIVE_SUBSCRIBERS.set(self._subscribers())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)


async def sample_jobs(pool: PgPool) -> None:
    """Read the job queue into its gauges: jobs per task and state, the oldest due job's wait.
    Finished (succeeded, cancelled) jobs are not counted; the purge removes them."""
    rows = await pool.fetch(JOBS_SQL, timeout=2.0)
    counts = {(r["task_name"], r["status"]): int(r["jobs"]) for r in rows}
    oldest: dict[str, float] = {}
    for r in rows:
        if r["oldest_due"] is not None:
            oldest[r["task_name"]] = max(oldest.get(r["task_name"], 0.0), float(r["oldest_due"]))
    _job_tasks.update(task for task, _ in counts)
    for task in _job_tasks:
        for status in JOB_STATES:
            JOBS.labels(task, status).set(counts.get((task, status), 0))
        JOB_OLDEST_SECONDS.labels(task).set(oldest.get(task, 0.0))


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets: every live process's values in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """Drop a finished process's live gauges (its counters stay in the totals)."""
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
