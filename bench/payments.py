"""`make bench`: signed terminal payments over HTTP against pgbench, on one PostgreSQL.

1. A throw-away embedded PostgreSQL (fsync on, as in production) gets the bench school:
   100,000 students with cards and 1,000 yuan each, a phone bound for payment codes for one
   in five, and 50 merchants (one big canteen with 16 tills, the others with 4 each).
2. ``campuscard serve --workers N`` serves it and one ``campuscard worker`` runs its jobs beside
   it, as production runs them (docs/operations.md; ``--jobs-in-web``: each web worker runs
   them, as the demo does).
3. Terminal requests are signed in advance (each with its own nonce and client id; half card
   payments, half scanned payment codes generated as the phones would) and wrk replays them
   from 32 connections, each exactly once (bench/replay.lua), so the load generator costs
   little CPU. First a short warm-up, then the *hot* run (half of the payments at the big
   canteen), then the *spread* run (all merchants alike), each ``--seconds`` long.
4. The server stops; pgbench's built-in tpcb-like script runs at 8 and at 32 clients (-j 2)
   on the same PostgreSQL; the higher TPS is the reference.

It prints a human summary and, last, one JSON line::

    {"payments_per_s", "p50_ms", "p99_ms", "pgbench_tps", "ratio", "hot_spread_ratio"}

(payments_per_s and the latencies are the hot run's; ratio = payments_per_s / pgbench_tps;
hot_spread_ratio = hot payments/s / spread payments/s). Goals: ratio >= 0.6, p99 <= 50 ms,
hot_spread_ratio >= 0.9. The exit status is 0 when the run was clean (every request
approved, the ledger balanced), whatever the figures. See docs/performance.md.

    make bench                     # or: .venv/bin/python -m bench.payments --help
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from bench.common import (
    bench_school,
    forget_empty_statistics,
    pgbench_tps,
    seed_students,
    throwaway_database,
)
from campuscard.db.embedded import free_port
from campuscard.db.pool import connect
from campuscard.ledger.checks import check_ledger
from campuscard.payments import code_rules
from campuscard.platform import signing

MASTER_KEY = "bench-master-key-" + "0" * 16
METRICS_TOKEN = "bench-metrics-token-" + "0" * 12
OPENING_FEN = 100_000  # 1,000 yuan in every cash purse
PHONE_EVERY = 5  # one student in five pays with a payment code from a bound phone
HOT_TILLS = 16
TILLS = 4
STEP_SECONDS = 60
# the other merchants' channels (the hot one is a canteen): canteens, shops, other services
CHANNELS = ("canteen",) * 29 + ("supermarket",) * 12 + ("other",) * 8
GOALS = {"ratio": 0.6, "p99_ms": 50.0, "hot_spread_ratio": 0.9, "codes_cards_ratio": 0.8}


@dataclass(frozen=True)
class Till:
    sn: str
    key: bytes


@dataclass
class Campus:
    school_id: int
    hot: list[Till]
    others: list[Till]
    cards: list[tuple[str, str]]
    phones: list[tuple[str, bytes]]  # (token, device secret)
    phone_scheme: str = code_rules.SCHEME_DEVICE_KEYED  # the first digit of the phones' codes


async def seed(
    url: str,
    students: int,
    merchants: int,
    phone_scheme: str = code_rules.SCHEME_DEVICE_KEYED,
) -> Campus:
    """The bench's campus; its phones bound as ``phone_scheme`` binds them: 6, as every phone
    bound now (no salt, the secret keyed by the token), or 7, salted (bound before decision
    0401)."""
    conn = await connect(url)
    try:
        school_id = await bench_school(conn)
        channels = ["canteen"] + [CHANNELS[i % len(CHANNELS)] for i in range(merchants - 1)]
        await conn.execute(
            """INSERT INTO merchants(school_id, name, channel, status, commission_bp)
               SELECT $1, CASE WHEN m = 1 THEN '第一食堂' ELSE '商户' || m END,
                      ($2::text[])[m], 'approved', 100
                 FROM generate_series(1, $3::int) m""",
            school_id,
            channels,
            merchants,
        )
        await conn.execute(
            """INSERT INTO terminals(school_id, sn, kind, merchant_id)
               SELECT $1, 'POS-' || lpad(r.n::text, 2, '0') || '-' || lpad(t::text, 2, '0'),
                      'pos', r.id
                 FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM merchants
                        WHERE school_id = $1) r,
                      generate_series(1, CASE WHEN r.n = 1 THEN $2::int ELSE $3::int END) t""",
            school_id,
            HOT_TILLS,
            TILLS,
        )
        await seed_students(conn, school_id, students, opening_fen=OPENING_FEN, cards=True)
        await conn.execute(
            """INSERT INTO paycode_devices(school_id, person_id, token, salt, step_seconds, label)
               SELECT $1, id, lpad((10000000 + id)::text, 8, '0'),
                      CASE WHEN $4 THEN decode(md5(random()::text || id::text), 'hex') END, $2,
                      'bench'
                 FROM persons WHERE school_id = $1 AND id % $3 = 0""",
            school_id,
            STEP_SECONDS,
            PHONE_EVERY,
            phone_scheme == code_rules.SCHEME_DEVICE,
        )
        tills = await conn.fetch(
            "SELECT sn, sn LIKE 'POS-01-%' AS hot FROM terminals WHERE school_id = $1 ORDER BY id",
            school_id,
        )
        cards = await conn.fetch("SELECT number, uid FROM cards WHERE school_id = $1", school_id)
        phones = await conn.fetch(
            "SELECT id, token, salt FROM paycode_devices WHERE school_id = $1", school_id
        )
        # as `pgbench -i` leaves its tables: vacuumed, instead of waiting for autovacuum's first
        # pass over the seeded tables (its first nap ends about a minute in, amid the runs); the
        # tables the seed left empty (idempotency keys, code uses, nonces, ...) then get the
        # statistics of a fresh install back, not "empty" (decision 0412)
        await conn.execute("VACUUM ANALYZE")
        await forget_empty_statistics(conn)
    finally:
        await conn.close()

    def till(sn: str) -> Till:
        return Till(sn, signing.derive_terminal_key(MASTER_KEY, sn, 1))

    return Campus(
        school_id=school_id,
        hot=[till(r["sn"]) for r in tills if r["hot"]],
        others=[till(r["sn"]) for r in tills if not r["hot"]],
        cards=[(r["number"], r["uid"]) for r in cards],
        phones=[
            (
                r["token"],
                code_rules.binding_secret(
                    MASTER_KEY.encode(),
                    school_id,
                    r["id"],
                    r["token"],
                    None if r["salt"] is None else bytes(r["salt"]),
                    STEP_SECONDS,
                ),
            )
            for r in phones
        ],
        phone_scheme=phone_scheme,
    )


@dataclass
class Signer:
    """Makes the pre-signed request lines; every code and client id is used once."""

    campus: Campus
    rng: random.Random
    code_share: float = 0.5
    sequence: int = 0
    phone_cursor: int = 0
    counters: dict[tuple[int, int], int] = field(default_factory=dict)

    def _code(self, step: int) -> str:
        """A code no request used yet, for ``step`` or the step after (both still valid while
        the run lasts less than a step)."""
        phones = len(self.campus.phones)
        for _ in range(2 * phones):
            index = self.phone_cursor % phones
            self.phone_cursor += 1
            for s in (step, step + 1):
                counter = self.counters.get((index, s), 0)
                if counter <= code_rules.MAX_COUNTER:
                    self.counters[(index, s)] = counter + 1
                    token, secret = self.campus.phones[index]
                    return code_rules.generate(secret, token, s, counter, self.campus.phone_scheme)
        raise SystemExit("not enough phones for the payment codes: raise --students")

    def line(self, till: Till, *, by_code: bool, step: int, now: int) -> str:
        self.sequence += 1
        amount = f"{self.rng.randint(100, 2000) / 100:.2f}"
        client_id = f"{till.sn}-{self.sequence:09d}"
        if by_code:
            path = "/api/v1/terminal/paycode/pay"
            payload: dict[str, str] = {"client_id": client_id, "code": self._code(step)}
        else:
            path = "/api/v1/terminal/pay"
            number, uid = self.rng.choice(self.campus.cards)
            payload = {"client_id": client_id, "card_number": number, "card_uid": uid}
        payload["amount"] = amount
        body = json.dumps(payload, separators=(",", ":")).encode()
        nonce = secrets.token_hex(12)
        signature = signing.sign(till.key, "POST", path, str(now), nonce, body)
        return "\t".join((path, till.sn, str(now), nonce, signature, body.decode()))

    def write(self, prefix: Path, count: int, threads: int, *, hot: bool) -> None:
        """``count`` requests, half by payment code, split into one file per wrk thread.
        Hot: half of them at the big canteen's tills; otherwise all tills alike."""
        now = int(time.time())
        step = code_rules.time_step(now, STEP_SECONDS)
        everyone = self.campus.hot + self.campus.others
        files = [open(f"{prefix}.{t}", "w") for t in range(threads)]  # noqa: SIM115
        try:
            for i in range(count):
                # hot: every other payment at the big canteen's tills
                tills = (self.campus.hot if i % 2 == 0 else self.campus.others) if hot else everyone
                till = self.rng.choice(tills)
                by_code = self.rng.random() < self.code_share
                files[i % threads].write(self.line(till, by_code=by_code, step=step, now=now))
                files[i % threads].write("\n")
        finally:
            for f in files:
                f.close()


