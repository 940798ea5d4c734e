"""Many clients moving money over a handful of accounts at once leave the ledger consistent."""

import asyncio
import random

from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from campuscard.platform.errors import InsufficientFunds
from tests.support import make_school, make_student

CLIENTS = 8
OPS_PER_CLIENT = 300


async def test_concurrent_transfers_keep_every_invariant(pool: PgPool) -> None:
    # given five funded purses and a clearing account
    async with pool.acquire() as conn:
        school = await make_school(conn)
        accounts = []
        for i in range(5):
            person = await make_student(conn, school.id, f"S{i:03d}", cash=5_000)
            accounts.append((await postings.open_purses(conn, school.id, person))["cash"])
        accounts.append(await postings.system_account(conn, school.id, "bank_clearing"))
        start_total = await conn.fetchval("SELECT sum(balance) FROM accounts")
    refused = 0

    async def client(seed: int) -> None:
        nonlocal refused
        rng = random.Random(seed)
        for _ in range(OPS_PER_CLIENT):
            src, dst = rng.sample(accounts, 2)
            fen = rng.randint(1, 3_000)
            async with pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        await postings.post(
                            conn,
                            school_id=school.id,
                            kind="test",
                            legs=postings.legs_move(src, dst, fen),
                        )
                except InsufficientFunds:
                    refused += 1

    # when eight clients run 2,400 transfers at once
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))

    # then every invariant holds and nothing was made or lost
    async with pool.acquire() as conn:
        report = await check_ledger(conn)
        assert report.ok, report.violations
        assert await conn.fetchval("SELECT sum(balance) FROM accounts") == start_total == 0
        booked = await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'test'")
    assert booked + refused == CLIENTS * OPS_PER_CLIENT
    assert booked > CLIENTS * OPS_PER_CLIENT // 2
