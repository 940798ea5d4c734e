"""Benchmark: card payments booked per second through ``cc_pay`` against pgbench TPC-B TPS.

Both run on the same throw-away embedded PostgreSQL (same settings, same client count), so the
ratio is what matters: the target is payments/s >= 0.6 x pgbench TPS. The payment side runs
the production booking path below HTTP: ``services.payments.book_payment`` (one round trip
into ``cc_pay``: nonce, idempotency, card/limits/PIN checks, purse locks, postings, merchant
shard, payment row, live event) from ``--clients`` asyncpg connections, for students paying at
the canteen's terminals (8 shards, so windows do not serialise on one merchant row).

    .venv/bin/python bench/payments.py [--clients 8] [--seconds 15] [--students 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from campuscard.config import Settings
from campuscard.db import migrate
from campuscard.db.embedded import EmbeddedPostgres, bin_dir, free_port
from campuscard.db.pool import connect, create_pool
from campuscard.domain.money import Money
from campuscard.services import payments, people, terminals
from campuscard.services.actors import Actor, Grant
from campuscard.services.event_batch import EventBatcher

TARGET_RATIO = 0.6
ROOT = Actor(name="bench", grants=frozenset({Grant("platform_admin", None)}))


def pgbench_tps(server: EmbeddedPostgres, clients: int, seconds: int) -> float:
    pgbench = str(bin_dir() / "pgbench")
    url = server.url_for("bench_tpcb")
    subprocess.run(
        [
            str(bin_dir() / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "bench_tpcb",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [pgbench, "-i", "-q", "-s", "10", url],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [pgbench, "-c", str(clients), "-j", "2", "-T", str(seconds), "-n", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    m = re.search(r"tps = ([0-9.]+)", out)
    assert m, out
    return float(m.group(1))


async def setup(url: str, students: int, settings: Settings) -> tuple[list[int], list[tuple]]:
    conn = await connect(url)
    try:
        await migrate.upgrade(conn)
        await conn.execute(
            "INSERT INTO provinces(code, name, name_en) VALUES ('32', '江苏省', 'Jiangsu') "
            "ON CONFLICT DO NOTHING"
        )
        school_id = await people.create_school(
            conn, ROOT, province_code="32", code="BENCH", name="基准学校"
        )
        merchant_id = await conn.fetchval(
            """INSERT INTO merchants(school_id, name, channel, status, shards)
               VALUES ($1, '第一食堂', 'canteen', 'approved', 8) RETURNING id""",
            school_id,
        )
        terminal_ids = []
        for i in range(16):
            reg = await terminals.register_terminal(
                conn,
                ROOT,
                settings,
                school_id,
                sn=f"POS-BENCH-{i:03d}",
                kind="pos",
                merchant_id=merchant_id,
            )
            terminal_ids.append(reg["id"])
        opening = await conn.fetchval(
            "SELECT id FROM accounts WHERE school_id = $1 AND system_code = 'opening_balances'",
            school_id,
        )
        await conn.execute(
            """INSERT INTO persons(school_id, kind, number, name, account_status)
               SELECT $1, 'student', 'B' || g, '学生' || g, 'active'
                 FROM generate_series(1, $2) g""",
            school_id,
            students,
        )
        await conn.execute(
            """INSERT INTO accounts(school_id, kind, purse, person_id, floor)
               SELECT $1, 'purse', p, id, 0 FROM persons, unnest(ARRAY['cash', 'subsidy']) p
                WHERE school_id = $1""",
            school_id,
        )
        async with conn.transaction():
            tx = await conn.fetchval(
                """INSERT INTO journal_tx(school_id, kind, business_date)
                   VALUES ($1, 'opening_balance', cc_business_date($1)) RETURNING id""",
                school_id,
            )
            await conn.execute(
                """INSERT INTO postings(tx_id, account_id, amount)
                   SELECT $1, id, 1000000 FROM accounts
                    WHERE school_id = $2 AND kind = 'purse' AND purse = 'cash' ORDER BY id""",
                tx,
                school_id,
            )
            await conn.execute(
                "INSERT INTO postings(tx_id, account_id, amount) VALUES ($1, $2, $3)",
                tx,
                opening,
                -1000000 * students,
            )
        await conn.execute(
            """INSERT INTO cards(school_id, person_id, number, uid, state, expires_on)
               SELECT $1, id, '9' || lpad(id::text, 11, '0'),
                      lpad(upper(to_hex(id + 305419896)), 8, '0'), 'active',
                      current_date + 365
                 FROM persons WHERE school_id = $1""",
            school_id,
        )
        cards = [
            (r["number"], r["uid"])
            for r in await conn.fetch(
                "SELECT number, uid FROM cards WHERE school_id = $1", school_id
            )
        ]
        return terminal_ids, cards
    finally:
        await conn.close()


async def run_payments(
    url: str,
    settings: Settings,
    terminal_ids: list[int],
    cards: list[tuple],
    clients: int,
    seconds: float,
) -> tuple[int, int]:
    pool = await create_pool(url, min_size=clients, max_size=clients)
    ok = refused = 0
    seq = itertools.count()
    rows = {
        t.id: t
        for t in [
            terminals.TerminalRow(**dict(r))
            for r in await pool.fetch(
                """SELECT id, sn, school_id, kind, status, merchant_id, outlet_id, key_version,
                      prev_key_version FROM terminals"""
            )
        ]
    }
    events = EventBatcher(lambda: pool)
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        nonlocal ok, refused
        rng = random.Random(n)
        async with pool.acquire() as conn:
            while time.monotonic() < deadline:
                terminal = rows[rng.choice(terminal_ids)]
                signed = terminals.SignedTerminal(
                    terminal, 1, secrets.token_hex(12), int(time.time()), b""
                )
                number, uid = rng.choice(cards)
                answer = await payments.book_payment(
                    conn,
                    settings,
                    signed,
                    client_id=f"bench-{n}-{next(seq):09d}",
                    payer=payments.CardPayer(number, uid),
                    amount=Money(rng.randint(100, 2000)),
                    events=events,
                )
                if answer.ok:
                    ok += 1
                else:
                    refused += 1

    try:
        await asyncio.gather(*(client(i) for i in range(clients)))
        await events.drain()
    finally:
        await pool.close()
    return ok, refused


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--no-fsync", action="store_true", help="both sides without fsync")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cc-bench-pay-"))
    server = EmbeddedPostgres(pgdata=root / "pgdata", port=free_port(), fsync=not args.no_fsync)
    server.start()
    try:
        settings = Settings(
            master_key="bench-master-key",  # type: ignore[arg-type]
            _env_file=None,
        )  # type: ignore[call-arg]
        tps = pgbench_tps(server, args.clients, args.seconds)
        print(f"pgbench TPC-B: {tps:,.0f} TPS ({args.clients} clients)")
        url = server.url_for("postgres")
        terminal_ids, cards = asyncio.run(setup(url, args.students, settings))
        started = time.monotonic()
        ok, refused = asyncio.run(
            run_payments(url, settings, terminal_ids, cards, args.clients, args.seconds)
        )
        elapsed = time.monotonic() - started
        rate = ok / elapsed
        print(
            f"payments: {ok:,} booked, {refused:,} refused in {elapsed:.1f} s "
            f"= {rate:,.0f} payments/s ({args.clients} clients)"
        )
        ratio = rate / tps
        print(f"ratio payments/s : pgbench TPS = {ratio:.2f} (target >= {TARGET_RATIO})")
        raise SystemExit(0 if ratio >= TARGET_RATIO else 1)
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
