"""Fixtures for tests on a real Citus cluster: one coordinator and two workers per test process.

Citus is built once from its source tarball (tests/citus/build.py; a file lock keeps pytest-xdist
workers from building twice). The tests marked citus go to one xdist worker (``--dist
loadgroup``, group "citus"); a worker that runs any starts its own small cluster (about 2 s) in
its own directory on its own ports, so nothing is shared between processes but the build cache.
Without the tarball or a compiler every test here skips and says how to get Citus.

The integration tests that run on the cluster too (tests/citus/test_on_citus.py) share one
CampusCard database per xdist worker, made once by ``campuscard db citus`` (``campuscard_citus``):
a ``db citus`` per test would cost seconds each. Each test makes its school as it does on one
node; ``db_url`` here hands out that database after giving the names that are unique across the
platform (a school's code and name, a platform user's name) of the schools before it new ones,
so every test's ``make_school(conn)`` starts afresh in a school of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import asyncpg
import pytest

from campuscard.db import runtime
from campuscard.payments import terminals
from tests.citus.build import Build, CitusUnavailable, ensure_built
from tests.citus.cluster import Cluster, running_cluster

_counter = itertools.count()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test marked citus runs in one test process (``make test`` runs pytest-xdist with
    ``--dist loadgroup``): one cluster and one ``db citus`` database for all of them, instead of
    one of each per process, which cost the suite about a minute of its two cores."""
    for item in items:
        if item.get_closest_marker("citus"):
            item.add_marker(pytest.mark.xdist_group("citus"))


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def citus_build() -> Build:
    try:
        return ensure_built()
    except CitusUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def citus_cluster(citus_build: Build) -> Iterator[Cluster]:
    with running_cluster(citus_build, tag=_worker()) as cluster:
        yield cluster


@pytest.fixture
def citus_db(citus_cluster: Cluster) -> Iterator[str]:
    """A fresh database with the citus extension on every node and the workers registered in it;
    yields its URL on the coordinator."""
    name = f"cc_citus_{_worker()}_{next(_counter)}"
    asyncio.run(citus_cluster.create_database(name))
    try:
        yield citus_cluster.coordinator.url(name)
    finally:
        asyncio.run(citus_cluster.drop_database(name))


@pytest.fixture(scope="session")
def campuscard_citus(citus_cluster: Cluster) -> Iterator[str]:
    """One CampusCard database on the cluster for this test process, set up by ``db citus``
    (two shards a table: one per worker keeps the setup short); yields its URL."""
    name = f"cc_app_{_worker()}"
    asyncio.run(citus_cluster.create_database(name))
    url = citus_cluster.coordinator.url(name)
    asyncio.run(runtime.set_up_citus(url, shard_count=2))
    try:
        yield url
    finally:
        asyncio.run(citus_cluster.drop_database(name))


# The names the integration tests' builders reuse that a request finds a row by without its
# school (the school code "TST" and name, a platform admin's user name, a till's serial number
# "POS-0001"): the earlier tests' rows let go of them.
_RETIRE_NAMES = """
UPDATE schools SET code = 'done-' || id::text, name = name || '#' || id::text
 WHERE code NOT LIKE 'done-%';
UPDATE users SET username = username || '.' || id::text
 WHERE school_id IS NULL AND username NOT LIKE '%.' || id::text;
UPDATE terminals SET sn = sn || '-r' || id::text WHERE sn NOT LIKE '%-r' || id::text;
"""


async def _retire_names(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        retired = await conn.fetch("SELECT sn FROM terminals WHERE sn NOT LIKE '%-r' || id::text")
        await conn.execute(_RETIRE_NAMES)
    finally:
        await conn.close()
    for row in retired:  # the process' terminal cache must not answer with a retired till
        terminals.forget_terminal(row["sn"])


@pytest.fixture
def db_url(campuscard_citus: str) -> str:
    """The integration tests' database, on the cluster: this process' CampusCard database,
    with the names of the schools, platform users and tills before this test retired."""
    asyncio.run(_retire_names(campuscard_citus))
    return campuscard_citus
