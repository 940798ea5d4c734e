"""Job workers record that they are alive; readiness asks when one was last seen."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from campuscard.db.pool import Conn, PgPool


def worker_name() -> str:
    """host:pid, unique among the live workers of a deployment."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def record_heartbeat(db: Conn | PgPool, worker: str, started_at: datetime) -> None:
    """Upsert this worker's row (one statement, its own implicit transaction) and forget
    workers not seen for a day."""
    await db.execute(
        """WITH gone AS (
               DELETE FROM worker_heartbeats WHERE seen_at < now() - interval '1 day'
           )
           INSERT INTO worker_heartbeats(worker, started_at) VALUES ($1, $2)
           ON CONFLICT (worker) DO UPDATE SET seen_at = EXCLUDED.seen_at""",
        worker,
        started_at,
    )


async def seconds_since_a_worker_was_seen(db: Conn | PgPool) -> float | None:
    """Seconds since the most recent heartbeat of any worker; None when none ever beat."""
    value = await db.fetchval(
        "SELECT extract(epoch FROM now() - max(seen_at))::float8 FROM worker_heartbeats"
    )
    return None if value is None else float(value)
