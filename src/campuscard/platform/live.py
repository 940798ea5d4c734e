"""Live events for pages: one PostgreSQL LISTEN connection per process, fanned out to every
subscriber (a student's page, a till's customer display) that asked for matching events.

``notifications.publish_event`` sends on channel ``cc_events`` when its transaction commits.
Browsers never hold a database connection: however many pages are open, this process holds one
LISTEN connection (taken from the pool while anyone listens, given back when the last leaves).
A slow subscriber loses its oldest events rather than slowing the others; if the connection
drops, subscribers get a ``reconnect`` event and the hub listens again on a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from sse_starlette import ServerSentEvent

from campuscard.db.pool import PgPool
from campuscard.platform.notifications import EVENTS_CHANNEL

log = logging.getLogger(__name__)

Event = dict[str, Any]
Match = Callable[[Event], bool]
QUEUE_SIZE = 100
RECONNECT_SECONDS = 1.0


@dataclass(eq=False)
class Subscription:
    match: Match
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0

    def offer(self, event: Event) -> None:
        if self.queue.full():
            # a page that cannot keep up misses old events, not new ones
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)


def events_of(payload: object) -> list[Event]:
    """The events one NOTIFY carries: one (``notifications.publish_event``) or an array of them
    (``EventBatcher``, many payments' events in one NOTIFY)."""
    try:
        decoded = orjson.loads(str(payload))
    except ValueError:
        log.warning("live event is not JSON; dropped")
        return []
    items = decoded if isinstance(decoded, list) else [decoded]
    return [e for e in items if isinstance(e, dict)]


class EventHub:
    def __init__(self, pool: PgPool, channel: str = EVENTS_CHANNEL) -> None:
        self._pool = pool
        self._channel = channel
        self._subs: set[Subscription] = set()
        self._conn: Any = None  # the pool connection holding LISTEN, while anyone listens
        self._lock = asyncio.Lock()
        self._reconnect: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def listening(self) -> bool:
        return self._conn is not None

    async def subscribe(self, match: Match) -> Subscription:
        sub = Subscription(match)
        async with self._lock:
            self._subs.add(sub)
            if self._conn is None:
                try:
                    await self._listen()
                except BaseException:
                    self._subs.discard(sub)  # never handed out: nobody would unsubscribe it
                    raise
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        async with self._lock:
            self._subs.discard(sub)
            if not self._subs:
                await self._release()

    @contextlib.asynccontextmanager
    async def subscription(self, match: Match) -> AsyncIterator[Subscription]:
        sub = await self.subscribe(match)
        try:
            yield sub
        finally:
            # a closed page cancels its stream; the connection must still go back to the pool
            # cleanly, so the clean-up is shielded from that cancellation
            with anyio.CancelScope(shield=True):
                await self.unsubscribe(sub)

    async def close(self) -> None:
        async with self._lock:
            self._subs.clear()
            if self._reconnect is not None:
                self._reconnect.cancel()
            await self._release()

    async def _listen(self) -> None:
        conn = await self._pool.acquire()
        try:
            await conn.add_listener(self._channel, self._on_notify)
            conn.add_termination_listener(self._on_lost)
        except BaseException:
            # also when the stream is cancelled here (a page closed while its stream starts):
            # the connection goes back to the pool, or it is lost to the process for good
            with anyio.CancelScope(shield=True):
                await self._pool.release(conn)
            raise
        self._conn = conn

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.remove_termination_listener(self._on_lost)
            await conn.remove_listener(self._channel, self._on_notify)
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        for event in events_of(payload):
            self.dispatch(event)

    def dispatch(self, event: Event) -> None:
        for sub in list(self._subs):
            try:
                wanted = sub.match(event)
            except Exception:  # a filter never takes the hub down
                log.exception("live event filter failed")
                continue
            if wanted:
                sub.offer(event)

    def _on_lost(self, _conn: object) -> None:
        self._conn = None
        for sub in list(self._subs):
            sub.offer({"type": "reconnect"})
        if self._subs and (self._reconnect is None or self._reconnect.done()):
            self._reconnect = asyncio.get_running_loop().create_task(self._relisten())

    async def _relisten(self) -> None:
        while True:
            await asyncio.sleep(RECONNECT_SECONDS)
            async with self._lock:
                if not self._subs or self._conn is not None:
                    return
                try:
                    await self._listen()
                    return
                except Exception:
                    log.warning("live events: LISTEN failed; retrying", exc_info=True)


def server_sent(event: Event, *, retry_ms: int | None = None) -> ServerSentEvent:
    """One server-sent event: its type as the event name, the JSON as data."""
    name = str(event.get("type", "message")).replace("\n", " ").replace("\r", " ")
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    return ServerSentEvent(data=data, event=name, retry=retry_ms, sep="\n")
