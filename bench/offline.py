"""Offline uploads at campus scale: 200,000 records from 500 tills, beside pgbench.

1. A throwaway PostgreSQL, the bench school, 40,000 students with active cards and 500.00 in
   the cash purse (one in 200 with 5.00 only, so their sales overdraw and are owed); 10
   canteens with 50 tills each.
2. The day offline, in time order: each sale picks a till and a card, the card's counter goes
   up by one and its offline total by the amount (3.00-15.00), the till numbers it and signs
   it with its key, as a till does (offline/rules.py).
3. The uploads: each till's queue cut into batches of at most 200 records (the protocol's
   limit); 1 % of the records sent once more with another batch of the same till, or in a
   batch of resends (after a lost answer); all batches shuffled, so a till's second batch may
   arrive before its first and a card's counters arrive out of order, across tills (records
   wait for the missing counter and settle when it comes).
4. Ingest: ``--clients`` workers, each with its own connection, take batches from one queue:
   signatures checked (HMAC, as the server does) and the batch stored and settled
   (``offline.ingest.ingest``, the code behind the upload route: two short transactions).
5. pgbench's tpcb-like script on the same server with the same number of clients.
6. Holds: ``--holds`` place + capture pairs (a shower's hold, then the metered use) with the
   same clients.
7. Checks: every record stored once and settled, duplicates counted, the ledger's invariants
   (check_ledger) hold.

Prints a summary and, last, one JSON line:
{"offline_records_per_s": …, "pgbench_tps": …, "ratio": …, "holds_per_s": …}.
Goal: ratio ≥ 2 (batched ingest beats one transaction per record).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass

from bench.common import (
    bench_school,
    forget_empty_statistics,
    pgbench_tps,
    seed_students,
    throwaway_database,
)
from campuscard.db.pool import Conn, connect
from campuscard.db.tx import transaction
from campuscard.ledger import holds
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.holds_rules import HoldRequest
from campuscard.offline import ingest, rules
from campuscard.platform import signing

MASTER_KEY = "bench-master-key-" + "0" * 16
CANTEENS, TILLS_PER_CANTEEN = 10, 50
OPENING_FEN = 50_000
SHORT_EVERY = 200  # one student in 200 has 5.00 only
DAY_START = 1_795_000_000


@dataclass(frozen=True)
class Till:
    id: int
    sn: str
    key: bytes


@dataclass
class Campus:
    school_id: int
    tills: list[Till]
    cards: list[tuple[str, str]]  # (number, uid)
    persons: list[int]
    payees: list[int]  # merchant shard accounts (holds' payees)


async def seed(conn: Conn, students: int) -> Campus:
    school_id = await bench_school(conn)
    await conn.execute(
        """INSERT INTO merchants(school_id, name, channel, status, commission_bp)
           SELECT $1, '第' || m || '食堂', 'canteen', 'approved', 100
             FROM generate_series(1, $2::int) m""",
        school_id,
        CANTEENS,
    )
    await conn.execute(
        """INSERT INTO terminals(school_id, sn, kind, merchant_id)
           SELECT $1, 'OFF-' || lpad(r.n::text, 2, '0') || '-' || lpad(t::text, 2, '0'), 'pos',
                  r.id
             FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM merchants
                    WHERE school_id = $1) r, generate_series(1, $2::int) t""",
        school_id,
        TILLS_PER_CANTEEN,
    )
    await seed_students(conn, school_id, students, opening_fen=OPENING_FEN, cards=True)
    # the short ones: 5.00 left (a spend booked against the opening account, as a payment would)
    short = await conn.fetch(
        """SELECT a.id FROM accounts a JOIN persons p ON p.id = a.person_id
            WHERE a.school_id = $1 AND a.purse = 'cash' AND p.id % $2 = 0 ORDER BY a.id""",
        school_id,
        SHORT_EVERY,
    )
    opening = await conn.fetchval(
        "SELECT id FROM accounts WHERE school_id = $1 AND system_code = 'opening_balances'",
        school_id,
    )
    async with transaction(conn) as tx:
        for row in short:
            await tx.execute(
                "SELECT cc_post($1, 'adjustment', 'bench-short', '', 'bench', $2, $3)",
                school_id,
                [row["id"], opening],
                [-(OPENING_FEN - 500), OPENING_FEN - 500],
            )
    tills = [
        Till(r["id"], r["sn"], signing.derive_terminal_key(MASTER_KEY, r["sn"], 1))
        for r in await conn.fetch(
            "SELECT id, sn FROM terminals WHERE school_id = $1 ORDER BY id", school_id
        )
    ]
    cards = [
        (r["number"], r["uid"])
        for r in await conn.fetch(
            "SELECT number, uid FROM cards WHERE school_id = $1 ORDER BY id", school_id
        )
    ]
    persons = [
        int(r["id"])
        for r in await conn.fetch(
            "SELECT id FROM persons WHERE school_id = $1 AND id % $2 <> 0 ORDER BY id",
            school_id,
            SHORT_EVERY,
        )
    ]
    payees = [
        int(r["id"])
        for r in await conn.fetch(
            "SELECT id FROM accounts WHERE school_id = $1 AND kind = 'merchant' ORDER BY id",
            school_id,
        )
    ]
    await conn.execute("ANALYZE")
    await forget_empty_statistics(conn, OFFLINE_TABLES)
    return Campus(school_id, tills, cards, persons, payees)


OFFLINE_TABLES = (
    "offline_uploads",
    "offline_devices",
    "offline_records",
    "offline_card_chains",
    "offline_debts",
)


def make_day(campus: Campus, records: int, rng: random.Random) -> dict[int, list[rules.Record]]:
    """Every till's records in the order it made them (see the module docstring, step 2)."""
    counter: dict[int, int] = defaultdict(int)
    total: dict[int, int] = defaultdict(int)
    seq: dict[int, int] = defaultdict(int)
    out: dict[int, list[rules.Record]] = defaultdict(list)
    for i in range(records):
        t = rng.randrange(len(campus.tills))
        c = rng.randrange(len(campus.cards))
        till, (number, uid) = campus.tills[t], campus.cards[c]
        amount = rng.randrange(300, 1_501)
        counter[c] += 1
        seq[t] += 1
        r = rules.Record(
            seq=seq[t],
            card_number=number,
            card_uid=uid,
            amount=amount,
            made_at=DAY_START + i // 10,
            card_counter=counter[c],
            total_before=total[c],
            total_after=total[c] + amount,
            key_version=1,
            signature="",
        )
        total[c] += amount
        out[t].append(
            rules.Record(**{**r.__dict__, "signature": rules.sign_record(till.key, till.sn, r)})
        )
    return out


