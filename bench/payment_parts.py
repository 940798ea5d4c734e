"""CPU per payment without HTTP: the payment services as a till's request calls them.

``make bench`` measures payments over HTTP: its server CPU per payment is the HTTP stack and
the payment's own work together. This benchmark leaves the HTTP stack out and calls what a
till's request calls
after its signature is checked — ``code_payments.do_pay_with_code`` and
``booking.book_payment_batched``, through the process's group commit (``PaymentBatcher``) and
live-event batcher (``EventBatcher``) — from ``--concurrency`` tasks in this one process, and
reads the CPU this process and PostgreSQL's process tree used per payment. Every code is its
phone's first payment in the process (the bindings this process keeps are forgotten before each
round), as in ``make bench``, where 20,000 phones pay about once each.

Rounds alternate codes only and cards only; the medians of the rounds are printed, last as one
JSON line::

    {"code_python_us", "code_postgres_us", "card_python_us", "card_postgres_us", ...}

It calls only functions whose signatures have not changed since decision 0310, so the same
file measures an older source tree too: ``PYTHONPATH=<old tree>/src python -m
bench.payment_parts`` from this tree's root. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil

from bench.common import forget_empty_statistics, throwaway_database
from bench.payments import MASTER_KEY, Campus, seed
from campuscard.config import Settings
from campuscard.db.pool import PgPool, create_pool
from campuscard.ledger.money import Money
from campuscard.payments import batching, booking, code_payments, code_rules, codes, terminals
from campuscard.platform.event_batch import EventBatcher

STEP_SECONDS = 60


def _pg_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def print_round(round_no: int, kind: str, payments: int, per: tuple[float, float]) -> None:
    print(
        f"round {round_no + 1} {kind}s: {payments:,} payments, CPU per payment: "
        f"this process {per[0]:.0f} µs, PostgreSQL {per[1]:.0f} µs",
        flush=True,
    )


def medians(results: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """Per kind, the median over the rounds of this process's and PostgreSQL's CPU."""
    summary: dict[str, float] = {}
    for kind, values in results.items():
        summary[f"{kind}_python_us"] = round(statistics.median(v[0] for v in values), 1)
        summary[f"{kind}_postgres_us"] = round(statistics.median(v[1] for v in values), 1)
    return summary


async def _tills(pool: PgPool, school_id: int) -> list[terminals.TerminalRow]:
    rows = await pool.fetch(
        """SELECT id, sn, school_id, kind, status, merchant_id, outlet_id, key_version,
                  prev_key_version FROM terminals WHERE school_id = $1 ORDER BY id""",
        school_id,
    )
    return [terminals.TerminalRow(**dict(r)) for r in rows]


def _signed(till: terminals.TerminalRow) -> terminals.SignedTerminal:
    return terminals.SignedTerminal(
        till, till.key_version, secrets.token_hex(12), int(time.time()), b""
    )


async def _measure(
    n: int, concurrency: int, pay: Callable[[int], Awaitable[Any]], pg_pid: int | None
) -> tuple[float, float]:
    """CPU per payment of this process and of PostgreSQL, in microseconds."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            answer = await pay(i)
            if not answer.ok:
                raise SystemExit(f"payment {i} refused: {answer.body}")

    python0, pg0 = time.process_time(), _pg_cpu(pg_pid)
    await asyncio.gather(*(one(i) for i in range(n)))
    return (time.process_time() - python0) / n * 1e6, (_pg_cpu(pg_pid) - pg0) / n * 1e6


async def run(url: str, pg_pid: int | None, campus: Campus, args: argparse.Namespace) -> None:
    settings = Settings(
        database_url=url,
        master_key=MASTER_KEY,
        run_worker=False,
        _env_file=None,
    )
    pool = await create_pool(url, min_size=4, max_size=20)
    try:
        # the seeding's clean-up now, not while payments are measured
        await pool.execute("VACUUM ANALYZE")
        async with pool.acquire() as conn:  # not planned as empty (decision 0412)
            await forget_empty_statistics(conn)
        await pool.execute("CHECKPOINT")
        tills = await _tills(pool, campus.school_id)
        group = batching.PaymentBatcher(lambda: pool, max_batch=32, lanes=2)
        events = EventBatcher(lambda: pool)
        counters: dict[tuple[int, int], int] = {}
        results: dict[str, list[tuple[float, float]]] = {"code": [], "card": []}
        phones = campus.phones[: args.payments]
        sequence = 0

        async def pay_code(i: int) -> Any:
            nonlocal sequence
            sequence += 1
            token, secret = phones[i % len(phones)]
            now = time.time()
            step = code_rules.time_step(now, STEP_SECONDS)
            counter = counters.get((i % len(phones), step), 0)
            counters[(i % len(phones), step)] = counter + 1
            return await code_payments.do_pay_with_code(
                pool,
                settings,
                _signed(tills[i % len(tills)]),
                client_id=f"parts-{sequence:09d}",
                code=code_rules.generate(secret, token, step, counter, campus.phone_scheme),
                amount=Money(100 + i % 1900),
                now=now,
                events=events,
                batcher=group,
                channel="canteen",
            )

        async def pay_card(i: int) -> Any:
            nonlocal sequence
            sequence += 1
            number, uid = campus.cards[(i * 7919) % len(campus.cards)]
            return await booking.book_payment_batched(
                group,
                settings,
                _signed(tills[i % len(tills)]),
                client_id=f"parts-{sequence:09d}",
                payer=booking.CardPayer(number, uid),
                amount=Money(100 + i % 1900),
                events=events,
                channel="canteen",
            )

        # warm-up (not counted): connections, prepared statements, the tills' first bookings
        await _measure(min(300, len(phones)), args.concurrency, pay_card, pg_pid)
        for round_no in range(args.rounds):
            codes._BINDINGS.clear()  # every code is its phone's first in this process
            for kind, pay in (("code", pay_code), ("card", pay_card)):
                per = await _measure(len(phones), args.concurrency, pay, pg_pid)
                await events.drain()
                results[kind].append(per)
                print_round(round_no, kind, len(phones), per)
        print(
            json.dumps(
                medians(results) | {"concurrency": args.concurrency, "payments": len(phones)}
            )
        )
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--payments", type=int, default=3_000, help="per round and kind")
    parser.add_argument("--concurrency", type=int, default=16, help="payments in flight")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with throwaway_database("cc-parts-pg-") as (url, pg_pid):
        campus = asyncio.run(seed(url, args.students, 50))
        if len(campus.phones) < args.payments:
            raise SystemExit("not enough phones for the codes: raise --students")
        asyncio.run(run(url, pg_pid, campus, args))


if __name__ == "__main__":
    main()
