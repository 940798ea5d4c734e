"""The live-event hub's pool connection: a stream cancelled while its LISTEN is being set up
gives the connection back (platform/live.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from campuscard.db.pool import create_pool
from campuscard.platform.live import EventHub


class SlowConnection:
    """A pool connection that takes its time to LISTEN, as under load."""

    def __init__(self, conn: Any, listening: asyncio.Event) -> None:
        self.conn = conn
        self.listening = listening

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    async def add_listener(self, channel: str, callback: Any) -> None:
        self.listening.set()
        await asyncio.sleep(30)
        await self.conn.add_listener(channel, callback)


class SlowListen:
    """The pool the hub is given: the real one, its connections slow to LISTEN."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.listening = asyncio.Event()

    async def acquire(self) -> SlowConnection:
        return SlowConnection(await self.pool.acquire(), self.listening)

    async def release(self, conn: SlowConnection) -> None:
        await self.pool.release(conn.conn)


async def test_a_stream_cancelled_while_it_starts_gives_its_connection_back(db_url: str) -> None:
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        slow = SlowListen(pool)
        hub = EventHub(slow)  # type: ignore[arg-type]
        # given a page whose stream is setting up the hub's LISTEN
        opening = asyncio.create_task(hub.subscribe(lambda event: True))
        await asyncio.wait_for(slow.listening.wait(), 10)
        # when the page is closed at that moment
        opening.cancel()
        await asyncio.gather(opening, return_exceptions=True)
        # then the pool's one connection is free again, and the hub listens on nothing
        async with asyncio.timeout(5):
            conn = await pool.acquire()
        await pool.release(conn)
        assert not hub.listening and hub.subscribers == 0
    finally:
        await asyncio.wait_for(pool.close(), 10)
