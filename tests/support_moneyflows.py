"""Builders for the money-in-and-out tests: operators, holders with cards, simulators."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from campuscard.adapters.bank.simulator import BankSimulator
from campuscard.adapters.provider.simulator import ProviderSimulator
from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.embedded import free_port
from campuscard.moneyflows import bank_link
from campuscard.platform.actors import Actor
from tests.servers import serve_in_thread
from tests.support import login, make_school, make_student, make_user

_ids = itertools.count(1)


def cid(prefix: str = "op") -> str:
    """A fresh client id."""
    return f"{prefix}-{next(_ids):06d}-client"


async def add_card(
    conn: asyncpg.Connection[Any], school_id: int, person_id: int, number: str
) -> None:
    await conn.execute(
        "INSERT INTO cards(school_id, person_id, number, state) VALUES ($1, $2, $3, 'active')",
        school_id,
        person_id,
        number,
    )


async def counter_setup(
    pool: asyncpg.Pool[Any], client: httpx.AsyncClient, *, cash: int = 0
) -> tuple[dict[str, str], int, int]:
    """A school with one settlement operator (signed in) and one student; returns
    (operator headers, school id, student person id). The student number is S001."""
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "cashier", "settlement", school.id)
        person = await make_student(conn, school.id, "S001", cash=cash, name="李雷")
        await add_card(conn, school.id, person, "20260001")
    return await login(client, "cashier", "TST"), school.id, person


async def balances(pool: asyncpg.Pool[Any], person_id: int) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT purse, balance FROM accounts WHERE person_id = $1 AND kind = 'purse'", person_id
    )
    return {r["purse"]: r["balance"] for r in rows}


async def system_balance(pool: asyncpg.Pool[Any], school_id: int, code: str) -> int:
    value: int = await pool.fetchval(
        "SELECT balance FROM accounts WHERE school_id = $1 AND system_code = $2", school_id, code
    )
    return value


PROVIDER_KEY = "test-provider-key-0123456789"
MCH_ID = "1900000109"


@contextmanager
def provider_world(settings: Settings) -> Iterator[tuple[Settings, ProviderSimulator, str]]:
    """The provider simulator and CampusCard itself on loopback ports, wired to each other.
    Yields (settings pointing at both, the simulator, CampusCard's base URL)."""
    sim = ProviderSimulator({MCH_ID: PROVIDER_KEY})
    with serve_in_thread(sim.app) as sim_url:
        port = free_port()
        wired = settings.model_copy(
            update={
                "provider_url": sim_url,
                "provider_mch_id": MCH_ID,
                "provider_key": SecretStr(PROVIDER_KEY),
                "public_url": f"http://127.0.0.1:{port}",
                "provider_query_after_seconds": 0,
            }
        )
        with serve_in_thread(create_app(wired), port=port) as app_url:
            yield wired, sim, app_url


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


BANK_MAC_KEY = "test-bank-mac-key-0123456789"
PAN = "6222021234567890128"  # passes the Luhn check


@contextmanager
def bank_world(settings: Settings, **overrides: Any) -> Iterator[tuple[Settings, BankSimulator]]:
    """The bank simulator on a loopback port and settings that point at it (short timeout)."""
    sim = BankSimulator(BANK_MAC_KEY)
    with sim.running_in_thread() as port:
        wired = settings.model_copy(
            update={
                "bank_port": port,
                "bank_mac_key": SecretStr(BANK_MAC_KEY),
                "bank_timeout_seconds": 0.5,
                **overrides,
            }
        )
        yield wired, sim


async def holder_with_card(
    pool: asyncpg.Pool[Any],
    settings: Settings,
    sim: BankSimulator,
    *,
    cash: int = 0,
    bank_balance: int = 100_000,
    number: str = "S001",
    name: str = "李雷",
    school_code: str = "TST",
    pan: str = PAN,
) -> tuple[int, int]:
    """A student with a bank account at the simulator and that card bound; (school, person)."""
    async with pool.acquire() as conn:
        school_id = await conn.fetchval("SELECT id FROM schools WHERE code = $1", school_code)
        if school_id is None:
            school_id = (await make_school(conn, school_code)).id
        person = await make_student(conn, school_id, number, cash=cash, name=name)
    await bind_bank_card(pool, settings, sim, person, name, pan=pan, balance=bank_balance)
    return school_id, person


async def bind_bank_card(
    pool: asyncpg.Pool[Any],
    settings: Settings,
    sim: BankSimulator,
    person: int,
    name: str,
    *,
    pan: str = PAN,
    balance: int = 0,
) -> None:
    """An account at the simulator in ``name`` and its card bound by the person, as the phone
    binds it (verified with the bank)."""
    sim.open_account(pan, name, balance)
    holder = Actor(name="holder", user_id=None, person_id=person)
    await bank_link.do_bind_card(
        pool, settings, holder, person_id=person, pan=pan, holder_name=name
    )


@asynccontextmanager
async def api_client(
    settings: Settings, pool: asyncpg.Pool[Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client on an app built with ``settings`` (e.g. wired to a simulator)."""
    app = create_app(settings, pool=pool)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@asynccontextmanager
async def bank_world_async(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[Settings, BankSimulator]]:
    with bank_world(settings, **overrides) as world:
        yield world


async def second_person(
    pool: asyncpg.Pool[Any], client: httpx.AsyncClient, school_id: int
) -> dict[str, str]:
    """A second settlement operator ('supervisor'), signed in: the four eyes on money."""
    async with pool.acquire() as conn:
        code = await conn.fetchval("SELECT code FROM schools WHERE id = $1", school_id)
        exists = await conn.fetchval(
            "SELECT true FROM users WHERE username = 'supervisor' AND school_id = $1", school_id
        )
        if not exists:
            await make_user(conn, "supervisor", "settlement", school_id)
    return await login(client, "supervisor", code)


async def approve_pending(
    pool: asyncpg.Pool[Any], client: httpx.AsyncClient, school_id: int
) -> list[dict[str, Any]]:
    """The second person approves every pending proposal of the school, oldest first."""
    headers = await second_person(pool, client, school_id)
    code = await pool.fetchval("SELECT code FROM schools WHERE id = $1", school_id)
    ids = [
        r["id"]
        for r in await pool.fetch(
            "SELECT id FROM approvals WHERE school_id = $1 AND status = 'pending' ORDER BY id",
            school_id,
        )
    ]
    decided = []
    for approval_id in ids:
        r = await client.post(
            f"/api/v1/admin/schools/{code}/approvals/{approval_id}/decision",
            json={"approve": True},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        decided.append(r.json())
    return decided


async def open_drawer(
    pool: asyncpg.Pool[Any],
    client: httpx.AsyncClient,
    headers: dict[str, str],
    school_id: int,
    opening_float: str,
) -> httpx.Response:
    """Open the operator's drawer counting ``opening_float``; a float that differs from the last
    close is approved by a second person, as at a real counter."""
    code = await pool.fetchval("SELECT code FROM schools WHERE id = $1", school_id)
    r = await client.post(
        f"/api/v1/counter/{code}/drawer/open",
        json={"opening_float": opening_float},
        headers=headers,
    )
    if r.status_code == 201 and r.json()["float_approval"] is not None:
        await approve_pending(pool, client, school_id)
    return r
