"""Fixtures for tests on a real Citus cluster: one coordinator and two workers per test process.

Citus is built once from its source tarball (tests/citus/build.py; a file lock keeps pytest-xdist
workers from building twice). Each xdist worker starts its own small cluster (about 2 s) in its
own directory on its own ports, so nothing is shared between processes but the build cache.
Without the tarball or a compiler every test here skips and says how to get Citus.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import pytest

from tests.citus.build import Build, CitusUnavailable, ensure_built
from tests.citus.cluster import Cluster, running_cluster

_counter = itertools.count()


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
