"""CPU per payment of the app's HTTP stack, without sockets: signed till requests through the
ASGI app in this one process.

``make bench`` measures the server over real connections, where the sockets (uvicorn reading
and writing, asyncpg sending and receiving) and the load of the machine move the figures by a
fifth between two runs. ``bench.payment_parts`` leaves HTTP out altogether. This one sits
between them: it builds the production app (``create_app``: middleware, routing, error
handlers, the routes) on a pool to a throw-away PostgreSQL and sends it signed card and code
payments as ASGI messages, exactly as wrk's requests arrive (same headers, same bodies;
bench/payments.py's signing), ``--concurrency`` in flight on uvloop as under uvicorn, and reads
the CPU this process and PostgreSQL used per payment. Every code is its phone's first payment
in the process, as in ``make bench``. The request log goes to /dev/null through the production
JSON renderer.

Rounds alternate cards only and codes only; the medians are printed, last as one JSON line::

    {"card_python_us", "card_postgres_us", "code_python_us", "code_postgres_us", ...}

It uses only ``create_app`` and the payment seeding of bench/payments.py, so the same file
measures an older source tree too: ``PYTHONPATH=<old tree>/src python -m bench.http_stack``
from this tree's root. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from typing import Any

import uvloop

from bench.common import forget_empty_statistics, throwaway_database
from bench.payment_parts import _pg_cpu, medians, print_round
from bench.payments import MASTER_KEY, STEP_SECONDS, Campus, Signer, seed
from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import create_pool
from campuscard.payments import code_rules, codes
from campuscard.platform.logs import setup_logging

Request = tuple[str, list[tuple[bytes, bytes]], bytes]


def _requests(campus: Campus, signer: Signer, count: int, *, by_code: bool) -> list[Request]:
    """``count`` signed requests as wrk sends them (bench/replay.lua's headers)."""
    now = int(time.time())
    step = code_rules.time_step(now, STEP_SECONDS)
    tills = campus.hot + campus.others
    out: list[Request] = []
    for _ in range(count):
        line = signer.line(signer.rng.choice(tills), by_code=by_code, step=step, now=now)
        path, sn, ts, nonce, signature, body = line.split("\t", 5)
        data = body.encode()
        headers = [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"x-cc-terminal", sn.encode()),
            (b"x-cc-key-version", b"1"),
            (b"x-cc-timestamp", ts.encode()),
            (b"x-cc-nonce", nonce.encode()),
            (b"x-cc-signature", signature.encode()),
        ]
        out.append((path, headers, data))
    return out


async def _send(app: Any, request: Request) -> int:
    path, headers, body = request
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _measure(
    app: Any, requests: list[Request], concurrency: int, pg_pid: int | None
) -> tuple[float, float]:
    gate = asyncio.Semaphore(concurrency)

    async def one(request: Request) -> None:
        async with gate:
            status = await _send(app, request)
            if status != 200:
                raise SystemExit(f"{request[0]} answered {status}")

    python0, pg0 = time.process_time(), _pg_cpu(pg_pid)
    await asyncio.gather(*(one(r) for r in requests))
    n = len(requests)
    return (time.process_time() - python0) / n * 1e6, (_pg_cpu(pg_pid) - pg0) / n * 1e6


async def run(url: str, pg_pid: int | None, campus: Campus, args: argparse.Namespace) -> None:
    settings = Settings(database_url=url, master_key=MASTER_KEY, run_worker=False, _env_file=None)
    pool = await create_pool(url, min_size=4, max_size=20)
    try:
        await pool.execute("VACUUM ANALYZE")
        async with pool.acquire() as conn:  # not planned as empty (decision 0412)
            await forget_empty_statistics(conn)
        await pool.execute("CHECKPOINT")
        app = create_app(settings, pool)
        signer = Signer(campus, random.Random(20261207))
        # warm-up (not counted): connections, prepared statements, the tills' rows
        await _measure(app, _requests(campus, signer, 300, by_code=False), args.concurrency, None)
        results: dict[str, list[tuple[float, float]]] = {"card": [], "code": []}
        for round_no in range(args.rounds):
            codes._BINDINGS.clear()  # every code is its phone's first in this process
            for kind in ("card", "code"):
                batch = _requests(campus, signer, args.payments, by_code=kind == "code")
                per = await _measure(app, batch, args.concurrency, pg_pid)
                results[kind].append(per)
                print_round(round_no, kind, args.payments, per)
        extra = {"concurrency": args.concurrency, "payments": args.payments}
        print(json.dumps(medians(results) | extra))
    finally:
        events = getattr(app.state, "payment_events", None)
        if events is not None:
            await events.drain()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=30_000)
    parser.add_argument("--payments", type=int, default=2_000, help="per round and kind")
    parser.add_argument("--concurrency", type=int, default=16, help="payments in flight")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # the production log line, rendered and written, but not to the terminal
    setup_logging("INFO", as_json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    with throwaway_database("cc-http-stack-pg-") as (url, pg_pid):
        campus = asyncio.run(seed(url, args.students, 50))
        if len(campus.phones) < args.payments * args.rounds:
            raise SystemExit("not enough phones for the codes: raise --students")
        # the event loop uvicorn runs the app on
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(url, pg_pid, campus, args))


if __name__ == "__main__":
    main()
