"""Benchmark: end-of-day clearing of 1,000,000 payments of one day — target at most 60 s.

Generates one business day on a throw-away embedded PostgreSQL (or CAMPUSCARD_DATABASE_URL, a
database you can drop): 40 merchants in the four channels, 4 terminals each, 20,000 students,
and 1,000,000 journal transactions shaped as the payment engine books them (2 % refunds, 1 %
reversals, the terminal's serial as actor, one purse leg and one merchant-shard leg). The data
is generated set-based with the ledger triggers switched off for the load only (balances are
not the point here); the clearing itself runs exactly as in production: ``do_close_day``.

    .venv/bin/python -m bench.clearing [--payments 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.common import bench_school, throwaway_database
from campuscard.db.pool import connect, create_pool
from campuscard.platform.actors import SYSTEM
from campuscard.settlement import clearing

TARGET_SECONDS = 60.0
CHANNELS = ("canteen", "canteen", "supermarket", "other", "tuition")


async def generate(url: str, payments: int) -> tuple[int, object]:
    conn = await connect(url)
    try:
        school_id = await bench_school(conn)
        await conn.execute(
            """INSERT INTO merchants(school_id, name, channel, status, commission_bp, shards)
               SELECT $1, '商户' || m, ($2::text[])[1 + m % 5], 'approved', (m % 4) * 50, 8
                 FROM generate_series(1, 40) m""",
            school_id,
            list(CHANNELS),
        )
        await conn.execute(
            """INSERT INTO terminals(school_id, sn, kind, merchant_id)
               SELECT $1, 'POS-B-' || lpad(m.id::text, 3, '0') || '-' || t, 'pos', m.id
                 FROM merchants m, generate_series(1, 4) t WHERE m.school_id = $1""",
            school_id,
        )
        await conn.execute(
            """INSERT INTO persons(school_id, kind, number, name, account_status)
               SELECT $1, 'student', 'B' || lpad(s::text, 8, '0'), '学生' || s, 'active'
                 FROM generate_series(1, 20000) s""",
            school_id,
        )
        await conn.execute(
            """INSERT INTO accounts(school_id, kind, purse, person_id, floor)
               SELECT $1, 'purse', 'cash', id, NULL FROM persons WHERE school_id = $1""",
            school_id,
        )
        day = await conn.fetchval("SELECT cc_business_date($1)", school_id)
        t0 = time.perf_counter()
        await conn.execute(
            """CREATE TEMP TABLE bench_terms AS
               SELECT (row_number() OVER (ORDER BY t.id)) - 1 AS idx, t.sn, m.channel,
                      a.id AS account_id
                 FROM terminals t JOIN merchants m ON m.id = t.merchant_id
                 JOIN accounts a ON a.merchant_id = m.id AND a.kind = 'merchant'
                                AND a.shard = t.id % m.shards
                WHERE t.school_id = $1""",
            school_id,
        )
        await conn.execute(
            """CREATE TEMP TABLE bench_purses AS
               SELECT (row_number() OVER (ORDER BY id)) - 1 AS idx, id AS account_id
                 FROM accounts WHERE school_id = $1 AND kind = 'purse'""",
            school_id,
        )
        n_terms = await conn.fetchval("SELECT count(*) FROM bench_terms")
        base = await conn.fetchval("SELECT coalesce(max(id), 0) FROM journal_tx")
        # the load only: no ledger triggers (balance cache, zero-sum check) for generated rows
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            """INSERT INTO journal_tx(id, school_id, kind, ref, actor, business_date, meta)
               SELECT $2 + g, $1,
                      CASE WHEN g % 50 = 0 THEN 'refund'
                           WHEN g % 100 = 1 THEN 'payment_reversal' ELSE 'payment' END,
                      'bench:' || g, t.sn, $3, jsonb_build_object('channel', t.channel)
                 FROM generate_series(1, $4::int) g JOIN bench_terms t ON t.idx = g % $5""",
            school_id,
            base,
            day,
            payments,
            n_terms,
        )
        await conn.execute(
            """INSERT INTO postings(school_id, tx_id, account_id, amount, balance_after, version)
               SELECT $4, $1 + g, leg.account_id, leg.amount, 0, g
                 FROM generate_series(1, $2::int) g
                 JOIN bench_terms t ON t.idx = g % $3
                 JOIN bench_purses p ON p.idx = g % 20000
                 CROSS JOIN LATERAL (
                     SELECT CASE WHEN g % 50 = 0 OR g % 100 = 1 THEN -1 ELSE 1 END
                            * (300 + (g::bigint * 7919) % 3000) AS amount) s
                 CROSS JOIN LATERAL (VALUES (t.account_id, s.amount), (p.account_id, -s.amount))
                      AS leg(account_id, amount)""",
            base,
            payments,
            n_terms,
            school_id,
        )
        # make the cached balances and versions what the postings say (as the triggers would)
        await conn.execute(
            """UPDATE accounts a SET balance = s.total, version = s.last
                 FROM (SELECT account_id, sum(amount) AS total, max(version) AS last
                         FROM postings GROUP BY account_id) s
                WHERE a.id = s.account_id"""
        )
        await conn.execute("SET session_replication_role = origin")
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('journal_tx', 'id'), $1)", base + payments
        )
        await conn.execute("VACUUM ANALYZE journal_tx")
        await conn.execute("VACUUM ANALYZE postings")
        print(f"generated {payments:,} payments in {time.perf_counter() - t0:.1f} s")
        return school_id, day
    finally:
        await conn.close()


async def run(url: str, payments: int) -> bool:
    school_id, day = await generate(url, payments)
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        t0 = time.perf_counter()
        result = await clearing.do_close_day(pool, SYSTEM, school_id, day, early=True)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = await clearing.do_close_day(pool, SYSTEM, school_id, day, early=True)  # type: ignore[arg-type]
        replay = time.perf_counter() - t0
        items = await pool.fetchval(
            "SELECT count(*) FROM clearing_items WHERE school_id = $1", school_id
        )
        settlements = await pool.fetchval(
            "SELECT count(*) FROM journal_tx WHERE kind = 'settlement' AND school_id = $1",
            school_id,
        )
    finally:
        await pool.close()
    print(
        f"clearing: {elapsed:6.2f} s for {items:,} merchant postings "
        f"({items / elapsed:,.0f}/s), {len(result['merchants'])} merchants, "
        f"{settlements} settlement transactions"
    )
    print(f"gross {result['gross']}  commission {result['commission']}  payout {result['payout']}")
    print(
        f"re-run (replay): {replay * 1000:.0f} ms, identical: {again['gross'] == result['gross']}"
    )
    ok = elapsed <= TARGET_SECONDS and items == payments and settlements == 40
    print(f"target <= {TARGET_SECONDS:.0f} s: {'OK' if ok else 'MISSED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=1_000_000)
    args = parser.parse_args()
    with throwaway_database("cc-bench-clearing-", fsync=False) as (url, _):
        ok = asyncio.run(run(url, args.payments))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
