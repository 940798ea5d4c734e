"""`python -m bench.signin_flood`: does a sign-in flood slow the payment path?

1. A throw-away embedded PostgreSQL gets a small school: students with cards and money, one
   canteen till, and one staff user whose password the flooders know.
2. ``campuscard serve`` serves it (one worker, as a small school runs it).
3. *Quiet*: one till sends signed ``pay/check`` requests back to back for ``--seconds``.
4. *Flood*: the same, while ``--flooders`` clients sign in with the right password as fast as
   they can (each sign-in is one argon2 check: the heaviest thing an anonymous client can make
   the server do).

It prints a human summary and, last, one JSON line::

    {"p50_ms_quiet", "p50_ms_flood", "ratio", "signins_per_s"}

(ratio = flood p50 / quiet p50; goal: ratio <= 1.1). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import bench_school, seed_students, throwaway_database
from bench.payments import MASTER_KEY, start_server, stop_server
from campuscard.db.embedded import free_port
from campuscard.db.pool import connect
from campuscard.platform import auth, signing

TILL = "POS-FLOOD-01"
PASSWORD = "flood-password-0123"  # noqa: S105 - the bench school's own
GOAL = 1.1


async def seed(url: str, students: int, users: int) -> list[tuple[str, str]]:
    """The school; returns the students' (card number, card uid)."""
    conn = await connect(url)
    try:
        school_id = await bench_school(conn)
        await seed_students(conn, school_id, students, opening_fen=100_000, cards=True)
        merchant_id = await conn.fetchval(
            "INSERT INTO merchants(school_id, name, channel, status) "
            "VALUES ($1, '第一食堂', 'canteen', 'approved') RETURNING id",
            school_id,
        )
        await conn.execute(
            "INSERT INTO terminals(school_id, sn, kind, merchant_id) VALUES ($1, $2, 'pos', $3)",
            school_id,
            TILL,
            merchant_id,
        )
        for n in range(users):  # one per flooder: each sign-in is a full argon2 check
            await auth.create_user(
                conn,
                username=f"clerk{n}",
                password=PASSWORD,
                school_id=school_id,
                roles=[("card_center", school_id, None)],
            )
        rows = await conn.fetch("SELECT number, uid FROM cards WHERE school_id = $1", school_id)
    finally:
        await conn.close()
    return [(r["number"], r["uid"]) for r in rows]


async def checks(base: str, cards: list[tuple[str, str]], seconds: float) -> list[float]:
    """Signed pay/check requests one after another; their latencies in ms."""
    key = signing.derive_terminal_key(MASTER_KEY, TILL, 1)
    path = "/api/v1/terminal/pay/check"
    took: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            number, uid = cards[i % len(cards)]
            i += 1
            body = json.dumps(
                {"card_number": number, "card_uid": uid, "amount": "1.00"}, separators=(",", ":")
            ).encode()
            headers = signing.signed_headers(
                sn=TILL,
                key=key,
                key_version=1,
                method="POST",
                path=path,
                body=body,
                timestamp=int(time.time()),
                nonce=secrets.token_hex(12),
            )
            headers["Content-Type"] = "application/json"
            started = time.perf_counter()
            r = await client.post(path, content=body, headers=headers)
            took.append((time.perf_counter() - started) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"pay/check failed: {r.status_code} {r.text}")
    return took


async def flood(base: str, user: str, stop: asyncio.Event, counter: list[int]) -> None:
    """One client signing in again and again."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        while not stop.is_set():
            r = await client.post(
                "/api/v1/auth/login",
                json={"username": user, "password": PASSWORD, "school": "BENCH"},
            )
            if r.status_code != 200:
                raise SystemExit(f"sign-in failed: {r.status_code} {r.text}")
            counter[0] += 1


async def measure(
    base: str, cards: list[tuple[str, str]], seconds: float, flooders: int
) -> dict[str, float]:
    await checks(base, cards, 2)  # warm-up: connections, caches
    quiet = await checks(base, cards, seconds)
    stop = asyncio.Event()
    signed_in = [0]
    crowd = [
        asyncio.create_task(flood(base, f"clerk{n}", stop, signed_in)) for n in range(flooders)
    ]
    await asyncio.sleep(2)  # the flood is at full strength before the clock starts
    before = signed_in[0]
    loud = await checks(base, cards, seconds)
    rate = (signed_in[0] - before) / seconds
    stop.set()
    await asyncio.gather(*crowd)
    p50_quiet, p50_flood = statistics.median(quiet), statistics.median(loud)
    return {
        "p50_ms_quiet": round(p50_quiet, 2),
        "p50_ms_flood": round(p50_flood, 2),
        "ratio": round(p50_flood / p50_quiet, 2),
        "signins_per_s": round(rate, 1),
        "checks_quiet": len(quiet),
        "checks_flood": len(loud),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--flooders", type=int, default=8, help="clients signing in")
    parser.add_argument("--seconds", type=float, default=15, help="length of each phase")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cc-signin-"))
    try:
        with throwaway_database("cc-signin-pg-") as (db_url, _):
            cards = asyncio.run(seed(db_url, args.students, args.flooders))
            port = free_port()
            server = start_server(db_url, port, 1, work / "server.log")
            try:
                result = asyncio.run(
                    measure(f"http://127.0.0.1:{port}", cards, args.seconds, args.flooders)
                )
            finally:
                stop_server(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"pay/check p50: {result['p50_ms_quiet']} ms quiet, {result['p50_ms_flood']} ms with "
        f"{args.flooders} clients signing in ({result['signins_per_s']} sign-ins/s); "
        f"ratio {result['ratio']} (goal <= {GOAL})"
    )
    print(
        json.dumps(
            {k: result[k] for k in ("p50_ms_quiet", "p50_ms_flood", "ratio", "signins_per_s")}
        )
    )


if __name__ == "__main__":
    main()
