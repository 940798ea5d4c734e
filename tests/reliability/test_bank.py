"""A bank test in the spirit of Jepsen's: clients move money through the real HTTP API of
`campuscard serve` (several uvicorn workers, embedded PostgreSQL) while a nemesis SIGKILLs
server workers, terminates database backends and crash-restarts PostgreSQL. Clients time out
and retry with the same client id, as a till would.

Afterwards the checker proves:
* I1 in every snapshot taken during the run, and at the end, the balances sum to zero;
* I2-I4 over the whole ledger (``check_ledger``);
* I5 every acknowledged operation was applied exactly once, and a retry of it replays the
  identical answer; the same id with another payload is refused;
* I7 every operation whose client gave up (timed out) was applied at most once, and once
  resolved by a later retry, exactly as answered;
* every purse ends at its opening balance plus exactly the operations applied to it.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.config import Settings
from campuscard.db.pool import connect
from campuscard.domain import signing
from campuscard.services import ledger
from campuscard.services.ledger_check import check_ledger
from tests.reliability.cluster import MASTER_KEY, Cluster, running_cluster
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import Device, make_cardholder, make_device, make_merchant

pytestmark = pytest.mark.reliability

DURATION = 20.0  # seconds of load with faults
OPERATORS = 5
STUDENTS = 12
OPENING = 5_000  # fen in each student's cash purse at the start
TIMEOUT = 2.0  # the client's patience for one attempt
SCHOOL = "BNK"
# refusals a correct system may answer (nothing moves); anything else fails the test
REFUSALS = {
    "pay": {"INSUFFICIENT_FUNDS", "PIN_REQUIRED", "OVER_DAILY_LIMIT", "PAYMENT_REVERSED"},
    "reverse": {"PAYMENT_REFUNDED", "REVERSAL_WINDOW_PASSED"},
}


@dataclass
class Op:
    kind: str
    client_id: str
    operator: int
    path: str
    body: dict[str, Any]
    ref: str
    deltas: dict[int, int]  # person purse total (by cash purse id) / account id -> fen
    terminal: int | None = None  # index of the signing terminal, for device requests
    target: str | None = None  # a reversal names the payment's client id
    outcome: str = "unknown"  # ok | refused | unknown
    response: dict[str, Any] | None = None
    attempts: int = 0


@dataclass
class World:
    cluster: Cluster
    school_id: int
    operators: list[tuple[int, str]] = field(default_factory=list)  # (user id, token)
    students: list[tuple[str, int, int]] = field(default_factory=list)  # number, cash, subsidy
    cards: dict[int, tuple[str, str]] = field(default_factory=dict)  # cash purse -> number, uid
    devices: list[Device] = field(default_factory=list)  # one POS per client
    merchant: int = 0
    fund: int = 0
    cash_desk: int = 0
    history: list[Op] = field(default_factory=list)
    snapshots: list[int] = field(default_factory=list)


async def seed(cluster: Cluster) -> World:
    conn = await connect(cluster.db_url)
    try:
        school = await make_school(conn, SCHOOL)
        world = World(cluster, school.id)
        for i in range(OPERATORS):
            await make_user(conn, f"op{i}", "settlement", school.id)
        for i in range(STUDENTS):
            number = f"B{i:04d}"
            person, card = await make_cardholder(conn, school.id, number, cash=OPENING)
            purses = await ledger.open_purses(conn, school.id, person)
            world.students.append((number, purses["cash"], purses["subsidy"]))
            world.cards[purses["cash"]] = (card["number"], card["uid"])
        world.merchant, outlet = await make_merchant(conn, school.id)
        settings = Settings(master_key=MASTER_KEY, _env_file=None)  # type: ignore[arg-type, call-arg]
        for i in range(OPERATORS):
            world.devices.append(
                await make_device(
                    conn, settings, school.id, world.merchant, f"POS-BANK-{i}", outlet_id=outlet
                )
            )
        world.fund = await ledger.system_account(conn, school.id, "subsidy_fund")
        world.cash_desk = await ledger.system_account(conn, school.id, "cash_desk")
    finally:
        await conn.close()
    return world


async def sign_in(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.cluster.base_url, timeout=30) as http:
        for i in range(OPERATORS):
            r = await http.post(
                "/api/v1/auth/login",
                json={"username": f"op{i}", "password": PASSWORD, "school": SCHOOL},
            )
            assert r.status_code == 200, r.text
            token = r.json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            opened = await http.post(
                f"/api/v1/counter/{SCHOOL}/drawer/open",
                json={"opening_float": "0.00"},
                headers=headers,
            )
            assert opened.status_code in (200, 201), opened.text
            world.operators.append((r.json()["user"]["user_id"], token))


def next_op(world: World, rng: random.Random, operator: int, seq: int) -> Op:
    user_id, _ = world.operators[operator]
    client_id = f"bank-{operator}-{seq:05d}"
    number, cash, _ = rng.choice(world.students)
    fen = rng.choice([1, 5, 50, 199, 500, 1_500, 4_000] if rng.random() < 0.5 else [1, 50, 199])
    yuan = f"{fen // 100}.{fen % 100:02d}"
    kind = rng.choices(
        ["transfer", "deposit", "grant", "deduct", "pay", "reverse"], [3, 2, 2, 1, 6, 2]
    )[0]
    mine = [op for op in world.history if op.kind == "pay" and op.operator == operator]
    if kind == "reverse" and mine:
        # 冲正 a payment of this till: answered, refused, or never answered (then possibly
        # arriving after its reversal), sometimes twice
        target = rng.choice(mine[-5:])
        return Op(
            kind,
            client_id,
            operator,
            "/api/v1/terminal/pay/reverse",
            {"client_id": target.client_id},
            "",
            {},
            terminal=operator,
            target=target.client_id,
        )
    if kind in ("pay", "reverse"):
        card_number, uid = world.cards[cash]
        pay_client = f"pay-{operator}-{seq:05d}"
        return Op(
            "pay",
            pay_client,
            operator,
            "/api/v1/terminal/pay",
            {"client_id": pay_client, "card_number": card_number, "card_uid": uid, "amount": yuan},
            "",
            {cash: -fen},
            terminal=operator,
        )
    if kind == "transfer":
        _, other_cash, _ = rng.choice([s for s in world.students if s[1] != cash])
        return Op(
            kind,
            client_id,
            operator,
            f"/api/v1/admin/schools/{SCHOOL}/ledger/adjustments",
            {
                "client_id": client_id,
                "from_account": cash,
                "to_account": other_cash,
                "amount": yuan,
                "memo": "bank test transfer",
            },
            f"adjustment:{client_id}",
            {cash: -fen, other_cash: fen},
        )
    ref = f"counter:{user_id}:{client_id}"
    body = {"client_id": client_id, "person_number": number, "amount": yuan}
    if kind == "deposit":
        return Op(
            kind,
            client_id,
            operator,
            f"/api/v1/counter/{SCHOOL}/deposits",
            body,
            ref,
            {world.cash_desk: -fen, cash: fen},
        )
    body["memo"] = "bank test subsidy"
    if kind == "grant":
        path, deltas = "subsidy-grants", {world.fund: -fen, cash: fen}
    else:
        path, deltas = "subsidy-deductions", {cash: -fen, world.fund: fen}
    return Op(kind, client_id, operator, f"/api/v1/counter/{SCHOOL}/{path}", body, ref, deltas)


async def attempt(http: httpx.AsyncClient, world: World, op: Op, timeout: float = TIMEOUT) -> bool:
    """One try; True when the server gave a definite answer."""
    _, token = world.operators[op.operator]
    op.attempts += 1
    content = json.dumps(op.body).encode()
    if op.terminal is not None:
        # a device signs every attempt afresh (new nonce, new time), same client id and body
        dev = world.devices[op.terminal]
        headers = signing.signed_headers(
            sn=dev.sn,
            key=dev.key,
            key_version=dev.key_version,
            method="POST",
            path=op.path,
            body=content,
            timestamp=int(time.time()),
            nonce=secrets.token_hex(12),
        )
    else:
        headers = {"Authorization": f"Bearer {token}"}
    try:
        r = await http.post(
            op.path,
            content=content,
            headers=headers | {"Content-Type": "application/json"},
            timeout=timeout,
        )
    except httpx.HTTPError:
        return False  # timed out or the connection broke: the outcome is unknown
    if r.status_code in (502, 503, 504):
        return False
    assert r.status_code != 500, f"{op.kind} answered 500: {r.text}"
    body = r.json()
    if r.status_code in (200, 201):
        op.outcome, op.response = "ok", body
        return True
    allowed = REFUSALS.get(op.kind, {"INSUFFICIENT_FUNDS"})
    assert r.status_code in (403, 409) and body["error"]["code"] in allowed, (
        f"{op.kind} {op.body} answered {r.status_code}: {r.text}"
    )
    op.outcome, op.response = "refused", body
    return True


async def client(world: World, operator: int, stop: asyncio.Event) -> None:
    rng = random.Random(operator)
    async with httpx.AsyncClient(base_url=world.cluster.base_url, timeout=TIMEOUT) as http:
        seq = 0
        while not stop.is_set():
            op = next_op(world, rng, operator, seq)
            seq += 1
            world.history.append(op)
            # some clients are impatient: they give up after a very short wait, often while
            # the server is still booking; the outcome stays unknown until resolved later
            impatient = rng.random() < 0.15
            timeout = rng.choice([0.005, 0.02, 0.1]) if impatient else TIMEOUT
            for retry in range(2 if impatient else 8):
                if await attempt(http, world, op, timeout) or stop.is_set():
                    break
                await asyncio.sleep(min(0.05 * 2**retry, 1.0))


async def nemesis(world: World, stop: asyncio.Event) -> None:
    rng = random.Random(99)
    faults = ["kill_worker", "terminate_backends", "restart_database"]
    round_ = 0
    while not stop.is_set():
        await asyncio.sleep(2.0)
        if stop.is_set():
            break
        fault = faults[round_ % len(faults)] if round_ < len(faults) else rng.choice(faults)
        round_ += 1
        try:
            if fault == "kill_worker":
                world.cluster.kill_worker(rng)
            elif fault == "terminate_backends":
                await world.cluster.terminate_backends()
            else:
                await asyncio.to_thread(world.cluster.restart_database)
        except (OSError, asyncpg.PostgresError) as err:
            world.cluster.events.append(f"{fault} failed: {err!r}")


async def snapshotter(world: World, stop: asyncio.Event) -> None:
    """I1 in every snapshot: one statement sees one snapshot of every balance."""
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(world.cluster.db_url, timeout=2)
            try:
                while not stop.is_set():
                    world.snapshots.append(await conn.fetchval("SELECT sum(balance) FROM accounts"))
                    await asyncio.sleep(0.2)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await asyncio.sleep(0.3)  # the nemesis took the database away; try again


async def wait_healthy(world: World, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=world.cluster.base_url, timeout=3) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get("/api/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError("the service did not recover:\n" + world.cluster.log_tail())


async def run_bank(world: World) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(world, i, stop)) for i in range(OPERATORS)]
    tasks.append(asyncio.create_task(nemesis(world, stop)))
    tasks.append(asyncio.create_task(snapshotter(world, stop)))
    await asyncio.sleep(DURATION)
    stop.set()
    await asyncio.gather(*tasks)
    await wait_healthy(world)


async def resolve_unknown(world: World) -> list[Op]:
    """Retry every operation the client gave up on, with the same id, now that faults stop."""
    unknown = [op for op in world.history if op.outcome == "unknown"]
    async with httpx.AsyncClient(base_url=world.cluster.base_url, timeout=10) as http:
        for op in unknown:
            for _ in range(10):
                if await attempt(http, world, op):
                    break
                await asyncio.sleep(0.5)
    return unknown


async def check(world: World, was_unknown: list[Op]) -> None:
    conn = await connect(world.cluster.db_url)
    try:
        report = await check_ledger(conn)
        assert report.ok, report.violations  # I1-I4
        rows = await conn.fetch(
            "SELECT ref, count(*) AS n FROM journal_tx WHERE ref = ANY($1::text[]) GROUP BY ref",
            [op.ref for op in world.history if op.ref],
        )
        applied = {r["ref"]: r["n"] for r in rows}
        payments = {
            (r["sn"], r["client_id"]): r
            for r in await conn.fetch(
                """SELECT t.sn, p.client_id, p.amount, p.status, p.person_id, p.tx_id
                     FROM payments p JOIN terminals t ON t.id = p.terminal_id
                    WHERE p.school_id = $1""",
                world.school_id,
            )
        }
        reversals = {
            (r["sn"], r["client_id"]): r
            for r in await conn.fetch(
                """SELECT t.sn, r.client_id, r.payment_id, r.tx_id
                     FROM payment_reversals r JOIN terminals t ON t.id = r.terminal_id
                    WHERE r.school_id = $1""",
                world.school_id,
            )
        }
        # I8: a reversed payment and its reversal net to zero on every account
        unbalanced = await conn.fetch(
            """SELECT p.id, x.account_id, sum(x.amount) AS net
                 FROM payments p JOIN payment_reversals r ON r.payment_id = p.id
                 JOIN postings x ON x.tx_id IN (p.tx_id, r.tx_id)
                WHERE p.status = 'reversed' GROUP BY p.id, x.account_id
               HAVING sum(x.amount) <> 0"""
        )
        assert not unbalanced, f"I8: reversals that do not net to zero: {unbalanced}"
        balances = {
            r["id"]: r["balance"]
            for r in await conn.fetch(
                "SELECT id, balance FROM accounts WHERE school_id = $1", world.school_id
            )
        }
        merchant_total = await conn.fetchval(
            "SELECT sum(balance) FROM accounts WHERE merchant_id = $1", world.merchant
        )
    finally:
        await conn.close()

    expected: dict[int, int] = {cash: OPENING for _, cash, _ in world.students}
    booked = 0
    for op in world.history:
        if op.kind == "pay":
            sn = world.devices[op.operator].sn
            row = payments.get((sn, op.client_id))
            if op.outcome == "ok":
                assert row is not None, f"approved payment {op.client_id} is not booked"
            elif op.outcome == "refused":
                assert row is None, f"refused payment {op.client_id} was booked"
            marker = reversals.get((sn, op.client_id))
            if marker is not None and marker["payment_id"] is None:
                assert row is None, f"payment {op.client_id} booked after its reversal"  # I8
            if row is not None and row["status"] == "booked":
                expected[next(iter(op.deltas))] -= row["amount"]
                booked += row["amount"]
            continue
        if op.kind == "reverse":
            continue
        n = applied.get(op.ref, 0)
        assert n <= 1, f"{op.kind} {op.client_id} applied {n} times"  # I7: never twice
        if op.outcome == "ok":
            assert n == 1, f"acknowledged {op.kind} {op.client_id} applied {n} times"  # I5
        elif op.outcome == "refused":
            assert n == 0, f"refused {op.kind} {op.client_id} was applied"
        if n:
            for account, fen in op.deltas.items():
                expected[account] = expected.get(account, 0) + fen
    for _, cash, subsidy in world.students:
        total = balances[cash] + balances[subsidy]
        assert total == expected[cash], f"purses of {cash}: {total} != {expected[cash]}"
    assert balances[world.fund] == expected.get(world.fund, 0)
    assert int(merchant_total or 0) == booked, "the merchant holds what was booked, net"

    # I5: a retry of an acknowledged operation replays the identical answer
    acknowledged = [op for op in world.history if op.outcome != "unknown"]
    async with httpx.AsyncClient(base_url=world.cluster.base_url, timeout=10) as http:
        for op in random.Random(7).sample(acknowledged, min(30, len(acknowledged))):
            first = op.response
            assert await attempt(http, world, op, 10.0), op.client_id
            if op.kind != "reverse":
                assert op.response == first, f"{op.kind} {op.client_id} replayed differently"
            else:  # a repeated reversal answers the same result
                assert op.response["result"] == first["result"], op.client_id
        op = next(op for op in acknowledged if op.kind == "transfer")
        _, token = world.operators[op.operator]
        changed = op.body | {"memo": "another request, same id"}
        headers = {"Authorization": f"Bearer {token}"}
        r = await http.post(op.path, json=changed, headers=headers)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_bank_under_faults_loses_nothing_and_applies_everything_once(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        from campuscard.db.runtime import upgrade

        asyncio.run(upgrade(cluster.db_url))
        world = asyncio.run(seed(cluster))
        cluster.start_server()
        asyncio.run(sign_in(world))

        asyncio.run(run_bank(world))
        was_unknown = asyncio.run(resolve_unknown(world))
        asyncio.run(check(world, was_unknown))

        # the run must have been a real one: load, every fault, and retries across them
        outcomes = [op.outcome for op in world.history]
        summary = (
            f"{len(outcomes)} operations: {outcomes.count('ok')} ok, "
            f"{outcomes.count('refused')} refused, {len(was_unknown)} timed out then resolved; "
            f"{len(world.snapshots)} snapshots; faults: {world.cluster.events}"
        )
        print(summary)
        assert outcomes.count("ok") >= 50, summary
        assert all(s == 0 for s in world.snapshots), f"I1 broken in a snapshot: {summary}"
        assert len(world.snapshots) >= 10, summary
        for fault in ("SIGKILL worker", "terminated", "restarted PostgreSQL"):
            assert any(e.startswith(fault) for e in world.cluster.events), summary
        assert any(op.attempts > 1 for op in world.history), "no operation needed a retry"
        assert was_unknown, "no client ever gave up; I7 was not exercised"
