"""Whether this process should get traffic: the database answers, its schema and code are what
this version expects, and a job worker was seen recently (someone delivers the outbox)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from campuscard.db import migrate
from campuscard.db.pool import PgPool
from campuscard.platform import heartbeats

PROBE_SECONDS = 2.0  # a probe that waits longer than this for the database calls it unreachable


@dataclass(frozen=True)
class Readiness:
    database: str  # "ok" | "unreachable"
    schema: str  # "ok" | "behind" | "unknown"
    worker: str  # "ok" | "not seen" | "unknown"
    reasons: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.reasons


async def check_ready(pool: PgPool, *, worker_within_seconds: int) -> Readiness:
    """Every check, each with its reason when it fails; changes nothing."""
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            async with pool.acquire() as conn:
                state = await migrate.status(conn)
                seen = await heartbeats.seconds_since_a_worker_was_seen(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        reason = f"database unreachable: {type(err).__name__}"
        return Readiness("unreachable", "unknown", "unknown", [reason])
    reasons: list[str] = []
    schema = "ok"
    if not state.up_to_date:
        schema = "behind"
        todo = len(state.pending) + len(state.code_changed) + len(state.code_new)
        edited = len(state.changed) + len(state.code_removed)
        reasons.append(
            f"database schema not current: {todo} to apply, {edited} edited or removed "
            "(run `campuscard db upgrade`)"
        )
    worker = "ok"
    if seen is None or seen > worker_within_seconds:
        worker = "not seen"
        when = "ever" if seen is None else f"for {int(seen)} s"
        reasons.append(
            f"no job worker seen {when} (limit {worker_within_seconds} s): run `campuscard worker`"
        )
    return Readiness("ok", schema, worker, reasons)
