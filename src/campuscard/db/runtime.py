"""Which PostgreSQL the process uses: the external one in CAMPUSCARD_DATABASE_URL, or the
embedded server in the data directory, started (and later stopped) by this process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import asyncpg

from campuscard.config import Settings
from campuscard.db import citus, migrate
from campuscard.db.embedded import EmbeddedPostgres
from campuscard.db.pool import Conn, connect

APP_DATABASE = "campuscard"


async def _create_database(admin_url: str, name: str) -> None:
    conn: Conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def upgrade(url: str) -> list[str]:
    """Apply pending migrations and changed code files; on a Citus coordinator already set up
    by ``campuscard db citus``, also place the tables the migrations created."""
    conn = await connect(url)
    try:
        applied = await migrate.upgrade(conn)
        if await citus.is_citus(conn) and await citus.is_set_up(conn):
            applied += citus.Placed.labels(await citus.distribute(conn))
        return applied
    finally:
        await conn.close()


async def set_up_citus(
    url: str, *, shard_count: int | None = None
) -> tuple[list[str], citus.Placed]:
    """``campuscard db citus``: migrate a coordinator's database and place every table."""
    conn = await connect(url)
    try:
        await citus.check_cluster(conn)
        applied = await migrate.upgrade(conn)
        return applied, await citus.distribute(conn, shard_count=shard_count)
    finally:
        await conn.close()


async def status(url: str) -> migrate.SchemaStatus:
    conn = await connect(url)
    try:
        return await migrate.status(conn)
    finally:
        await conn.close()


@contextlib.contextmanager
def database(settings: Settings, *, migrate_schema: bool = True) -> Iterator[str]:
    """Yield a database URL ready to use; the embedded server stops when the block ends
    (unless it was already running when we came, in which case we leave it running)."""
    if settings.database_url:
        if migrate_schema:
            asyncio.run(upgrade(settings.database_url))
        yield settings.database_url
        return
    server = EmbeddedPostgres(
        pgdata=settings.pgdata, port=settings.embedded_port, fsync=settings.embedded_fsync
    )
    was_running = server.initialised() and server.running()
    server.start()
    try:
        asyncio.run(_create_database(server.url, APP_DATABASE))
        url = server.url_for(APP_DATABASE)
        if migrate_schema:
            asyncio.run(upgrade(url))
        yield url
    finally:
        if not was_running:
            server.stop()
