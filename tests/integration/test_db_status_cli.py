"""`campuscard db status`, run as an operator or a readiness probe would: it lists applied and
pending migrations and changed database code, and exits 1 while an upgrade has work to do."""

import asyncio
import os
import subprocess
import sys

import asyncpg

CLI = [sys.executable, "-m", "campuscard.cli"]


def _run(args: list[str], db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        CLI + args,
        env=os.environ | {"CAMPUSCARD_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_db_status_lists_what_is_applied_and_exits_1_while_anything_is_pending(
    db_url: str,
) -> None:
    ok = await asyncio.to_thread(_run, ["db", "status"], db_url)
    assert ok.returncode == 0, ok.stderr
    assert "applied  0001_platform  20" in ok.stdout
    assert "applied  0091_blacklist_reason_follows_state" in ok.stdout
    assert ok.stdout.rstrip().endswith("database is up to date")

    # a code file changed since it was applied (here: its recorded checksum differs)
    admin = await asyncpg.connect(db_url)
    try:
        await admin.execute(
            "UPDATE schema_code SET checksum = 'old' WHERE path = 'ledger/db/cc_post.sql'"
        )
        changed = await asyncio.to_thread(_run, ["db", "status"], db_url)
        assert changed.returncode == 1
        assert "changed  ledger/db/cc_post.sql" in changed.stdout
        assert "1 to apply: run `campuscard db upgrade`" in changed.stderr

        upgraded = await asyncio.to_thread(_run, ["db", "upgrade"], db_url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert "applied ledger/db/cc_post.sql" in upgraded.stdout
        assert (await asyncio.to_thread(_run, ["db", "status"], db_url)).returncode == 0

        # a migration not yet applied
        await admin.execute("DELETE FROM schema_migrations WHERE version = 91")
        await admin.execute("DELETE FROM schema_code WHERE path = 'cards/db/cards_blacklist.sql'")
        pending = await asyncio.to_thread(_run, ["db", "status"], db_url)
    finally:
        await admin.close()
    assert pending.returncode == 1
    assert "pending  0091_blacklist_reason_follows_state" in pending.stdout
    assert "new      cards/db/cards_blacklist.sql" in pending.stdout
    assert "applied  0091" not in pending.stdout