def cpu_seconds(pids: list[int]) -> float:
    """CPU used so far by these processes, their live children and their reaped children."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in processes:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


@dataclass
class Run:
    name: str
    seconds: float
    approved: int
    refused: int
    busy: int
    failed: int
    exhausted: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    sample: str
    cores: dict[str, float]
    connections: list[float] = field(default_factory=list)  # each server worker's, mean

    @property
    def rate(self) -> float:
        return self.approved / self.seconds

    @property
    def clean(self) -> bool:
        return not (
            self.refused or self.busy or self.failed or self.exhausted or self.socket_errors
        )


class ConnectionSampler:
    """How many of wrk's connections each server worker holds, sampled twice a second while a
    run lasts (edge/balance.py keeps them even)."""

    def __init__(self, server_pid: int, port: int) -> None:
        self.port = port
        self.samples: list[list[int]] = []
        self._stop = threading.Event()
        self._workers = [
            p
            for p in psutil.Process(server_pid).children()
            if "resource_tracker" not in " ".join(p.cmdline())
        ]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _held(self, worker: psutil.Process) -> int:
        try:
            connections = worker.net_connections(kind="tcp")
        except psutil.Error:
            return 0
        return sum(
            1
            for c in connections
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
        )

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append(sorted((self._held(w) for w in self._workers), reverse=True))

    def stop(self) -> list[float]:
        """Each worker's mean, the busiest first."""
        self._stop.set()
        self._thread.join()
        samples = [s for s in self.samples if sum(s)]
        if not samples:
            return []
        return [sum(column) / len(samples) for column in zip(*samples, strict=True)]


