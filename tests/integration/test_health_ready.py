"""/api/health (the process answers) and /api/ready (database, schema and a job worker), as a
load balancer calls them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx

from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import create_pool
from campuscard.platform import heartbeats
from campuscard.platform.worker import run_forever
from tests.support_moneyflows import wait_for


async def test_health_answers_without_the_database(settings: Settings) -> None:
    # given an app whose pool points at a port where no database listens
    dead = await create_pool(settings.database_url, min_size=0, max_size=1)
    await dead.close()
    app = create_app(settings, pool=dead)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        # when a load balancer asks whether the process is alive, and whether it is ready
        alive = await c.get("/api/health")
        ready = await c.get("/api/ready")
    # then it is alive, but not ready, and says why
    assert alive.status_code == 200 and alive.json()["status"] == "ok"
    assert ready.status_code == 503
    assert ready.json()["database"] == "unreachable"
    assert ready.json()["reasons"][0].startswith("database unreachable")


async def test_ready_needs_a_job_worker_seen_recently(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    # given a migrated database and no worker ever seen
    r = await client.get("/api/ready")
    assert r.status_code == 503
    assert r.json()["database"] == "ok" and r.json()["migrations"] == "ok"
    assert r.json()["worker"] == "not seen"
    assert "no job worker seen ever" in r.json()["reasons"][0]

    # when a worker records its heartbeat
    await heartbeats.record_heartbeat(pool, "host:1", datetime.now(UTC))
    # then the process is ready
    r = await client.get("/api/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "database": "ok",
        "migrations": "ok",
        "worker": "ok",
        "reasons": [],
    }

    # when the last heartbeat is older than the limit
    await pool.execute("UPDATE worker_heartbeats SET seen_at = now() - interval '5 minutes'")
    r = await client.get("/api/ready")
    assert r.status_code == 503
    assert r.json()["worker"] == "not seen" and "for 300 s" in r.json()["reasons"][0]


async def test_ready_refuses_a_database_whose_code_is_not_current(
    client: httpx.AsyncClient, pool: Any
) -> None:
    # given a worker seen just now, and a database function edited since it was applied
    await heartbeats.record_heartbeat(pool, "host:2", datetime.now(UTC))
    await pool.execute(
        "UPDATE schema_code SET checksum = 'old' WHERE path = 'ledger/db/cc_post.sql'"
    )
    # when the load balancer asks
    r = await client.get("/api/ready")
    # then the process is not ready, and says to upgrade
    assert r.status_code == 503
    assert r.json()["migrations"] == "behind"
    assert "campuscard db upgrade" in r.json()["reasons"][0]


async def test_the_worker_loop_records_its_heartbeat(pool: Any, settings: Settings) -> None:
    # given no heartbeat
    assert await heartbeats.seconds_since_a_worker_was_seen(pool) is None
    await pool.execute(
        "INSERT INTO worker_heartbeats(worker, started_at, seen_at) "
        "VALUES ('gone:9', now() - interval '3 days', now() - interval '2 days')"
    )
    # when the job worker runs
    stop = asyncio.Event()
    worker = asyncio.create_task(run_forever(settings, stop=stop))
    try:
        await wait_for(lambda: _seen_within(pool, 5), timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    # then it was seen just now under its own name, and the worker gone for days is forgotten
    workers = {r["worker"] for r in await pool.fetch("SELECT worker FROM worker_heartbeats")}
    assert workers == {heartbeats.worker_name()}


async def _seen_within(pool: Any, seconds: float) -> bool:
    seen = await heartbeats.seconds_since_a_worker_was_seen(pool)
    return seen is not None and seen < seconds
