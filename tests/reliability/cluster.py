"""The system under test for the bank test: its own embedded PostgreSQL (so restarting it
disturbs no other test) and `campuscard serve` with several uvicorn workers as a subprocess,
plus the nemesis that breaks them."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from campuscard.db.embedded import EmbeddedPostgres, free_port

MASTER_KEY = "reliability-master-key-0123456789"  # the served app derives terminal keys from it
# `campuscard serve` refuses development or short secrets; the tests that talk to the provider
# or the bank pass their own keys over these
PRODUCTION_SECRETS = {
    "CAMPUSCARD_PROVIDER_KEY": "reliability-provider-key-0123456789",
    "CAMPUSCARD_BANK_MAC_KEY": "reliability-bank-mac-key-0123456789",
    "CAMPUSCARD_SMS_API_SECRET": "reliability-sms-secret-0123456789ab",
    "CAMPUSCARD_UTILITY_SECRET": "reliability-utility-secret-0123456789",
}


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (from /proc; no extra dependency)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces; ppid follows it
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline


@dataclass
class Cluster:
    root: Path
    workers: int = 3
    pg: EmbeddedPostgres = field(init=False)
    port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # durable commits, as in production: with fsync (and so synchronous_commit) off, a
        # crash-restart loses the last acknowledged commits, and this test catches exactly that
        self.pg = EmbeddedPostgres(pgdata=self.root / "pgdata", port=free_port(), fsync=True)

    @property
    def db_url(self) -> str:
        return self.pg.url_for("campuscard")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_database(self) -> None:
        self.pg.start()

        async def create() -> None:
            admin = await asyncpg.connect(self.pg.url)
            try:
                if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname='campuscard'"):
                    await admin.execute("CREATE DATABASE campuscard")
            finally:
                await admin.close()

        import asyncio

        asyncio.run(create())

    def start_server(self, extra_env: dict[str, str] | None = None) -> None:
        env = (
            os.environ
            | PRODUCTION_SECRETS
            | (extra_env or {})
            | {
                "CAMPUSCARD_DATABASE_URL": self.db_url,
                "CAMPUSCARD_PORT": str(self.port),
                "CAMPUSCARD_HOST": "127.0.0.1",
                "CAMPUSCARD_WORKERS": str(self.workers),
                "CAMPUSCARD_POOL_MIN_SIZE": "1",
                "CAMPUSCARD_POOL_MAX_SIZE": "8",
                "CAMPUSCARD_MASTER_KEY": MASTER_KEY,
                "CAMPUSCARD_DATA_DIR": str(self.root / "data"),
            }
        )
        with (self.root / "server.log").open("ab") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "campuscard.cli", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.server.poll() is None, self.log_tail()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/api/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError("server did not come up:\n" + self.log_tail())

    def log_tail(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGINT)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=10)
        self.pg.destroy()

    # --- the nemesis -------------------------------------------------------------------------

    def kill_worker(self, rng: random.Random) -> None:
        assert self.server is not None
        workers = [pid for pid in children(self.server.pid) if is_worker(pid)]
        if workers:
            victim = rng.choice(workers)
            os.kill(victim, signal.SIGKILL)
            self.events.append(f"SIGKILL worker {victim}")

    async def terminate_backends(self) -> None:
        admin = await asyncpg.connect(self.pg.url, timeout=5)
        try:
            n = await admin.fetchval(
                """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                    WHERE application_name = 'campuscard' AND pid <> pg_backend_pid()"""
            )
        finally:
            await admin.close()
        self.events.append(f"terminated {n} database backends")

    def restart_database(self) -> None:
        self.pg.stop("immediate")  # a crash: recovery replays the WAL
        self.pg.start()
        self.events.append("restarted PostgreSQL (immediate stop)")


@contextlib.contextmanager
def running_cluster(root: Path, workers: int = 3) -> Iterator[Cluster]:
    cluster = Cluster(root, workers=workers)
    try:
        cluster.start_database()
        yield cluster
    finally:
        cluster.stop()
