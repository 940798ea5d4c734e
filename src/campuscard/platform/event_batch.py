"""Live events sent after commit, many per NOTIFY transaction.

PostgreSQL holds one global lock from a NOTIFY-ing transaction's pre-commit until its commit
is flushed, so a NOTIFY inside every payment serialises all payment commits (measured: 150
instead of 400+ bookings/s with fsync on, bench/payments.py). Payments hand their event to an
``EventBatcher`` after their own commit; it sends whatever gathered in the last few
milliseconds in one short transaction on the same ``cc_events`` channel, so listeners
(platform/live.py) see the same payloads. Best effort by design: if the process dies in those
milliseconds the page misses a push, not data (pages reload state from the database).
docs/decisions/0013-live-events-after-commit.md
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.platform.notifications import EVENTS_CHANNEL

log = logging.getLogger(__name__)

FLUSH_DELAY_SECONDS = 0.01
MAX_BATCH = 500


class EventBatcher:
    def __init__(self, pool: Callable[[], PgPool], *, delay: float = FLUSH_DELAY_SECONDS) -> None:
        self._pool = pool
        self._delay = delay
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def publish(self, event: dict[str, Any]) -> None:
        """Queue an event of a committed change; it is sent within a few milliseconds."""
        self._pending.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    async def drain(self) -> None:
        """Wait until everything queued so far has been sent (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _flush_loop(self) -> None:
        while self._pending:
            await asyncio.sleep(self._delay)
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                async with transaction(self._pool()) as tx:
                    await tx.executemany(
                        "SELECT pg_notify($1, $2)",
                        [(EVENTS_CHANNEL, json.dumps(e, ensure_ascii=False)) for e in batch],
                    )
            except Exception as err:  # a missed push is not lost data; never break a payment
                log.warning("could not send %d live events: %r", len(batch), err)
