"""Background jobs on procrastinate: deferred with the change, retried with back-off up to a
limit, then failed; periodic jobs once per tick however many workers run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import procrastinate
import pytest
from procrastinate.periodic import PeriodicDeferrer

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform import notifications, outbox, queue
from campuscard.platform.tasks import OUTBOX_HANDLERS, PERIODIC, load_job_modules
from tests.support import make_school


@pytest.fixture
def failing_sms() -> Iterator[list[int]]:
    calls: list[int] = []

    async def handler(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
        calls.append(payload["outbox_id"])
        raise ConnectionError("gateway down")

    saved = OUTBOX_HANDLERS.get("sms")
    OUTBOX_HANDLERS["sms"] = handler
    yield calls
    if saved is None:
        OUTBOX_HANDLERS.pop("sms", None)
    else:
        OUTBOX_HANDLERS["sms"] = saved


async def _job(pool: PgPool) -> Any:
    return await pool.fetchrow(
        "SELECT id, status::text, attempts, args FROM procrastinate_jobs "
        "WHERE task_name = 'outbox.deliver'"
    )


async def test_the_job_is_deferred_with_the_row_and_never_without_it(pool: PgPool) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await notifications.enqueue(conn, "sms", {"phone": "1"}, school_id=school.id)
                raise RuntimeError("the change failed")
        assert await _job(pool) is None
        async with conn.transaction():
            assert await notifications.enqueue(
                conn, "sms", {"phone": "1"}, school_id=school.id, dedupe_key="k"
            )
            # the same key again: no second row, no second job
            assert not await notifications.enqueue(
                conn, "sms", {"phone": "1"}, school_id=school.id, dedupe_key="k"
            )
    row_id = await pool.fetchval("SELECT id FROM outbox")
    job = await _job(pool)
    assert job["status"] == "todo" and job["args"] == {"outbox_id": row_id}
    assert await pool.fetchval("SELECT count(*) FROM procrastinate_jobs") == 1


async def test_a_delivery_that_keeps_failing_ends_failed_after_its_attempts(
    pool: PgPool, settings: Settings, failing_sms: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue, "RETRY", procrastinate.RetryStrategy(max_attempts=3, wait=60))
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await notifications.enqueue(conn, "sms", {"phone": "1"}, school_id=school.id)
    for attempt in range(1, 4):
        assert await outbox.deliver_batch(pool, settings) == 0
        job = await _job(pool)
        assert job["attempts"] == attempt
        # back-off: not due again at once; the test skips the wait
        assert await outbox.deliver_batch(pool, settings) == 0
        assert len(failing_sms) == attempt
        await pool.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")
    assert await outbox.deliver_batch(pool, settings) == 0
    job = await _job(pool)
    assert job["status"] == "failed" and job["attempts"] == 4
    assert len(failing_sms) == 4
    row = await pool.fetchrow("SELECT attempts, last_error, delivered_at FROM outbox")
    assert row["attempts"] == 4 and "gateway down" in row["last_error"]
    assert row["delivered_at"] is None
    # a failed job is not run again by itself
    await pool.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")
    assert await outbox.deliver_batch(pool, settings) == 0
    assert len(failing_sms) == 4


async def test_a_periodic_job_is_deferred_once_per_tick_by_any_number_of_workers(
    pool: PgPool, settings: Settings
) -> None:
    load_job_modules()
    workers = [queue.build_app(settings, pool) for _ in range(3)]
    tick = time.time() // 3600 * 3600 + 1  # just after the hour: every job's cron ticked
    for app in workers:  # each worker process runs a deferrer; they all see the same tick
        async with app.open_async():
            deferrer = PeriodicDeferrer(registry=app.periodic_registry)
            await deferrer.defer_jobs(deferrer.get_previous_tasks(at=tick))
    counts = dict(
        await pool.fetch(
            "SELECT task_name, count(*) FROM procrastinate_jobs GROUP BY task_name ORDER BY 1"
        )
    )
    names = {queue.periodic_task_name(job) for job in PERIODIC.values()}
    assert names <= set(counts)
    assert set(counts.values()) == {1}


def test_intervals_become_cron_lines() -> None:
    assert queue.cron_for(10) == "*/10 * * * * *"
    assert queue.cron_for(60) == "* * * * *"
    assert queue.cron_for(300) == "*/5 * * * *"
    assert queue.cron_for(3600) == "0 * * * *"
    assert queue.cron_for(6 * 3600) == "0 */6 * * *"
    for bad in (0, 7, 90, 1.5, 7 * 3600):
        with pytest.raises(ValueError, match="s"):
            queue.cron_for(bad)
    for job in PERIODIC.values():  # every registered job has an interval cron can say
        queue.cron_for(job.seconds)
