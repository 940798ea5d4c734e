"""The unit of work (``campuscard.db.tx``) and an idempotent use case's named work."""

from __future__ import annotations

import pytest

from campuscard.db.pool import PgPool
from campuscard.db.tx import (
    TransactionNested,
    Tx,
    owns_transaction,
    require_idle,
    savepoint,
    transaction,
)
from campuscard.ledger import adjustments, postings
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.money import Money
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound
from tests.support import make_school, make_student


async def _probe(pool: PgPool) -> None:
    await pool.execute("CREATE TABLE tx_probe(v text)")


async def _values(pool: PgPool) -> list[str]:
    return [r["v"] for r in await pool.fetch("SELECT v FROM tx_probe ORDER BY v")]


@owns_transaction
async def _write(tx: Tx, value: str, *, fail: bool = False) -> str:
    await tx.execute("INSERT INTO tx_probe VALUES ($1)", value)
    if fail:
        raise NotFound("refused after writing")
    return value


async def test_an_owner_commits_on_success_and_rolls_back_on_a_refusal(pool: PgPool) -> None:
    # given
    await _probe(pool)
    # when
    assert await _write(pool, "kept") == "kept"
    with pytest.raises(NotFound):
        await _write(pool, "undone", fail=True)
    async with pool.acquire() as conn:
        await _write(conn, "on an idle connection")
    # then
    assert await _values(pool) == ["kept", "on an idle connection"]


async def test_a_connection_in_a_transaction_is_refused_not_nested(pool: PgPool) -> None:
    await _probe(pool)
    async with transaction(pool) as tx:
        with pytest.raises(TransactionNested):
            await _write(tx, "nested")
        with pytest.raises(TransactionNested):
            require_idle(tx)
        # the caller's transaction is still usable: nothing was sent to the server
        assert await _write.in_tx(tx, "joined") == "joined"
    assert await _values(pool) == ["joined"]


async def test_a_savepoint_undoes_its_work_and_the_transaction_goes_on(pool: PgPool) -> None:
    await _probe(pool)
    async with transaction(pool) as tx:
        await tx.execute("INSERT INTO tx_probe VALUES ('before')")
        with pytest.raises(NotFound):
            async with savepoint(tx):
                await _write.in_tx(tx, "undone", fail=True)
        await tx.execute("INSERT INTO tx_probe VALUES ('after')")
    assert await _values(pool) == ["after", "before"]


async def test_a_rolled_back_transaction_leaves_nothing(pool: PgPool) -> None:
    await _probe(pool)
    with pytest.raises(RuntimeError):
        async with transaction(pool) as tx:
            await tx.execute("INSERT INTO tx_probe VALUES ('lost')")
            raise RuntimeError("boom")
    assert await _values(pool) == []


async def test_the_adjustment_work_books_alone_in_the_callers_transaction(pool: PgPool) -> None:
    # given: a student with 100.00 and the school's bank clearing account
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person = await make_student(conn, school.id, "S1", cash=10_000)
        purse = (await postings.open_purses(conn, school.id, person))["cash"]
        bank = await postings.system_account(conn, school.id, "bank_clearing")
    actor = Actor(name="settle")
    payload = {"from_account": purse, "to_account": bank, "amount": 1230, "memo": "why"}

    # when: the named work runs in a transaction of the test's own, once refused, once booked
    with pytest.raises(NotFound):
        async with transaction(pool) as tx:
            await adjustments._book_adjustment(
                tx,
                actor=actor,
                school_id=school.id,
                client_id="adj-named-0",
                from_account=purse,
                to_account=999_999_999,
                amount=Money(1230),
                memo="why",
                payload=payload,
            )
    async with transaction(pool) as tx:
        answer = await adjustments._book_adjustment(
            tx,
            actor=actor,
            school_id=school.id,
            client_id="adj-named-1",
            from_account=purse,
            to_account=bank,
            amount=Money(1230),
            memo="why",
            payload=payload,
        )

    # then: one adjustment, the balances it reports, and a ledger that adds up
    assert (answer["amount"], answer["from_balance"]) == ("12.30", "87.70")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM journal_tx WHERE kind = 'adjustment'") == 1
        assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0
        assert (await check_ledger(conn)).ok
