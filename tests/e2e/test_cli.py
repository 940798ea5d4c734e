"""The command line, run as a user would: `campuscard ledger check` and `campuscard demo`."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from campuscard import demo
from campuscard.db.embedded import free_port
from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from tests.support import make_school, make_student

CLI = [sys.executable, "-m", "campuscard.cli"]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        CLI + args, env=os.environ | env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_ledger_check_passes_then_reports_a_violation(pool: PgPool, db_url: str) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S1", cash=1234)
        purse = (await postings.open_purses(conn, school.id, person))["cash"]

    ok = await asyncio.to_thread(_run, ["ledger", "check"], {"CAMPUSCARD_DATABASE_URL": db_url})
    assert ok.returncode == 0, ok.stderr
    assert "ledger OK" in ok.stdout

    # a superuser bypasses the guards on purpose: the check must notice the damage
    admin: asyncpg.Connection = await asyncpg.connect(db_url)
    try:
        await admin.execute("ALTER TABLE accounts DISABLE TRIGGER accounts_guard")
        await admin.execute("UPDATE accounts SET balance = balance + 1 WHERE id = $1", purse)
        await admin.execute("ALTER TABLE accounts ENABLE TRIGGER accounts_guard")
    finally:
        await admin.close()
    bad = await asyncio.to_thread(_run, ["ledger", "check"], {"CAMPUSCARD_DATABASE_URL": db_url})
    assert bad.returncode == 1
    assert "I1" in bad.stderr
    assert "I4 cached balance differs" in bad.stderr


def test_demo_loads_the_campus_serves_and_stops_its_database(tmp_path: Path) -> None:
    port = free_port()
    env = os.environ | {
        "CAMPUSCARD_DATA_DIR": str(tmp_path / "data"),
        "CAMPUSCARD_EMBEDDED_PORT": str(free_port()),
        "CAMPUSCARD_EMBEDDED_FSYNC": "false",
        "CAMPUSCARD_PORT": str(port),
        "CAMPUSCARD_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("CAMPUSCARD_DATABASE_URL", None)
    proc = subprocess.Popen(
        [*CLI, "demo", "--history-days", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    healthy = True
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert healthy, "demo did not serve within two minutes"
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"username": "admin", "password": "campuscard-demo"},
            timeout=10,
        )
        assert r.status_code == 200
        token = r.json()["token"]
        people = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/admin/schools/DEMO/persons",
            params={"limit": 500},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        # the enrolled students with cards, plus the new ones waiting for self-service issuing
        students = [p for p in people if p["kind"] == "student"]
        assert len(students) == demo.STUDENTS + demo.NEW_STUDENTS
        # and the visiting scholar with a temporary card
        assert [p["number"] for p in people if p["kind"] == "visitor"] == ["V2026001"]
    finally:
        proc.send_signal(signal.SIGTERM)  # as systemd or docker stop it; Ctrl+C is SIGINT
        out, _ = proc.communicate(timeout=120)
    assert "CampusCard demo campus created" in out
    assert "History:        2 days closed" in out
    assert "/api/docs" in out
    # the database stops with the demo (pg_ctl -w waits; allow for a loaded machine)
    pid_file = tmp_path / "data" / "pgdata" / "postmaster.pid"
    deadline = time.monotonic() + 180
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not pid_file.exists()
