"""`campuscard backup` and `campuscard restore`, run as an operator would: a database with money
in it is dumped, restored into a fresh data directory, and the ledger check passes there with
every balance as it was."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from campuscard.config import Settings
from campuscard.db.embedded import EmbeddedPostgres, free_port
from campuscard.db.runtime import APP_DATABASE
from tests.support import make_school
from tests.support_payments import make_cardholder, make_device, make_merchant, pay

CLI = [sys.executable, "-m", "campuscard.cli"]
BALANCES = "SELECT id, balance, version FROM accounts ORDER BY id"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        CLI + args,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_a_backup_restored_into_a_fresh_data_directory_passes_the_ledger_check(
    client: httpx.AsyncClient, pool: Any, settings: Settings, db_url: str, tmp_path: Path
) -> None:
    # given a school whose students hold money and paid at a till
    async with pool.acquire() as conn:
        school = await make_school(conn, "BAK")
        merchant_id, outlet_id = await make_merchant(conn, school.id)
        till = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
        cards = [
            (await make_cardholder(conn, school.id, f"B{i}", cash=10_000 * i))[1]
            for i in range(1, 4)
        ]
    for card in cards:
        r = await pay(client, till, card, "3.20")
        assert r.status_code == 200, r.text
    before = [tuple(r) for r in await pool.fetch(BALANCES)]
    payments = await pool.fetchval("SELECT count(*) FROM payments")
    assert payments == 3

    # when it is backed up
    archive = tmp_path / "campuscard.dump"
    made = await asyncio.to_thread(
        _run, ["backup", str(archive)], {"CAMPUSCARD_DATABASE_URL": db_url}
    )
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_size > 0 and "backed up to" in made.stdout

    # and restored into a fresh data directory of the embedded server
    fresh = {
        "CAMPUSCARD_DATABASE_URL": "",
        "CAMPUSCARD_DATA_DIR": str(tmp_path / "restored"),
        "CAMPUSCARD_EMBEDDED_PORT": str(free_port()),
        "CAMPUSCARD_EMBEDDED_FSYNC": "false",
    }
    restored = await asyncio.to_thread(_run, ["restore", str(archive)], fresh)
    assert restored.returncode == 0, restored.stdout + restored.stderr

    # then the ledger check passes there, and every balance, version and payment is as it was
    check = await asyncio.to_thread(_run, ["ledger", "check"], fresh)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ledger OK" in check.stdout
    server = EmbeddedPostgres(
        Path(fresh["CAMPUSCARD_DATA_DIR"]).resolve() / "pgdata",
        int(fresh["CAMPUSCARD_EMBEDDED_PORT"]),
        fsync=False,
    )
    server.start()
    try:
        conn = await asyncpg.connect(server.url_for(APP_DATABASE))
        try:
            after = [tuple(r) for r in await conn.fetch(BALANCES)]
            assert await conn.fetchval("SELECT count(*) FROM payments") == payments
        finally:
            await conn.close()
    finally:
        server.stop()
    assert after == before

    # and a second restore over the restored database is refused, changing nothing
    again = await asyncio.to_thread(_run, ["restore", str(archive)], fresh)
    assert again.returncode == 1
    assert "refused: the database already holds" in again.stderr


def test_restore_names_a_missing_file(tmp_path: Path) -> None:
    result = _run(["restore", str(tmp_path / "nothing.dump")], {})
    assert result.returncode == 2
    assert "FILE" in result.stderr and "no such file" in result.stderr
