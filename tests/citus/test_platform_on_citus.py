"""Platform-wide rows on the cluster: a job worker's heartbeat is a reference table's upsert,
which Citus accepts only without a clock function in its DO UPDATE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campuscard.db.pool import connect
from campuscard.platform import heartbeats

pytestmark = pytest.mark.citus


async def test_a_job_workers_heartbeat_is_recorded_again_on_the_cluster(
    campuscard_citus: str,
) -> None:
    # given a job worker that beat five minutes ago
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    conn = await connect(campuscard_citus)
    try:
        await heartbeats.record_heartbeat(conn, "citus-host:1", started)
        await conn.execute(
            "UPDATE worker_heartbeats SET seen_at = now() - interval '5 minutes' "
            "WHERE worker = 'citus-host:1'"
        )
        ago = "SELECT now() - seen_at FROM worker_heartbeats WHERE worker = 'citus-host:1'"
        stale = await conn.fetchval(ago)
        # when it beats again (the upsert's update)
        await heartbeats.record_heartbeat(conn, "citus-host:1", started)
        row = await conn.fetchrow(
            "SELECT started_at, now() - seen_at AS ago FROM worker_heartbeats "
            "WHERE worker = 'citus-host:1'"
        )
    finally:
        await conn.close()
    # then it is seen now, still with the instant it started
    assert stale >= timedelta(minutes=5)
    assert row is not None and row["started_at"] == started
    assert row["ago"] < timedelta(minutes=1)
