"""Live events sent after commit, many per NOTIFY transaction.

PostgreSQL holds one global lock from a NOTIFY-ing transaction's pre-commit until its commit
is flushed, so a NOTIFY inside every payment serialises all payment commits (measured: 150
instead of 400+ bookings/s with fsync on, bench/payments.py). Payments hand their event to an
``EventBatcher`` after their own commit; it sends whatever gathered in the last few
milliseconds in one statement on the same ``cc_events`` channel: one NOTIFY carrying a JSON
array of events (as many whole events as fit under PostgreSQL's payload limit), which listeners
(platform/live.py) take apart into the events a single NOTIFY carries. Best effort by design:
if the process dies in those milliseconds the page misses a push, not data (pages reload state
from the database). docs/decisions/0013-live-events-after-commit.md
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from campuscard.db.pool import PgPool
from campuscard.platform.notifications import EVENTS_CHANNEL

log = logging.getLogger(__name__)

FLUSH_DELAY_SECONDS = 0.01
MAX_BATCH = 500
# PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more; an array is closed below this
MAX_PAYLOAD_BYTES = 7_000
NOTIFY_SQL = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"  # in the array's order


def payloads(events: Iterable[dict[str, Any]]) -> list[str]:
    """The events, in order, as NOTIFY payloads: JSON arrays of whole events, each array under
    ``MAX_PAYLOAD_BYTES`` unless one event alone is larger (it then goes alone)."""
    out: list[str] = []
    part: list[bytes] = []
    size = 2
    for event in events:
        text = orjson.dumps(event, default=str)
        if part and size + len(text) + 1 > MAX_PAYLOAD_BYTES:
            out.append((b"[" + b",".join(part) + b"]").decode())
            part, size = [], 2
        part.append(text)
        size += len(text) + 1
    if part:
        out.append((b"[" + b",".join(part) + b"]").decode())
    return out


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
                # one statement, one round trip: its NOTIFYs are sent when it commits
                await self._pool().execute(NOTIFY_SQL, EVENTS_CHANNEL, payloads(batch))
            except Exception as err:  # a missed push is not lost data; never break a payment
                log.warning("could not send %d live events: %r", len(batch), err)