def replay(
    name: str,
    prefix: Path,
    *,
    url: str,
    clients: int,
    threads: int,
    seconds: int,
    watch: dict[str, list[int]],
) -> Run:
    lua = Path(__file__).with_name("replay.lua")
    before = {k: cpu_seconds(v) for k, v in watch.items()}
    sampler = ConnectionSampler(watch["server"][0], urlsplit(url).port or 80)
    machine_before = psutil.cpu_times()
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(clients),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            url,
            "--",
            str(prefix),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    per_worker = sampler.stop()
    machine_after = psutil.cpu_times()
    cores = {k: (cpu_seconds(v) - before[k]) / wall for k, v in watch.items()}
    cores["wrk"] = (usage.ru_utime + usage.ru_stime) / wall
    busy = sum(machine_after) - sum(machine_before)
    idle = (machine_after.idle - machine_before.idle) + (
        machine_after.iowait - machine_before.iowait
    )
    cores["machine"] = (busy - idle) / wall
    lines = [line for line in output.splitlines() if line.startswith("REPLAY ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{output}")
    r = json.loads(lines[-1].removeprefix("REPLAY "))
    return Run(
        name=name,
        seconds=r["duration_us"] / 1e6,
        approved=r["approved"],
        refused=r["refused"],
        busy=r["busy"],
        failed=r["failed"],
        exhausted=r["exhausted"],
        socket_errors=r["socket_errors"],
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        sample=r["sample"],
        cores=cores,
        connections=per_worker,
    )


# server_counters' keys besides the batch-size buckets (a bucket's key is its upper bound)
BOOKED, CALLS, REBALANCED = -1.0, -2.0, -3.0


def server_counters(base: str) -> dict[float, float]:
    """What the server has counted so far (one scrape of /metrics): the group commit's
    histogram, calls per size bucket (cumulative, Prometheus style) with BOOKED (payments) and
    CALLS, and REBALANCED (connections closed to keep the workers even, edge/balance.py)."""
    text = httpx.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("campuscard_payment_batch_size_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("campuscard_payment_batch_size_sum"):
            out[BOOKED] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("campuscard_payment_batch_size_count"):
            out[CALLS] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("campuscard_connections_rebalanced_total"):
            out[REBALANCED] = float(line.rsplit(" ", 1)[1])
    return out


def describe_rebalanced(before: dict[float, float], after: dict[float, float]) -> str:
    closed = after.get(REBALANCED, 0.0) - before.get(REBALANCED, 0.0)
    return f"          connections closed to balance the workers: {closed:,.0f}"


def describe_batches(before: dict[float, float], after: dict[float, float]) -> str:
    """Card bookings per database call during one run: how many calls fell in each size
    range, the mean size, and the share of bookings that did not commit alone."""
    if not after:
        return "          batches: none counted (no group commit in this version)"
    diff = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    calls, booked = diff.get(CALLS, 0.0), diff.get(BOOKED, 0.0)
    if not calls:
        return "          batches: none"
    edges = sorted(k for k in diff if k >= 0)
    parts, low, below = [], 1, 0.0
    for edge in edges:
        n = diff[edge] - below
        below = diff[edge]
        if n:
            if edge == float("inf"):
                label = f"{low}+"
            else:
                label = f"{low}" if low >= edge else f"{low}-{edge:g}"
            parts.append(f"{label}: {n / calls:.0%}")
        if edge != float("inf"):
            low = int(edge) + 1
    alone = diff.get(1.0, 0.0)
    return (
        f"          batches: {calls:,.0f} calls, mean {booked / calls:.1f} bookings per call, "
        f"{(booked - alone) / booked:.0%} of bookings shared a commit; calls by size: "
        + ", ".join(parts)
    )


def start_server(url: str, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    """``campuscard serve``, every web worker running a job worker too (the default)."""
    return start_servers(url, port, workers, log, jobs_apart=False)[0]


def start_servers(
    url: str, port: int, workers: int, log: Path, *, jobs_apart: bool = True
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes] | None]:
    """``campuscard serve`` and, laid out as production runs them (docs/operations.md), one
    ``campuscard worker`` beside it for the jobs, the web processes serving only requests; with
    ``jobs_apart`` false, every web worker runs a job worker too (the default of a single small
    school and the demo)."""
    env = {
        **os.environ,
        "CAMPUSCARD_DATABASE_URL": url,
        "CAMPUSCARD_PORT": str(port),
        "CAMPUSCARD_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CAMPUSCARD_MASTER_KEY": MASTER_KEY,
        # `campuscard serve` refuses development secrets; the benchmark calls no outside party
        "CAMPUSCARD_PROVIDER_KEY": "bench-provider-key-" + "0" * 16,
        "CAMPUSCARD_BANK_MAC_KEY": "bench-bank-mac-key-" + "0" * 16,
        "CAMPUSCARD_SMS_API_SECRET": "bench-sms-secret-" + "0" * 16,
        "CAMPUSCARD_UTILITY_SECRET": "bench-utility-secret-" + "0" * 16,
        "CAMPUSCARD_WORKERS": str(workers),
        # the batch sizes of the group commit are read from /metrics after each run
        "CAMPUSCARD_METRICS_TOKEN": METRICS_TOKEN,
        "CAMPUSCARD_RUN_WORKER": "false" if jobs_apart else "true",
    }
    campuscard = Path(sys.executable).with_name("campuscard")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(campuscard), "serve", "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    jobs = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                # (started once serve has migrated the database)
                if jobs_apart and jobs is None:
                    with log.with_name("worker.log").open("wb") as out:
                        jobs = subprocess.Popen(
                            [str(campuscard), "worker"],
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                # every worker answers before the clock starts
                time.sleep(1.0)
                if jobs is not None and jobs.poll() is not None:
                    stop_server(proc)
                    text = log.with_name("worker.log").read_text()[-3000:]
                    raise RuntimeError(f"the job worker exited:\n{text}")
                return proc, jobs
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server did not come up:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def ledger_after(url: str, school_id: int) -> tuple[int, bool, int]:
    conn = await connect(url)
    try:
        booked = await conn.fetchval(
            "SELECT count(*) FROM payments WHERE school_id = $1", school_id
        )
        report = await check_ledger(conn)
        return int(booked), report.ok, int(report.total_balance)
    finally:
        await conn.close()


def describe(run: Run) -> str:
    cores = ", ".join(f"{k} {v:.2f}" for k, v in run.cores.items())
    # CPU time per payment: what the server and PostgreSQL spend on one, whatever else runs
    per = ", ".join(
        f"{k} {v / run.rate * 1000:.2f} ms"
        for k, v in run.cores.items()
        if k in ("server", "postgres") and run.rate
    )
    text = (
        f"  {run.name:<7} {run.approved:>7,} approved in {run.seconds:5.1f} s = "
        f"{run.rate:7,.0f} payments/s   p50 {run.p50_ms:5.1f} ms  p90 {run.p90_ms:5.1f} ms  "
        f"p99 {run.p99_ms:5.1f} ms  max {run.max_ms:6.1f} ms\n"
        f"          CPU in cores: {cores}\n"
        f"          CPU per payment: {per}"
    )
    if run.connections:
        held = ", ".join(f"{n:.1f}" for n in run.connections)
        text += f"\n          connections per server worker (mean over the run): {held}"
    if not run.clean:
        text += (
            f"\n          NOT CLEAN: refused {run.refused}, busy {run.busy}, failed {run.failed}, "
            f"exhausted {run.exhausted}, socket errors {run.socket_errors}; first: {run.sample}"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--seconds", type=int, default=20, help="length of each run")
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument(
        "--code-share", type=float, default=0.5, help="share of payments by payment code"
    )
    parser.add_argument(
        "--kind-seconds",
        type=int,
        default=15,
        help="length of the cards-only and the codes-only runs (0: skip them)",
    )
    parser.add_argument(
        "--jobs-in-web",
        action="store_true",
        help="every web worker runs a job worker too, instead of one `campuscard worker` beside "
        "the server as in production (docs/operations.md)",
    )
    parser.add_argument(
        "--max-rate", type=int, default=4000, help="payments/s to pre-sign requests for"
    )
    parser.add_argument(
        "--phone-scheme",
        choices=code_rules.DEVICE_SCHEMES,
        default=code_rules.SCHEME_DEVICE_KEYED,
        help="how the phones are bound: 6 as every phone now (the code is checked before any "
        "read), 7 as before decision 0401 (each phone's binding read once per worker)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: run `make bench` (it installs it) or apt-get install wrk"
        )
    if args.merchants < 2 or args.students < 100:
        raise SystemExit("--merchants must be at least 2 and --students at least 100")
    if not 1 <= args.seconds <= STEP_SECONDS - 10:
        # the codes are made for the step of their signing and the next; a longer run outlives them
        raise SystemExit(f"--seconds must be between 1 and {STEP_SECONDS - 10}")
    work = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    try:
        with throwaway_database("cc-bench-pg-") as (db_url, pg_pid):
            t0 = time.monotonic()
            campus = asyncio.run(seed(db_url, args.students, args.merchants, args.phone_scheme))
            print(
                f"seeded {len(campus.cards):,} students with cards, {len(campus.phones):,} "
                f"phones, {args.merchants} merchants, {len(campus.hot) + len(campus.others)} "
                f"tills in {time.monotonic() - t0:.1f} s"
            )
            port = free_port()
            server, jobs = start_servers(
                db_url, port, args.workers, work / "server.log", jobs_apart=not args.jobs_in_web
            )
            # the job worker's CPU is the server's: it runs the jobs the payments make
            watch = {"server": [server.pid] + ([jobs.pid] if jobs is not None else [])}
            if pg_pid is not None:
                watch["postgres"] = [pg_pid]
            signer = Signer(campus, random.Random(20261123), args.code_share)
            base = f"http://127.0.0.1:{port}"
            runs: dict[str, Run] = {}
            try:
                plan = [
                    ("warm-up", False, 3, args.code_share),
                    ("hot", True, args.seconds, args.code_share),
                    ("spread", False, args.seconds, args.code_share),
                    # each kind alone, hot as above: cards only, then codes only
                    ("cards", True, args.kind_seconds, 0.0),
                    ("codes", True, args.kind_seconds, 1.0),
                ]
                for name, to_hot, seconds, share in plan:
                    if not seconds:
                        continue
                    prefix = work / name
                    signer.code_share = share
                    signer.write(prefix, args.max_rate * seconds, args.threads, hot=to_hot)
                    sizes = server_counters(base)
                    runs[name] = replay(
                        name,
                        prefix,
                        url=base,
                        clients=args.clients,
                        threads=args.threads,
                        seconds=seconds,
                        watch=watch,
                    )
                    print(describe(runs[name]), flush=True)
                    after = server_counters(base)
                    print(describe_batches(sizes, after), flush=True)
                    print(describe_rebalanced(sizes, after), flush=True)
            finally:
                stop_server(server)
                stop_server(jobs)
                shutil.copy(work / "server.log", Path(tempfile.gettempdir()) / "bench-server.log")
            booked, balanced, total = asyncio.run(ledger_after(db_url, campus.school_id))
            tps = {c: asyncio.run(pgbench_tps(db_url, c, args.pgbench_seconds)) for c in (8, 32)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    hot, spread = runs["hot"], runs["spread"]
    cards, codes = runs.get("cards"), runs.get("codes")
    reference = max(tps.values())
    result = {
        "payments_per_s": round(hot.rate, 1),
        "p50_ms": round(hot.p50_ms, 2),
        "p99_ms": round(hot.p99_ms, 2),
        "pgbench_tps": round(reference, 1),
        "ratio": round(hot.rate / reference, 3),
        "hot_spread_ratio": round(hot.rate / spread.rate, 3),
    }
    if cards is not None and codes is not None:
        result |= {
            "cards_per_s": round(cards.rate, 1),
            "codes_per_s": round(codes.rate, 1),
            "codes_cards_ratio": round(codes.rate / cards.rate, 3),
        }
    approved = sum(r.approved for r in runs.values())
    # wrk stops counting with requests still in flight: those are booked but not seen, at most
    # one per connection at the end of each run
    in_flight = booked - approved
    clean = (
        all(r.clean for r in runs.values())
        and balanced
        and 0 <= in_flight <= len(runs) * args.clients
    )
    print(
        f"\nCampusCard payments over HTTP: {args.workers} server workers, {args.clients} "
        f"connections from wrk ({args.threads} threads), {args.code_share:.0%} by payment code "
        "(cards: cards only, codes: codes only)"
    )
    for run in runs.values():
        per = ", ".join(
            f"{k} {v / run.rate * 1000:.2f} ms"
            for k, v in run.cores.items()
            if k in ("server", "postgres") and run.rate
        )
        print(
            f"  {run.name:<7} {run.rate:7,.0f} payments/s  p50 {run.p50_ms:5.1f} ms  "
            f"p99 {run.p99_ms:5.1f} ms  CPU per payment: {per}  "
            f"wrk CPU {run.cores['wrk']:.2f} cores"
        )
    print(
        f"  booked in the database: {booked:,} payments (wrk saw {approved:,} approved); "
        f"ledger {'balanced' if balanced else 'NOT BALANCED'} (sum of balances {total})"
    )
    print(
        "pgbench tpcb-like (-j 2, "
        f"{args.pgbench_seconds} s): "
        + ", ".join(f"{c} clients {v:,.0f} TPS" for c, v in tps.items())
    )
    for key, goal in GOALS.items():
        if key not in result:
            continue
        value = result[key]
        met = value <= goal if key == "p99_ms" else value >= goal
        sign = "<=" if key == "p99_ms" else ">="
        print(f"  {key:<17} {value:>8}   goal {sign} {goal}   {'met' if met else 'MISSED'}")
    print(json.dumps(result))
    raise SystemExit(0 if clean else 1)


if __name__ == "__main__":
    main()
