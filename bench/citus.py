"""Citus cost per payment: the signed payment path on the local cluster and on a single node,
in the same run.

Each side gets the same campus, made through the same code production uses: ``--schools``
schools (created with their system accounts), each with a canteen, ``--tills`` tills and
``--students`` students with an active card and 1,000 yuan booked through the ledger. On the
cluster the database is a coordinator's, set up by ``campuscard db citus`` (every table
distributed by school, the booking functions delegated); the single node is a plain embedded
PostgreSQL, migrated. Both run with fsync off (the cluster's test nodes do).

Two measurements per side, each ``--seconds`` long:

1. **signed payments over HTTP**: ``campuscard serve`` against the database; ``--clients``
   concurrent tills send pre-signed card payments (each its own nonce and client id, a random
   school, till and card) over keep-alive HTTP; every answer must be an approval.
2. **the booking function**: ``--clients`` connections call ``cc_pay`` in book mode (the call
   the server makes, with the same arguments) directly, without HTTP, signatures or Python
   around it: the database's own cost per payment.

It prints both and, last, one JSON line (the first three are the HTTP path's)::

    {"citus_payments_per_s": …, "single_payments_per_s": …, "ratio": …,
     "booking_function": {"citus_payments_per_s": …, "single_payments_per_s": …, "ratio": …}}

On one 2-core machine the three Citus nodes, the server and the load share the cores: this
measures what delegation costs per payment, not what a cluster of real servers scales to
(docs/scale-out.md, "Capacity model").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.citus.build import ensure_built
from tests.citus.cluster import running_cluster

from bench.common import ROOT, seed_students
from bench.payments import MASTER_KEY, start_server, stop_server
from campuscard.db import migrate, runtime
from campuscard.db.embedded import EmbeddedPostgres, free_port
from campuscard.db.pool import Conn, connect
from campuscard.ledger.checks import check_ledger
from campuscard.payments import batching
from campuscard.people import directory
from campuscard.platform import idempotency, signing

OPENING_FEN = 100_000  # 1,000 yuan in every cash purse
PAY_PATH = "/api/v1/terminal/pay"


@dataclass(frozen=True)
class Till:
    school_id: int
    id: int
    sn: str
    key: bytes


@dataclass(frozen=True)
class School:
    id: int
    tills: list[Till]
    cards: list[tuple[str, str]]


async def _seed_school(conn: Conn, n: int, students: int, tills: int) -> School:
    school_id = await directory.create_school(
        conn, ROOT, province_code="32", code=f"BENCH{n:03d}", name=f"基准学校{n}"
    )
    # a load of many payments per student: no daily PIN threshold or daily limit gets in the way
    await conn.execute(
        """UPDATE schools SET settings = settings || jsonb_build_object('payments',
               jsonb_build_object('pin_over_daily', 1000000000, 'daily_limit', 1000000000))
            WHERE id = $1""",
        school_id,
    )
    merchant_id = await conn.fetchval(
        """INSERT INTO merchants(school_id, name, channel, status, commission_bp)
           VALUES ($1, '第一食堂', 'canteen', 'approved', 100) RETURNING id""",
        school_id,
    )
    await conn.execute(
        """INSERT INTO terminals(school_id, sn, kind, merchant_id)
           SELECT $1::int, 'POS-' || $1::int || '-' || t, 'pos', $2
             FROM generate_series(1, $3::int) t""",
        school_id,
        merchant_id,
        tills,
    )
    # students with purses and an active card each, as make bench seeds them; their opening
    # balances below go through cc_post (the loader's triggers-off bulk load is for one node)
    await seed_students(conn, school_id, students, cards=True)
    # the opening balances: one journal transaction through the ledger's own function
    purses = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM accounts WHERE school_id = $1 AND purse = 'cash' ORDER BY id",
            school_id,
        )
    ]
    opening = await conn.fetchval(
        "SELECT id FROM accounts WHERE school_id = $1 AND system_code = 'opening_balances'",
        school_id,
    )
    await conn.execute(
        "SELECT cc_post($1, 'opening_balance', 'bench-opening', '', 'bench', $2, $3)",
        school_id,
        [opening, *purses],
        [-OPENING_FEN * len(purses)] + [OPENING_FEN] * len(purses),
    )
    rows = await conn.fetch(
        "SELECT id, sn FROM terminals WHERE school_id = $1 ORDER BY id", school_id
    )
    cards = await conn.fetch("SELECT number, uid FROM cards WHERE school_id = $1", school_id)
    return School(
        school_id,
        [
            Till(school_id, r["id"], r["sn"], signing.derive_terminal_key(MASTER_KEY, r["sn"], 1))
            for r in rows
        ],
        [(r["number"], r["uid"]) for r in cards],
    )


async def seed(url: str, *, citus: bool, schools: int, students: int, tills: int) -> list[School]:
    if citus:
        await runtime.set_up_citus(url)
    conn = await connect(url)
    try:
        if not citus:
            await migrate.upgrade(conn)
        await conn.execute(
            "INSERT INTO provinces(code, name, name_en) VALUES ('32', '江苏省', 'Jiangsu') "
            "ON CONFLICT DO NOTHING"
        )
        campus = [await _seed_school(conn, n, students, tills) for n in range(schools)]
        await conn.execute("ANALYZE")
        return campus
    finally:
        await conn.close()


@dataclass
class Payment:
    till: Till
    client_id: str
    number: str
    uid: str
    fen: int

    def body(self) -> bytes:
        payload = {
            "client_id": self.client_id,
            "card_number": self.number,
            "card_uid": self.uid,
            "amount": f"{self.fen / 100:.2f}",
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    def book_args(self) -> batching.BookArgs:
        payer = {"card_number": self.number, "card_uid": self.uid}
        digest = idempotency.request_hash({"op": "pay", "amount": self.fen, **payer})
        return (self.till.id, 1, secrets.token_hex(12), self.client_id, digest,
                self.number, self.uid, None, None, self.fen, None)  # fmt: skip


class Payments:
    """Payments at random schools, tills and cards; every client id is used once."""

    def __init__(self, campus: list[School], tag: str) -> None:
        self.campus, self.tag, self.n = campus, tag, 0
        self.rng = random.Random(f"bench-citus-{tag}")

    def next(self) -> Payment:
        self.n += 1
        school = self.rng.choice(self.campus)
        number, uid = self.rng.choice(school.cards)
        till = self.rng.choice(school.tills)
        return Payment(till, f"{self.tag}-{self.n:09d}", number, uid, self.rng.randint(100, 2000))


async def _for(seconds: float, clients: int, one: Any) -> tuple[int, int, str]:
    """Run ``one(i)`` in ``clients`` loops for ``seconds``; (approved, refused, first refusal)."""
    approved = refused = 0
    sample = ""
    deadline = time.monotonic() + seconds

    async def loop(i: int) -> None:
        nonlocal approved, refused, sample
        while time.monotonic() < deadline:
            status, text = await one(i)
            if status == 200:
                approved += 1
            else:
                refused += 1
                sample = sample or f"{status} {text[:300]}"

    await asyncio.gather(*(loop(i) for i in range(clients)))
    return approved, refused, sample


async def over_http(base: str, payments: Payments, *, clients: int, seconds: float) -> float:
    async with httpx.AsyncClient(
        base_url=base, timeout=30, limits=httpx.Limits(max_connections=clients)
    ) as client:

        async def one(_: int) -> tuple[int, str]:
            p = payments.next()
            body = p.body()
            headers = signing.signed_headers(
                sn=p.till.sn,
                key=p.till.key,
                key_version=1,
                method="POST",
                path=PAY_PATH,
                body=body,
                timestamp=int(time.time()),
                nonce=secrets.token_hex(12),
            )
            headers["Content-Type"] = "application/json"
            r = await client.post(PAY_PATH, content=body, headers=headers)
            return r.status_code, r.text

        await _for(2, clients, one)  # warm-up: connections, caches, plans
        started = time.monotonic()
        approved, refused, sample = await _for(seconds, clients, one)
        wall = time.monotonic() - started
    if refused:
        raise RuntimeError(f"{refused} payments over HTTP were refused; first: {sample}")
    return approved / wall


async def booking_function(url: str, payments: Payments, *, clients: int, seconds: float) -> float:
    conns = [await connect(url) for _ in range(clients)]
    try:

        async def one(i: int) -> tuple[int, str]:
            p = payments.next()
            booked = await batching.book_one(
                conns[i], p.till.school_id, batching.Member(p.book_args())
            )
            return booked.status, booked.body or ""

        await _for(1, clients, one)
        started = time.monotonic()
        approved, refused, sample = await _for(seconds, clients, one)
        wall = time.monotonic() - started
    finally:
        for c in conns:
            await c.close()
    if refused:
        raise RuntimeError(f"{refused} booking calls were refused; first: {sample}")
    return approved / wall


async def _balanced(url: str) -> bool:
    conn = await connect(url)
    try:
        return (await check_ledger(conn)).ok
    finally:
        await conn.close()


def measure(url: str, name: str, args: argparse.Namespace, work: Path) -> tuple[float, float]:
    """(signed payments/s over HTTP, booking calls/s) on the database at ``url``."""
    t0 = time.monotonic()
    campus = asyncio.run(
        seed(
            url,
            citus=name == "citus",
            schools=args.schools,
            students=args.students,
            tills=args.tills,
        )
    )
    print(f"{name}: seeded {args.schools} schools in {time.monotonic() - t0:.1f} s", flush=True)
    port = free_port()
    server = start_server(url, port, args.workers, work / f"server-{name}.log")
    try:
        http = asyncio.run(
            over_http(
                f"http://127.0.0.1:{port}",
                Payments(campus, f"{name}-http"),
                clients=args.clients,
                seconds=args.seconds,
            )
        )
    finally:
        stop_server(server)
    direct = asyncio.run(
        booking_function(
            url, Payments(campus, f"{name}-fn"), clients=args.clients, seconds=args.seconds
        )
    )
    if not asyncio.run(_balanced(url)):
        raise RuntimeError(f"the ledger on {name} does not balance after the run")
    print(
        f"{name}: {http:,.0f} signed payments/s over HTTP, {direct:,.0f} booking calls/s",
        flush=True,
    )
    return http, direct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--students", type=int, default=500, help="per school")
    parser.add_argument("--tills", type=int, default=4, help="per school")
    parser.add_argument("--clients", type=int, default=16, help="concurrent tills / connections")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--seconds", type=int, default=15, help="length of each run")
    args = parser.parse_args()
    # the server's job worker would only compete for the cores: nothing here queues a job
    os.environ["CAMPUSCARD_RUN_WORKER"] = "false"

    work = Path(tempfile.mkdtemp(prefix="cc-bench-citus-"))
    try:
        with running_cluster(ensure_built(), tag="bench") as cluster:
            asyncio.run(cluster.create_database("bench"))
            citus_http, citus_fn = measure(cluster.coordinator.url("bench"), "citus", args, work)
        single_node = EmbeddedPostgres(pgdata=work / "single", port=free_port(), fsync=False)
        single_node.start()
        try:
            single_http, single_fn = measure(single_node.url, "single", args, work)
        finally:
            single_node.destroy()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    line = {
        "citus_payments_per_s": round(citus_http, 1),
        "single_payments_per_s": round(single_http, 1),
        "ratio": round(citus_http / single_http, 3),
        "booking_function": {
            "citus_payments_per_s": round(citus_fn, 1),
            "single_payments_per_s": round(single_fn, 1),
            "ratio": round(citus_fn / single_fn, 3),
        },
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
