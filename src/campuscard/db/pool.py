"""asyncpg connection pool with JSON codecs; one per process."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

# Runtime-safe aliases: asyncpg's classes are generic only in their type stubs.
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
    PgPool = asyncpg.Pool[Any]
else:
    Conn = asyncpg.Connection
    PgPool = asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


# As json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str) wrote them:
# dates, times and dataclasses go through str(), integer keys become strings.
_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _dumps(value: Any) -> str:
    """orjson: about a tenth of the json module's time for a payment's answers and events."""
    return orjson.dumps(value, default=str, option=_OPTIONS).decode()


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """A connection coming back to the pool: asyncpg has already rolled back an open
    transaction and dropped listener callbacks. Its default reset would also run
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``: one more round trip on
    every request, half of a card payment's two. CampusCard leaves no session state on a
    pooled connection (settings are SET LOCAL or set_config(..., true), advisory locks are
    transaction locks or released in ``finally``, LISTEN is undone by ``remove_listener``;
    tests/unit/test_session_state.py keeps it so), so there is nothing to reset."""


class CountingPool(asyncpg.Pool):
    """asyncpg's pool, counting the acquires under way (``waiting``: callers waiting for a
    free connection or for a new one to open) for /metrics, which asyncpg does not expose.
    Every acquire (``async with pool.acquire()``, ``await pool.acquire()``, ``pool.fetch``)
    goes through ``Pool._acquire``; tests/integration/test_metrics.py fails if that changes."""

    waiting = 0

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 (asyncpg's signature)
        self.waiting += 1
        try:
            return await super()._acquire(timeout)  # type: ignore[misc]
        finally:
            self.waiting -= 1


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool[Any]:
    # as asyncpg.create_pool builds its pool (asyncpg is pinned in requirements.lock)
    pool = CountingPool(
        url,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=60,
        server_settings={"application_name": "campuscard", "timezone": "UTC"},
    )
    await pool
    return pool


# What a database that is restarting or briefly unreachable looks like to a new connection.
_NOT_READY: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
)


async def create_pool_when_ready(
    url: str, *, min_size: int = 2, max_size: int = 20, wait: float = 60.0
) -> asyncpg.Pool[Any]:
    """``create_pool``, retried while the database is starting up or unreachable.

    A web worker restarted during a database restart must wait for it, not fail its start-up:
    uvicorn stops every worker when one fails to start (found by the bank test's nemesis)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.1
    while True:
        try:
            return await create_pool(url, min_size=min_size, max_size=max_size)
        except _NOT_READY:
            if loop.time() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def connect(url: str, *, statement_cache_size: int = 100) -> asyncpg.Connection[Any]:
    """One connection set up as the pool's are (``statement_cache_size=0``: every statement is
    planned afresh, e.g. to see where Citus runs it)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(
        url,
        server_settings={"application_name": "campuscard", "timezone": "UTC"},
        statement_cache_size=statement_cache_size,
    )
    await _init_connection(conn)
    return conn
