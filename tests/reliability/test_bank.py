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
* I6 every online top-up order (pending at the provider until paid, then resolved by the
  provider's notify or by our query, which race) was booked at most once, and exactly once
  if and only if the provider took the money;
* I8 a reversal before, after or twice nets to zero;
* POS refunds and payment-code payments: acknowledged ones applied exactly once, refused
  ones never, timed-out ones at most once; a payment code pays at most once;
* every purse ends at its opening balance plus exactly the operations applied to it; the
  merchant holds payments minus refunds; provider clearing and the provider agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from stdnum import luhn

from campuscard.adapters.bank.client import BankTimeout
from campuscard.adapters.bank.simulator import BankSimulator
from campuscard.adapters.provider.client import ProviderError, ProviderUnavailable
from campuscard.adapters.provider.simulator import ProviderSimulator
from campuscard.config import Settings
from campuscard.db.pool import connect, create_pool
from campuscard.edge.errors import TRANSIENT_DB_ERRORS
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.money import Money
from campuscard.moneyflows import bank_link, provider_orders
from campuscard.payments import code_rules, codes, pay_settings
from campuscard.platform import auth, signing
from tests.reliability.cluster import MASTER_KEY, Cluster, running_cluster
from tests.servers import serve_in_thread
from tests.support import PASSWORD, ROOT, make_school, make_user
from tests.support_payments import Device, make_cardholder, make_device, make_merchant

pytestmark = pytest.mark.reliability

DURATION = 20.0  # seconds of load with faults
MIN_OK = 60  # acknowledged operations the run goes on for (a loaded machine needs longer)
MAX_DURATION = 90.0  # the run stops here whatever it reached
OPERATORS = 5
STUDENTS = 12
OPENING = 5_000  # fen in each student's cash purse at the start
TIMEOUT = 2.0  # the client's patience for one attempt
SCHOOL = "BNK"
PHONES = 6  # students who sign in, bind a phone for payment codes and top up online
CODE_STEP = 15  # seconds a payment code lives (the shortest the server allows)
MCH_ID, PROVIDER_KEY = "1900000777", "reliability-provider-key-0123456789"
BANK_MAC_KEY = "reliability-bank-mac-key-0123456789"
# refusals a correct system may answer (nothing moves); anything else fails the test
REFUSALS = {
    "pay": {"INSUFFICIENT_FUNDS", "PIN_REQUIRED", "OVER_DAILY_LIMIT", "PAYMENT_REVERSED"},
    "reverse": {"PAYMENT_REFUNDED", "REVERSAL_WINDOW_PASSED"},
    "refund": {"REFUND_EXCEEDS_PAYMENT", "PAYMENT_REVERSED"},
    # a code whose first try never reached the payment engine may be too old when retried,
    # or spent by the cashier's second scan of it
    "codepay": {
        "INSUFFICIENT_FUNDS",
        "OVER_DAILY_LIMIT",
        "PAYMENT_REVERSED",
        "PAYCODE_EXPIRED",
        "PAYCODE_USED",
    },
    "topup": {"PROVIDER_UNAVAILABLE"},
    "bankload": set(),  # a declined or timed-out transfer is still a 201 (its status says so)
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
    bearer: str | None = None  # a signed-in person's token (the cashier's, a student's)
    code: str | None = None  # the payment code a till scanned
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
    phones: dict[int, codes.BoundDevice] = field(default_factory=dict)  # cash purse -> phone
    holders: dict[int, tuple[int, str]] = field(default_factory=dict)  # cash purse -> person, user
    tokens: dict[int, str] = field(default_factory=dict)  # cash purse -> the student's token
    cashier: str = ""  # token of the merchant's manager, who signs refunds in at the till
    codes_used: dict[tuple[int, int], int] = field(default_factory=dict)  # (purse, step) -> n
    provider: ProviderSimulator | None = None
    provider_url: str = ""
    clearing: int = 0  # provider_clearing
    bank: BankSimulator | None = None
    bank_port: int = 0
    bank_clearing: int = 0


async def seed(
    cluster: Cluster,
    provider: ProviderSimulator,
    provider_url: str,
    bank: BankSimulator,
    bank_port: int,
) -> World:
    conn = await connect(cluster.db_url)
    try:
        school = await make_school(conn, SCHOOL)
        # the test moves more than a campus card holds: the caps are the school's to raise
        await conn.execute(
            "UPDATE schools SET settings = settings || jsonb_build_object('money_limits', "
            "jsonb_build_object('purse_cap', 10000000000, 'counter_op_cap', 10000000000, "
            "'deposit_approval_over', 10000000000, 'drawer_float_cap', 10000000000)) "
            "WHERE id = $1",
            school.id,
        )
        world = World(
            cluster,
            school.id,
            provider=provider,
            provider_url=provider_url,
            bank=bank,
            bank_port=bank_port,
        )
        for i in range(OPERATORS):
            await make_user(conn, f"op{i}", "settlement", school.id)
        for i in range(STUDENTS):
            number = f"B{i:04d}"
            person, card = await make_cardholder(conn, school.id, number, cash=OPENING)
            purses = await postings.open_purses(conn, school.id, person)
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
        world.fund = await postings.system_account(conn, school.id, "subsidy_fund")
        world.cash_desk = await postings.system_account(conn, school.id, "cash_desk")
        world.clearing = await postings.system_account(conn, school.id, "provider_clearing")
        world.bank_clearing = await postings.system_account(conn, school.id, "bank_clearing")
        await make_user(conn, "cashier", "merchant_manager", school.id, merchant_id=world.merchant)
        # every amount stays under the PIN threshold of one payment; the day's running total
        # would cross the daily one, after which a code payment waits for the phone (202)
        await pay_settings.set_school_rules(conn, ROOT, school.id, {"pin_over_daily": 10**9})
        phone_settings = server_settings(world)
        for i, (number, cash, _) in enumerate(world.students[:PHONES]):
            person = await conn.fetchval("SELECT id FROM persons WHERE number = $1", number)
            user = await make_user(conn, f"stu{i}", "cardholder", school.id, person_id=person)
            actor = await auth.load_actor(conn, user)
            world.phones[cash] = await codes.do_bind_device(
                conn, phone_settings, actor, label=f"phone {i}"
            )
            world.holders[cash] = (person, f"stu{i}")
    finally:
        await conn.close()
    # the same students bound a bank card for 圈存 (the bank verifies name and number)
    pool = await create_pool(cluster.db_url, min_size=1, max_size=2)
    try:
        for i, (person, _) in enumerate(world.holders.values()):
            body = f"62220200{i:010d}"
            pan = body + code_rules.luhn_digit(body)
            assert luhn.is_valid(pan)
            bank.open_account(pan, "张三", 10**9)
            async with pool.acquire() as conn:
                user = await conn.fetchval("SELECT id FROM users WHERE person_id = $1", person)
                holder = await auth.load_actor(conn, user)
            await bank_link.do_bind_card(
                pool, phone_settings, holder, person_id=person, pan=pan, holder_name="张三"
            )
    finally:
        await pool.close()
    return world


def server_settings(world: World) -> Settings:
    """What the served app is configured with (as far as this process needs to know it)."""
    return Settings(
        database_url=world.cluster.db_url,
        master_key=MASTER_KEY,  # type: ignore[arg-type]
        paycode_step_seconds=CODE_STEP,
        provider_url=world.provider_url,
        provider_mch_id=MCH_ID,
        provider_key=PROVIDER_KEY,  # type: ignore[arg-type]
        public_url=world.cluster.base_url,
        bank_port=world.bank_port,
        bank_mac_key=BANK_MAC_KEY,  # type: ignore[arg-type]
        bank_timeout_seconds=1.0,
        run_worker=False,
        _env_file=None,  # type: ignore[call-arg]
    )


def server_env(world: World) -> dict[str, str]:
    return {
        "CAMPUSCARD_PAYCODE_STEP_SECONDS": str(CODE_STEP),
        "CAMPUSCARD_PROVIDER_URL": world.provider_url,
        "CAMPUSCARD_PROVIDER_MCH_ID": MCH_ID,
        "CAMPUSCARD_PROVIDER_KEY": PROVIDER_KEY,
        "CAMPUSCARD_PROVIDER_QUERY_AFTER_SECONDS": "2",
        "CAMPUSCARD_PUBLIC_URL": world.cluster.base_url,
        "CAMPUSCARD_BANK_PORT": str(world.bank_port),
        "CAMPUSCARD_BANK_MAC_KEY": BANK_MAC_KEY,
        "CAMPUSCARD_BANK_TIMEOUT_SECONDS": "1.0",
    }


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
        world.cashier = await login_token(http, "cashier")
        for cash, (_, username) in world.holders.items():
            world.tokens[cash] = await login_token(http, username)


async def login_token(http: httpx.AsyncClient, username: str) -> str:
    r = await http.post(
        "/api/v1/auth/login",
        json={"username": username, "password": PASSWORD, "school": SCHOOL},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def fresh_code(world: World, cash: int) -> str | None:
    """The code the student's phone shows now (a new counter for each payment in one step)."""
    phone = world.phones[cash]
    step = code_rules.time_step(time.time(), phone.step_seconds)
    n = world.codes_used.get((cash, step), 0)
    if n > code_rules.MAX_COUNTER:
        return None  # this phone made all its codes for this step
    world.codes_used[cash, step] = n + 1
    return code_rules.generate(phone.secret, phone.token, step, n, phone.scheme)


def next_op(world: World, rng: random.Random, operator: int, seq: int) -> Op:
    user_id, _ = world.operators[operator]
    client_id = f"bank-{operator}-{seq:05d}"
    number, cash, _ = rng.choice(world.students)
    fen = rng.choice([1, 5, 50, 199, 500, 1_500, 4_000] if rng.random() < 0.5 else [1, 50, 199])
    yuan = f"{fen // 100}.{fen % 100:02d}"
    kind = rng.choices(
        [
            "transfer",
            "deposit",
            "grant",
            "deduct",
            "pay",
            "reverse",
            "refund",
            "codepay",
            "topup",
            "bankload",
        ],
        [3, 2, 2, 1, 5, 2, 2, 4, 2, 2],
    )[0]
    mine = [op for op in world.history if op.kind in ("pay", "codepay") and op.operator == operator]
    if kind == "refund":
        paid = [op for op in mine[-20:] if op.outcome == "ok" and op.response]
        if paid:
            # the cashier signs in at this till and refunds part or all of a recent payment
            target = rng.choice(paid)
            assert target.response is not None
            most = int(Money.parse(target.response["amount"], field="amount").fen)
            back = rng.choice([1, max(1, most // 2), most])
            return Op(
                kind,
                client_id,
                operator,
                "/api/v1/terminal/refunds",
                {
                    "client_id": client_id,
                    "payment_id": target.response["payment_id"],
                    "amount": f"{back // 100}.{back % 100:02d}",
                    "reason": f"bank test {client_id}",
                },
                "",
                {next(iter(target.deltas)): back},
                terminal=operator,
                target=target.client_id,
                bearer=world.cashier,
            )
        kind = "pay"
    if kind == "codepay" and world.phones:
        payer = rng.choice(sorted(world.phones))
        earlier = [op for op in mine[-10:] if op.kind == "codepay" and op.code]
        if earlier and rng.random() < 0.1:
            # the cashier scans the same code again (a second customer, a double scan)
            again = rng.choice(earlier)
            code: str | None = again.code
            payer = next(iter(again.deltas))
        else:
            code = fresh_code(world, payer)
        if code is not None:
            pay_client = f"code-{operator}-{seq:05d}"
            small = rng.choice([1, 50, 199, 500, 1_500])
            return Op(
                kind,
                pay_client,
                operator,
                "/api/v1/terminal/paycode/pay",
                {
                    "client_id": pay_client,
                    "code": code,
                    "amount": f"{small // 100}.{small % 100:02d}",
                },
                "",
                {payer: -small},
                terminal=operator,
                code=code,
            )
        kind = "pay"
    if kind == "bankload" and world.tokens:
        # 圈存: from the student's bound bank card, through the bank link (ISO 8583 over TCP)
        payer = rng.choice(sorted(world.tokens))
        person, _ = world.holders[payer]
        return Op(
            kind,
            client_id,
            operator,
            f"/api/v1/persons/{person}/bank-loads",
            {"client_id": client_id, "amount": yuan},
            "",
            {payer: fen},
            bearer=world.tokens[payer],
        )
    if kind == "topup" and world.tokens:
        payer = rng.choice(sorted(world.tokens))
        person, _ = world.holders[payer]
        return Op(
            kind,
            client_id,
            operator,
            "/api/v1/topups",
            {"client_id": client_id, "person_id": person, "amount": yuan},
            "",
            {payer: fen},
            bearer=world.tokens[payer],
        )
    if kind == "topup":
        kind = "deposit"
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
    if op.bearer is not None:
        headers = headers | {"Authorization": f"Bearer {op.bearer}"}
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
    if r.status_code == 202 and body.get("status") == "pending_approval":
        # money on one person's word: a second operator approves it (four eyes)
        return await approve(http, world, op, body, timeout)
    if r.status_code in (200, 201):
        op.outcome, op.response = "ok", body
        return True
    allowed = REFUSALS.get(op.kind, {"INSUFFICIENT_FUNDS"})
    assert r.status_code in (403, 409, 422) and body["error"]["code"] in allowed, (
        f"{op.kind} {op.body} answered {r.status_code}: {r.text}"
    )
    op.outcome, op.response = "refused", body
    return True


async def approve(
    http: httpx.AsyncClient, world: World, op: Op, proposal: dict[str, Any], timeout: float
) -> bool:
    """The second person decides; a refusal of the work is rejected so it can never move."""
    _, token = world.operators[(op.operator + 1) % len(world.operators)]
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/admin/schools/{SCHOOL}/approvals/{proposal['approval']['id']}"
    try:
        r = await http.post(
            f"{url}/decision", json={"approve": True}, headers=headers, timeout=timeout
        )
        if r.status_code == 409 and r.json()["error"]["code"] == "APPROVAL_NOT_PENDING":
            r = await http.get(url, headers=headers, timeout=timeout)
        if r.status_code in (502, 503, 504):
            return False
        assert r.status_code != 500, f"{op.kind} approval answered 500: {r.text}"
        if r.status_code == 200 and r.json()["status"] == "approved":
            op.outcome, op.response = "ok", proposal
            return True
        if r.status_code == 200 and r.json()["status"] == "rejected":
            op.outcome, op.response = "refused", {"error": {"code": r.json()["note"]}}
            return True
        refusal = r.json()["error"]["code"]
        assert r.status_code in (403, 409, 422) and refusal in REFUSALS.get(
            op.kind, {"INSUFFICIENT_FUNDS"}
        ), f"{op.kind} approval answered {r.status_code}: {r.text}"
        rejected = await http.post(
            f"{url}/decision",
            json={"approve": False, "note": refusal},
            headers=headers,
            timeout=timeout,
        )
        if rejected.status_code != 200:
            return False  # the next try finds it decided, or decides it
        op.outcome, op.response = "refused", {"error": {"code": refusal}}
        return True
    except httpx.HTTPError:
        return False


async def resend_soon(http: httpx.AsyncClient, world: World, op: Op, rng: random.Random) -> None:
    await asyncio.sleep(rng.choice([0.05, 0.3, 0.8]))
    await attempt(http, world, op)


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
            if op.kind == "bankload" and rng.random() < 0.3:
                # the holder taps again while the first 圈存 is still in doubt at the bank: the
                # resend must answer the pending state, never send the load a second time
                await asyncio.gather(
                    attempt(http, world, op, timeout), resend_soon(http, world, op, rng)
                )
            for retry in range(2 if impatient else 8):
                if await attempt(http, world, op, timeout) or stop.is_set():
                    break
                # an impatient till resends at once, often while its first try is still
                # being booked; the others back off
                await asyncio.sleep(0 if impatient else min(0.05 * 2**retry, 1.0))
            if op.kind == "topup" and op.outcome == "ok" and op.response:
                await pay_at_provider(http, op.response["pay_url"], rng)


async def pay_at_provider(http: httpx.AsyncClient, pay_url: str, rng: random.Random) -> None:
    """The student on the provider's cashier page: pays, cancels, or walks away."""
    action = rng.choices(["pay", "cancel", "leave"], [7, 1, 2])[0]
    if action != "leave":
        r = await http.post(pay_url, data={"action": action}, timeout=10)
        assert r.status_code == 200, r.text


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
        assert world.provider is not None
        # the provider's notifies: sometimes doubled, sometimes lost (the query must find them)
        world.provider.notify_mode = rng.choice(["normal", "duplicate", "drop"])
        # the bank: a transfer it books but never answers, one it never sees, a slow answer
        assert world.bank is not None
        world.bank.inject("0200", rng.choice(["drop", "drop_before", "delay:1.5"]))
        # and a slow reversal, so a late approval of a resent load would meet it in flight
        world.bank.inject("0400", rng.choice(["delay:1.5", "drop_before"]))
        try:
            if fault == "kill_worker":
                world.cluster.kill_worker(rng)
            elif fault == "terminate_backends":
                await world.cluster.terminate_backends()
            else:
                await asyncio.to_thread(world.cluster.restart_database)
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as err:
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
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError):
            await asyncio.sleep(0.3)  # the nemesis took the database away; try again


async def querier(world: World, stop: asyncio.Event) -> None:
    """Our side's query of pending provider orders (what the worker's periodic job runs),
    racing the provider's notifies for the same orders."""
    settings = server_settings(world)
    rng = random.Random(5)
    while not stop.is_set():
        await asyncio.sleep(0.3)
        try:
            pool = await create_pool(world.cluster.db_url, min_size=1, max_size=2)
        except TRANSIENT_DB_ERRORS:
            continue
        try:
            pending = await pool.fetch(
                "SELECT id FROM provider_orders WHERE status = 'pending' AND pay_url IS NOT NULL"
            )
            for row in rng.sample(list(pending), min(4, len(pending))):
                await provider_orders.resolve_order(pool, settings, row["id"])
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError, ProviderError, ProviderUnavailable):
            pass  # the nemesis took the database away; next round
        finally:
            pool.terminate()


async def resolve_transfers(world: World) -> None:
    """After the run: the bank-resolve job, until no transfer is open (inquiry, reversal)."""
    settings = server_settings(world)
    pool = await create_pool(world.cluster.db_url, min_size=1, max_size=2)
    try:
        for _ in range(10):
            with contextlib.suppress(BankTimeout):  # the bank answers; a timeout is retried
                await bank_link.resolve_open_transfers(pool, settings, older_than=timedelta(0))
            left = await pool.fetchval(
                "SELECT count(*) FROM bank_transfers WHERE status = ANY($1)",
                list(bank_link.OPEN_STATES),
            )
            if not left:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"{left} bank transfers still open after resolution")
    finally:
        await pool.close()


async def resolve_orders(world: World) -> None:
    """After the run: query every order still pending, once, as the worker would."""
    settings = server_settings(world)
    pool = await create_pool(world.cluster.db_url, min_size=1, max_size=2)
    try:
        for row in await pool.fetch("SELECT id FROM provider_orders WHERE status = 'pending'"):
            await provider_orders.resolve_order(pool, settings, row["id"])
    finally:
        await pool.close()


async def wait_healthy(world: World, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=world.cluster.base_url, timeout=3) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get("/api/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError("the service did not recover:\n" + world.cluster.log_tail())


KINDS = ("pay", "codepay", "reverse", "refund", "topup", "bankload", "transfer", "deposit")


async def covered(world: World) -> bool:
    """Whether the run so far is a real one (the checks after it say the same): enough
    acknowledged operations of every kind, and bank transfers both posted and reversed."""
    ok = [op.kind for op in world.history if op.outcome == "ok"]
    if len(ok) < MIN_OK or any(kind not in ok for kind in KINDS):
        return False
    try:  # the nemesis may be restarting the database: then ask again later
        resolved = await order_resolutions(world)
    except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError):
        # also asyncpg's InternalClientError: a backend killed mid-prepare leaves the protocol
        # mid-operation (a fresh-clone CI run failed on it here)
        return False
    return resolved.get("bank posted", 0) > 0 and resolved.get("bank reversed", 0) > 0


async def run_bank(world: World) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(world, i, stop)) for i in range(OPERATORS)]
    tasks.append(asyncio.create_task(nemesis(world, stop)))
    tasks.append(asyncio.create_task(snapshotter(world, stop)))
    tasks.append(asyncio.create_task(querier(world, stop)))
    started = time.monotonic()
    await asyncio.sleep(DURATION)
    while not await covered(world) and time.monotonic() - started < MAX_DURATION:
        await asyncio.sleep(2)
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
        # POS refunds carry their client id in the reason (refund rows have no client id)
        refunds: dict[str, list[asyncpg.Record]] = {}
        for r in await conn.fetch(
            "SELECT id, reason, amount, payment_id FROM refunds WHERE school_id = $1",
            world.school_id,
        ):
            refunds.setdefault(r["reason"], []).append(r)
        over_refunded = await conn.fetch(
            """SELECT p.id FROM payments p
                WHERE p.school_id = $1 AND (p.refunded > p.amount OR p.refunded <>
                      (SELECT coalesce(sum(amount), 0) FROM refunds f WHERE f.payment_id = p.id))""",
            world.school_id,
        )
        assert not over_refunded, (
            f"payments refunded beyond or beside their refunds: {over_refunded}"
        )
        orders = await conn.fetch(
            """SELECT o.id, o.person_id, o.amount, o.status, o.out_trade_no, o.paid_via,
                      (SELECT count(*) FROM journal_tx j
                        WHERE j.ref = 'provider_order:' || o.id) AS bookings,
                      (SELECT count(*) FROM provider_callbacks c
                        WHERE c.order_id = o.id AND c.outcome = 'credited') AS credited
                 FROM provider_orders o WHERE o.school_id = $1""",
            world.school_id,
        )
        topup_keys = {
            r["key"]: r
            for r in await conn.fetch(
                "SELECT key, status_code, response FROM idempotency_keys WHERE scope LIKE 'topup:%'"
            )
        }
        transfers = await conn.fetch(
            """SELECT t.id, t.person_id, t.amount, t.status, t.rrn, t.direction,
                      (SELECT count(*) FROM journal_tx j
                        WHERE j.ref = 'bank_transfer:' || t.id) AS bookings
                 FROM bank_transfers t WHERE t.school_id = $1""",
            world.school_id,
        )
        load_keys = {
            r["key"]: r
            for r in await conn.fetch(
                "SELECT key, status_code, response FROM idempotency_keys "
                "WHERE scope LIKE 'bank_load:%'"
            )
        }
    finally:
        await conn.close()

    person_purse = {person: cash for cash, (person, _) in world.holders.items()}
    bank_loads: dict[int, int] = {}
    # I6 for the bank link: each 圈存 resolved once — booked exactly when the bank kept it
    assert world.bank is not None
    loaded = 0
    for t in transfers:
        assert t["direction"] == "load", dict(t)
        assert t["bookings"] <= 1, f"I6: transfer {t['id']} booked {t['bookings']} times"
        at_bank = world.bank.txns.get(t["rrn"])
        kept = at_bank is not None and at_bank.reversed_at is None
        assert t["status"] not in bank_link.OPEN_STATES, f"transfer {t['id']} still open"
        assert (t["status"] == "posted") == kept == (t["bookings"] == 1), dict(t)
        if kept:
            loaded += t["amount"]
            purse = person_purse[t["person_id"]]
            bank_loads[purse] = bank_loads.get(purse, 0) + t["amount"]
    assert balances[world.bank_clearing] == -loaded, "bank clearing != loads the bank kept"
    assert world.bank.held() == loaded, "the bank holds other than we booked"
    made_loads = [k for k in load_keys.values() if k["status_code"] == 201]
    assert len(transfers) == len(made_loads), f"{len(transfers)} transfers, {len(made_loads)} asks"
    transfer_by_id = {t["id"]: t for t in transfers}

    # I6: each pending transfer (a top-up order at the provider) resolved at most once, and
    # booked exactly when the provider took the money
    assert world.provider is not None
    paid_total = 0
    for o in orders:
        assert o["bookings"] <= 1, f"I6: order {o['id']} booked {o['bookings']} times"
        assert o["credited"] <= 1, f"I6: order {o['id']} credited by {o['credited']} notifies"
        at_provider = world.provider.orders.get(o["out_trade_no"])
        taken = at_provider is not None and at_provider.state in ("SUCCESS", "REFUND")
        assert (o["status"] in ("paid", "refunded")) == taken == (o["bookings"] == 1), dict(o)
        if taken:
            paid_total += o["amount"]
    assert balances[world.clearing] == -paid_total, "provider clearing != orders paid"
    assert world.provider.held(MCH_ID) == paid_total, "the provider holds other than we booked"
    # one order per top-up request, however often it was retried
    made = [k for k in topup_keys.values() if k["status_code"] == 201]
    assert len(orders) == len(made), f"{len(orders)} orders for {len(made)} top-up requests"
    order_by_id = {o["id"]: o for o in orders}

    # a payment code pays at most once, whoever scans it and however often
    by_code: dict[str, int] = {}
    for op in world.history:
        if op.kind == "codepay" and op.code:
            row = payments.get((world.devices[op.operator].sn, op.client_id))
            by_code[op.code] = by_code.get(op.code, 0) + (row is not None)
    assert all(n <= 1 for n in by_code.values()), "a payment code paid twice"

    expected: dict[int, int] = {cash: OPENING for _, cash, _ in world.students}
    for purse, fen in bank_loads.items():
        expected[purse] += fen
    for o in orders:
        if o["status"] in ("paid", "refunded"):
            purse = person_purse[o["person_id"]]
            expected[purse] += o["amount"]
    booked = 0
    for op in world.history:
        if op.kind == "topup":
            key = topup_keys.get(op.client_id)
            if op.outcome == "ok":
                assert op.response is not None and key is not None, op.client_id
                order = order_by_id[key["response"]["order_id"]]
                assert op.response["id"] == order["id"], (
                    f"top-up {op.client_id} answered another order"
                )
                assert order["amount"] == next(iter(op.deltas.values()))
            elif op.outcome == "refused" and key is not None and key["status_code"] == 201:
                # written, but the provider could not be reached to place it: nobody can pay it
                order = order_by_id[key["response"]["order_id"]]
                assert order["bookings"] == 0, f"refused top-up {op.client_id} was booked"
            continue
        if op.kind == "bankload":
            key = load_keys.get(op.client_id)
            if op.outcome == "ok":
                assert op.response is not None and key is not None, op.client_id
                t = transfer_by_id[key["response"]["transfer_id"]]
                assert op.response["id"] == t["id"], f"圈存 {op.client_id} answered another"
                if op.response["status"] in ("posted", "failed", "reversed"):
                    # what the holder was told is final is what happened
                    assert t["status"] == op.response["status"], (op.response, dict(t))
            continue
        if op.kind == "refund":
            rows = refunds.get(op.body["reason"], [])
            assert len(rows) <= 1, f"refund {op.client_id} applied {len(rows)} times"  # I5, I7
            if op.outcome == "ok":
                assert op.response is not None
                assert len(rows) == 1 and rows[0]["id"] == op.response["refund_id"], (
                    f"acknowledged refund {op.client_id} applied {len(rows)} times"
                )
            elif op.outcome == "refused":
                assert not rows, f"refused refund {op.client_id} was applied"
            for row in rows:
                expected[next(iter(op.deltas))] += row["amount"]
                booked -= row["amount"]
            continue
        if op.kind in ("pay", "codepay"):
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
    assert int(merchant_total or 0) == booked, "the merchant holds payments minus refunds"
    stray = set(refunds) - {op.body.get("reason") for op in world.history if op.kind == "refund"}
    assert not stray, f"refunds nobody asked for: {stray}"

    # I5: a retry of an acknowledged operation replays the identical answer
    # (a code payment refused before the payment engine did not spend the code: asked again,
    # it is judged again, so it is not replayed; docs/terminal-protocol.md, /paycode/pay)
    acknowledged = [
        op
        for op in world.history
        if op.outcome == "ok" or (op.outcome == "refused" and op.kind != "codepay")
    ]
    async with httpx.AsyncClient(base_url=world.cluster.base_url, timeout=10) as http:
        for op in random.Random(7).sample(acknowledged, min(30, len(acknowledged))):
            first = op.response
            assert await attempt(http, world, op, 10.0), op.client_id
            assert first is not None and op.response is not None
            if op.kind in ("topup", "bankload"):  # the same order/transfer; its status moves on
                assert op.response["id"] == first["id"], op.client_id
            elif op.kind != "reverse":
                assert op.response == first, f"{op.kind} {op.client_id} replayed differently"
            else:  # a repeated reversal answers the same result (or the same refusal)
                assert _outcome(op.response) == _outcome(first), op.client_id
        op = next(op for op in acknowledged if op.kind == "transfer")
        _, token = world.operators[op.operator]
        changed = op.body | {"memo": "another request, same id"}
        headers = {"Authorization": f"Bearer {token}"}
        r = await http.post(op.path, json=changed, headers=headers)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def _outcome(body: dict[str, Any]) -> str:
    """A reversal's result ("reversed", "nothing_to_reverse") or its refusal's code."""
    return str(body.get("result") or body.get("error", {}).get("code"))


@pytest.fixture
def cluster_root() -> Iterator[Path]:
    """Not under pytest's tmp_path: another pytest starting on this machine resets
    /tmp/pytest-of-<user> to 0700, and the PostgreSQL user could no longer reach its data
    (initdb or the nemesis's restart then fails)."""
    root = Path(tempfile.mkdtemp(prefix="cc-bank-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_bank_under_faults_loses_nothing_and_applies_everything_once(cluster_root: Path) -> None:
    provider = ProviderSimulator({MCH_ID: PROVIDER_KEY})
    bank = BankSimulator(BANK_MAC_KEY)
    with (
        running_cluster(cluster_root) as cluster,
        serve_in_thread(provider.app) as provider_url,
        bank.running_in_thread() as bank_port,
    ):
        from campuscard.db.runtime import upgrade

        asyncio.run(upgrade(cluster.db_url))
        world = asyncio.run(seed(cluster, provider, provider_url, bank, bank_port))
        cluster.start_server(server_env(world))
        asyncio.run(sign_in(world))

        asyncio.run(run_bank(world))
        was_unknown = asyncio.run(resolve_unknown(world))
        asyncio.run(resolve_orders(world))
        asyncio.run(resolve_transfers(world))
        asyncio.run(check(world, was_unknown))

        # the run must have been a real one: load, every fault, and retries across them
        outcomes = [op.outcome for op in world.history]
        kinds = {
            kind: sum(1 for op in world.history if op.kind == kind and op.outcome == "ok")
            for kind in KINDS
        }
        via = [o for o in provider.orders.values() if o.state == "SUCCESS"]
        resolved = asyncio.run(order_resolutions(world))
        summary = (
            f"{len(outcomes)} operations: {outcomes.count('ok')} ok, "
            f"{outcomes.count('refused')} refused, {len(was_unknown)} timed out then resolved; "
            f"acknowledged by kind {kinds}; {len(via)} top-ups paid at the provider, resolved "
            f"{resolved}; {len(world.snapshots)} snapshots; faults: {world.cluster.events}"
        )
        print(summary)
        assert outcomes.count("ok") >= 50, summary
        assert all(n > 0 for n in kinds.values()), summary
        assert resolved.get("notify", 0) > 0 and resolved.get("query", 0) > 0, summary
        assert resolved.get("bank posted", 0) > 0, summary
        assert resolved.get("bank reversed", 0) > 0, summary  # the bank's faults were met
        assert all(s == 0 for s in world.snapshots), f"I1 broken in a snapshot: {summary}"
        assert len(world.snapshots) >= 10, summary
        for fault in ("SIGKILL worker", "terminated", "restarted PostgreSQL"):
            assert any(e.startswith(fault) for e in world.cluster.events), summary
        assert any(op.attempts > 1 for op in world.history), "no operation needed a retry"
        assert was_unknown, "no client ever gave up; I7 was not exercised"


async def order_resolutions(world: World) -> dict[str, int]:
    """How the paid top-up orders were resolved (by the provider's notify or our query) and
    how the bank transfers ended (posted, or reversed after a lost or late answer)."""
    conn = await connect(world.cluster.db_url)
    try:
        rows = await conn.fetch(
            """SELECT paid_via AS how, count(*) AS n FROM provider_orders
                WHERE paid_via IS NOT NULL GROUP BY paid_via
               UNION ALL
               SELECT 'bank ' || status, count(*) FROM bank_transfers GROUP BY status"""
        )
    finally:
        await conn.close()
    return {r["how"]: r["n"] for r in rows}