def make_batches(
    campus: Campus, day: dict[int, list[rules.Record]], dup_share: float, rng: random.Random
) -> list[tuple[Till, list[rules.Record]]]:
    """Batches of at most MAX_BATCH, resends mixed in, in shuffled order (step 3)."""
    batches: list[tuple[Till, list[rules.Record]]] = []
    for t, queue in day.items():
        till = campus.tills[t]
        mine = [queue[i : i + rules.MAX_BATCH] for i in range(0, len(queue), rules.MAX_BATCH)]
        resent: list[rules.Record] = []
        for r in queue:
            if rng.random() >= dup_share:
                continue
            # the record goes again with another batch of the till when one has room
            other = [b for b in mine if len(b) < rules.MAX_BATCH and r not in b]
            if other:
                rng.choice(other).append(r)
            else:
                resent.append(r)
        mine += [resent[i : i + rules.MAX_BATCH] for i in range(0, len(resent), rules.MAX_BATCH)]
        for batch in mine:
            rng.shuffle(batch)
            batches.append((till, batch))
    rng.shuffle(batches)
    return batches


async def ingest_all(
    url: str, campus: Campus, batches: list[tuple[Till, list[rules.Record]]], clients: int
) -> tuple[float, dict[str, int]]:
    queue: asyncio.Queue[tuple[Till, list[rules.Record]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    sums: dict[str, int] = defaultdict(int)

    async def worker() -> None:
        conn = await connect(url)
        try:
            while not queue.empty():
                till, records = queue.get_nowait()
                good = [r for r in records if rules.signature_ok(till.key, till.sn, r)]
                a = await ingest.ingest(conn, campus.school_id, till.id, good, [], len(records))
                for name in ("received", "accepted", "duplicates", "settled", "waiting"):
                    sums[name] += getattr(a, name)
                sums["refused"] += len(a.refused)
                sums["chain_breaks"] += a.chain_breaks
                sums["overdrafts"] += a.overdrafts
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started, dict(sums)


async def hold_pairs(url: str, campus: Campus, pairs: int, clients: int) -> float:
    """Place a 5.00 shower hold and capture 3.20 of it, ``pairs`` times over ``clients``."""
    per = pairs // clients

    async def worker(w: int) -> None:
        conn = await connect(url)
        try:
            for i in range(per):
                person = campus.persons[(w * per + i) % len(campus.persons)]
                hold_id = f"bench-{w}-{i}"
                placed = await holds.place_hold(
                    conn,
                    campus.school_id,
                    HoldRequest(
                        hold_id=hold_id,
                        person_id=person,
                        amount=500,
                        kind="shower",
                        owner_kind="device_session",
                        owner_id=hold_id,
                        payee_account_id=campus.payees[(w * per + i) % len(campus.payees)],
                    ),
                )
                placed.raise_refusal()
                (await holds.capture_hold(conn, campus.school_id, hold_id, 320)).raise_refusal()
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    return per * clients / (time.perf_counter() - started)


async def verify(url: str, campus: Campus, unique: int) -> dict[str, int]:
    conn = await connect(url)
    try:
        states = {
            r["state"]: int(r["n"])
            for r in await conn.fetch(
                "SELECT state, count(*) AS n FROM offline_records WHERE school_id = $1 "
                "GROUP BY state",
                campus.school_id,
            )
        }
        owed = int(await conn.fetchval("SELECT coalesce(sum(owed), 0) FROM offline_debts"))
        if states != {"settled": unique}:
            raise SystemExit(f"expected {unique} settled records, found {states}")
        report = await check_ledger(conn)
    finally:
        await conn.close()
    if not report.ok:
        raise SystemExit(f"the ledger check failed: {report}")
    return {"owed_fen": owed}


async def run(url: str, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(args.seed)
    conn = await connect(url)
    try:
        started = time.perf_counter()
        campus = await seed(conn, args.students)
        print(
            f"seeded {args.students} cards and {len(campus.tills)} tills "
            f"in {time.perf_counter() - started:.1f} s"
        )
    finally:
        await conn.close()
    started = time.perf_counter()
    day = make_day(campus, args.records, rng)
    batches = make_batches(campus, day, args.duplicates, rng)
    sent = sum(len(b) for _, b in batches)
    print(
        f"{args.records} records made and signed, {len(batches)} batches, {sent - args.records} "
        f"resent, in {time.perf_counter() - started:.1f} s"
    )
    seconds, sums = await ingest_all(url, campus, batches, args.clients)
    records_per_s = args.records / seconds
    print(
        f"ingested in {seconds:.1f} s with {args.clients} clients: {records_per_s:,.0f} records/s"
        f" ({sent / seconds:,.0f} received/s); "
        + ", ".join(f"{k} {v}" for k, v in sorted(sums.items()))
    )
    if sums["accepted"] != args.records or sums["duplicates"] != sent - args.records:
        raise SystemExit("every record must be stored once and every resend seen as one")
    checked = await verify(url, campus, args.records)
    print(f"all {args.records} settled once; offline overdrafts owed {checked['owed_fen']} fen")
    tps = await pgbench_tps(url, args.clients, args.seconds)
    print(f"pgbench tpcb-like, {args.clients} clients, {args.seconds} s: {tps:,.0f} TPS")
    holds_per_s = await hold_pairs(url, campus, args.holds, args.clients)
    print(f"{args.holds} hold place + capture pairs: {holds_per_s:,.0f} pairs/s")
    return {
        "offline_records_per_s": round(records_per_s, 1),
        "pgbench_tps": round(tps, 1),
        "ratio": round(records_per_s / tps, 2),
        "holds_per_s": round(holds_per_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--students", type=int, default=40_000)
    parser.add_argument("--duplicates", type=float, default=0.01, help="share of records resent")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=20, help="pgbench's run")
    parser.add_argument("--holds", type=int, default=4_000)
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    if args.records < 1000 or args.students < 1000 or args.clients < 1:
        raise SystemExit("--records and --students must be at least 1000, --clients at least 1")
    with throwaway_database("cc-offline-pg-") as (url, _):
        result = asyncio.run(run(url, args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
