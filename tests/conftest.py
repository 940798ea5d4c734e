"""Test fixtures: a real PostgreSQL (embedded, or CAMPUSCARD_TEST_DATABASE_URL), a migrated
template database, and a fresh copy of it for every test that touches the database."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db import migrate
from campuscard.db.embedded import EmbeddedPostgres, free_port
from campuscard.db.pool import connect, create_pool

# Tests sign in hundreds of times: no pause between password hashes here (the servers they
# start inherit it). The pause itself is tested in tests/unit/test_hashing_budget.py.
os.environ.setdefault("CAMPUSCARD_PASSWORD_HASH_CPU_SHARE", "1")
# ... and cheap argon2 parameters: thousands of hashes are made and checked, and production's
# (config.py; about 0.2 s a hash here) would be most of the suite's time. A stored hash
# carries its own parameters, so every path runs the same; the production cost is measured
# by bench/signin_flood.py.
os.environ.setdefault("CAMPUSCARD_ARGON2_TIME_COST", "1")
os.environ.setdefault("CAMPUSCARD_ARGON2_MEMORY_KIB", "16384")
os.environ.setdefault("CAMPUSCARD_ARGON2_PARALLELISM", "1")

TEMPLATE = "cc_template"
SCRATCH_MIN_FREE = 4 * 1024**3
_counter = itertools.count()


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a maintenance database on the test server."""
    external = os.environ.get("CAMPUSCARD_TEST_DATABASE_URL")
    if external:
        yield external
        return
    root = scratch_dir(f"cc-test-{_worker()}-")
    server = EmbeddedPostgres(pgdata=root / "pgdata", port=free_port(), fsync=False)
    server.start()
    try:
        yield server.url
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def scratch_dir(prefix: str) -> Path:
    """A private folder for a throw-away PostgreSQL: in memory (/dev/shm) when the machine has
    one with room. Every test copies a database of about a thousand files and drops it; on ext4
    the allocation of inodes next to so many recently deleted ones took about a third of the
    suite's CPU, in the kernel. What is tested does not change: the same server, the same
    files, only a faster file system under them."""
    shm = Path("/dev/shm")  # noqa: S108 - only as mkdtemp's dir: a fresh private folder
    try:
        usage = shutil.disk_usage(shm)
    except OSError:
        usage = None
    if usage is not None and usage.free >= SCRATCH_MIN_FREE and os.access(shm, os.W_OK):
        root = Path(tempfile.mkdtemp(prefix=prefix, dir=shm))
        # the database's own user (embedded.py runs it as one when we are root) must reach the
        # cluster inside, or it is moved to that user's home on the disk: traverse, not list
        root.chmod(0o711)
        return root
    return Path(tempfile.mkdtemp(prefix=prefix))


def _url_with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> str:
    name = f"{TEMPLATE}_{_worker()}"

    async def build() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await connect(_url_with_db(pg_admin_url, name))
        try:
            await migrate.upgrade(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    return name


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"t_{_worker()}_{os.getpid()}_{next(_counter)}"

    async def create() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(
                f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" STRATEGY FILE_COPY'
            )
        finally:
            await admin.close()

    async def drop() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield _url_with_db(pg_admin_url, name)
    finally:
        asyncio.run(drop())


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        master_key="test-master-key-0123456789",  # type: ignore[arg-type]
        login_max_failures=3,
        run_worker=False,  # tests drive the worker explicitly
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    p = await create_pool(db_url, min_size=1, max_size=20)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def conn(pool: asyncpg.Pool[Any]) -> AsyncIterator[asyncpg.Connection[Any]]:
    async with pool.acquire() as c:
        yield c


@pytest.fixture
async def client(settings: Settings, pool: asyncpg.Pool[Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, pool=pool)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
