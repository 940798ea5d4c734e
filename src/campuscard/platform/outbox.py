"""Deliver outbox rows: claim a batch (SKIP LOCKED), hand each to its topic's handler, mark it
delivered or reschedule it with back-off. At least once; handlers deduplicate by row id."""

from __future__ import annotations

import logging
from datetime import timedelta

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.platform.tasks import OUTBOX_HANDLERS

log = logging.getLogger("campuscard.outbox")
MAX_BACKOFF = timedelta(minutes=30)


async def deliver_batch(pool: PgPool, settings: Settings, *, limit: int = 50) -> int:
    """Deliver up to ``limit`` due rows; returns how many were delivered."""
    delivered = 0
    async with transaction(pool) as tx:
        rows = await tx.fetch(
            """SELECT id, topic, payload, attempts FROM outbox
                    WHERE delivered_at IS NULL AND available_at <= now()
                      AND topic = ANY($2::text[])
                    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
            list(OUTBOX_HANDLERS),
        )
        for row in rows:
            handler = OUTBOX_HANDLERS[row["topic"]]
            payload = dict(row["payload"]) | {"outbox_id": row["id"]}
            try:
                await handler(pool, settings, payload)
            except Exception as err:  # a failed delivery is retried later, never lost
                backoff = min(timedelta(seconds=2 ** min(row["attempts"], 11)), MAX_BACKOFF)
                log.warning("outbox %s (%s) failed: %r", row["id"], row["topic"], err)
                await tx.execute(
                    """UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                                  available_at = now() + $3 WHERE id = $1""",
                    row["id"],
                    repr(err)[:500],
                    backoff,
                )
            else:
                delivered += 1
                await tx.execute(
                    "UPDATE outbox SET attempts = attempts + 1, delivered_at = now(), "
                    "last_error = NULL WHERE id = $1",
                    row["id"],
                )
    return delivered
