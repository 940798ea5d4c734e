"""What the benchmarks share: a throw-away database, the bench school, students seeded
set-based (purses, opening balances, cards), and pgbench as the yardstick.

Every benchmark runs on a throw-away embedded PostgreSQL, or on ``CAMPUSCARD_DATABASE_URL``
when set (a database you can drop: the benchmark migrates and fills it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from campuscard.db import migrate
from campuscard.db.embedded import EmbeddedPostgres, bin_dir, free_port
from campuscard.db.pool import Conn, connect
from campuscard.people import directory
from campuscard.platform.actors import Actor, Grant

ROOT = Actor(name="bench", grants=frozenset({Grant("platform_admin", None)}))


@contextlib.contextmanager
def throwaway_database(prefix: str, *, fsync: bool = True) -> Iterator[tuple[str, int | None]]:
    """(URL, pid of the embedded postmaster or None for an external server)."""
    external = os.environ.get("CAMPUSCARD_DATABASE_URL")
    if external:
        yield external, None
        return
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(pgdata=root / "pgdata", port=free_port(), fsync=fsync)
    server.start()
    try:
        pid = int((root / "pgdata" / "postmaster.pid").read_text().split()[0])
        yield server.url, pid
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


async def bench_school(conn: Conn, code: str = "BENCH") -> int:
    """Migrate and create the bench school (Jiangsu, Asia/Shanghai); returns its id."""
    await migrate.upgrade(conn)
    await conn.execute(
        "INSERT INTO provinces(code, name, name_en) VALUES ('32', '江苏省', 'Jiangsu') "
        "ON CONFLICT DO NOTHING"
    )
    return await directory.create_school(conn, ROOT, province_code="32", code=code, name="基准学校")


async def seed_students(
    conn: Conn, school_id: int, count: int, *, opening_fen: int = 0, cards: bool = False
) -> None:
    """``count`` active students with cash and subsidy purses; ``opening_fen`` in each cash
    purse (booked as one balanced opening transaction through the ledger triggers); with
    ``cards``, an active card each (number 9 + 11 digits, UID 8 hex digits)."""
    await conn.execute(
        """INSERT INTO persons(school_id, kind, number, name, account_status)
           SELECT $1, 'student', 'B' || lpad(g::text, 8, '0'), '学生' || g, 'active'
             FROM generate_series(1, $2::int) g""",
        school_id,
        count,
    )
    await conn.execute(
        """INSERT INTO accounts(school_id, kind, purse, person_id, floor)
           SELECT $1, 'purse', p, id, 0 FROM persons, unnest(ARRAY['cash', 'subsidy']) p
            WHERE school_id = $1 AND kind = 'student'""",
        school_id,
    )
    if opening_fen:
        await _open_balances(conn, school_id, opening_fen)
    if cards:
        await conn.execute(
            """INSERT INTO cards(school_id, person_id, number, uid, state, expires_on)
               SELECT $1, id, '9' || lpad(id::text, 11, '0'),
                      lpad(upper(to_hex(id + 305419896)), 8, '0'), 'active', current_date + 365
                 FROM persons WHERE school_id = $1 AND kind = 'student'""",
            school_id,
        )
    await conn.execute("ANALYZE")


async def forget_empty_statistics(conn: Conn, tables: tuple[str, ...] | None = None) -> list[str]:
    """Clear the statistics of the tables a seed's ANALYZE saw empty (or of ``tables``), as on
    a fresh install, and return their names. ANALYZE records an empty table as empty, and the
    planner then takes it for a page or less until the next analyze: a plan cached by a
    booking function in the first seconds (a sequential scan is the cheapest way to read
    nothing) stays while the table grows by thousands of rows a second, until autovacuum's
    next pass about a minute later. A campus's tables are never analyzed empty: a fresh
    install's have never been analyzed, and the planner then assumes ten pages until
    autovacuum has seen rows (decisions 0391, 0412). PostgreSQL 18 and later; an older
    external server keeps them."""
    if int(await conn.fetchval("SHOW server_version_num")) < 180000:
        return []
    if tables is None:
        tables = tuple(
            r["relname"]
            for r in await conn.fetch(
                """SELECT c.relname FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'public' AND c.relkind = 'r'
                      AND c.reltuples = 0 AND c.relpages = 0
                    ORDER BY c.relname"""
            )
        )
    for table in tables:
        await conn.execute("SELECT pg_clear_relation_stats('public', $1)", table)
    return list(tables)


async def _open_balances(conn: Conn, school_id: int, opening_fen: int) -> None:
    """Book ``opening_fen`` into every cash purse against the opening-balances account, one
    journal transaction per 100 purses. The rows are written as the ledger triggers would
    write them (balance_after, version, cached balances), with the triggers off for this load
    only: their per-row commit check would make 100,000 postings take minutes. The benchmark
    proves the result with check_ledger (I1-I4) when it ends."""
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            """CREATE TEMP TABLE bench_open ON COMMIT DROP AS
               SELECT id AS account_id, (row_number() OVER (ORDER BY id) - 1) / 100 AS chunk
                 FROM accounts WHERE school_id = $1 AND kind = 'purse' AND purse = 'cash'""",
            school_id,
        )
        opening = await conn.fetchval(
            "SELECT id FROM accounts WHERE school_id = $1 AND system_code = 'opening_balances'",
            school_id,
        )
        await conn.execute(
            """CREATE TEMP TABLE bench_chunks ON COMMIT DROP AS
               WITH c AS (SELECT chunk, count(*) AS n FROM bench_open GROUP BY chunk)
               SELECT c.chunk, c.n, nextval(pg_get_serial_sequence('journal_tx', 'id')) AS tx_id,
                      sum(c.n) OVER (ORDER BY c.chunk) AS running
                 FROM c"""
        )
        await conn.execute(
            """INSERT INTO journal_tx(id, school_id, kind, ref, business_date)
               SELECT tx_id, $1, 'opening_balance', 'bench-opening:' || chunk,
                      cc_business_date($1)
                 FROM bench_chunks""",
            school_id,
        )
        await conn.execute(
            """INSERT INTO postings(school_id, tx_id, account_id, amount, balance_after, version)
               SELECT $3::int, c.tx_id, o.account_id, $1::bigint, $1::bigint, 1
                 FROM bench_open o JOIN bench_chunks c USING (chunk)
               UNION ALL
               SELECT $3::int, tx_id, $2, -$1::bigint * n, -$1::bigint * running, chunk + 1
                 FROM bench_chunks""",
            opening_fen,
            opening,
            school_id,
        )
        await conn.execute(
            """UPDATE accounts a SET balance = s.total, version = s.last
                 FROM (SELECT account_id, sum(amount) AS total, max(version) AS last
                         FROM postings WHERE account_id IN
                              (SELECT account_id FROM bench_open UNION ALL SELECT $1)
                        GROUP BY account_id) s
                WHERE a.id = s.account_id""",
            opening,
        )


def _database_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def pgbench_tps(url: str, clients: int, seconds: int, *, scale: int = 10) -> float:
    """TPS of pgbench's built-in tpcb-like script on the same server (a database of its own,
    created once and initialised at ``scale``)."""
    conn = await connect(url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'bench_tpcb'"):
            await conn.execute("CREATE DATABASE bench_tpcb")
            fresh = True
        else:
            fresh = False
    finally:
        await conn.close()
    target = _database_url(url, "bench_tpcb")
    pgbench = str(bin_dir() / "pgbench")
    if fresh:
        subprocess.run(
            [pgbench, "-i", "-q", "-s", str(scale), target], check=True, capture_output=True
        )
    out = subprocess.run(
        [
            pgbench,
            "-b",
            "tpcb-like",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-n",
            target,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = re.search(r"tps = ([0-9.]+)", out)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps:\n{out}")
    return float(found.group(1))
