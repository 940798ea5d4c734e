"""asyncpg connection pool with JSON codecs; one per process."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import asyncpg

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
            typ, encoder=_dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool[Any]:
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=60,
        server_settings={"application_name": "campuscard", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection[Any]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(
        url, server_settings={"application_name": "campuscard", "timezone": "UTC"}
    )
    await _init_connection(conn)
    return conn
