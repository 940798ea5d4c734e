"""The database itself refuses what would break the ledger, even for raw SQL."""

import asyncpg
import pytest

from campuscard.db.pool import Conn
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from campuscard.platform.errors import InsufficientFunds
from tests.support import make_school, make_student


async def _setup(conn: Conn) -> tuple[int, dict[str, int], int]:
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S001", cash=1000)
    purses = await postings.open_purses(conn, school.id, person)
    bank = await postings.system_account(conn, school.id, "bank_clearing")
    return school.id, purses, bank


async def _raw_tx(conn: Conn, school_id: int, legs: list[tuple[int, int]]) -> int:
    """A journal transaction written with raw SQL: its row, then (account, amount) postings."""
    tx: int = await conn.fetchval(
        "INSERT INTO journal_tx(school_id, kind, business_date) "
        "VALUES ($1, 'raw', current_date) RETURNING id",
        school_id,
    )
    await _raw_postings(conn, tx, legs)
    return tx


async def _raw_postings(conn: Conn, tx: int, legs: list[tuple[int, int]]) -> None:
    await conn.executemany(
        "INSERT INTO postings(school_id, tx_id, account_id, amount) "
        "SELECT school_id, id, $2, $3 FROM journal_tx WHERE id = $1",
        [(tx, account, amount) for account, amount in legs],
    )


async def _post_moves(
    conn: Conn, school_id: int, moves: list[tuple[str, int, int, int]]
) -> list[int]:
    """``post_many`` of (kind, source, target, fen) moves, in a transaction of their own."""
    async with conn.transaction():
        return await postings.post_many(
            conn,
            school_id=school_id,
            bookings=[postings.Booking(k, postings.legs_move(a, b, fen)) for k, a, b, fen in moves],
        )


async def _cash_untouched(conn: Conn, purses: dict[str, int]) -> None:
    assert (await check_ledger(conn)).ok
    assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", purses["cash"]) == 1000


async def test_unbalanced_transaction_is_refused_at_commit_even_by_raw_sql(conn: Conn) -> None:
    school_id, purses, bank = await _setup(conn)
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        async with conn.transaction():
            await _raw_tx(conn, school_id, [(purses["cash"], 500), (bank, -400)])
    await _cash_untouched(conn, purses)


async def test_posting_added_after_an_early_check_is_checked_again(conn: Conn) -> None:
    # the commit check runs once per journal transaction; one forced early (SET CONSTRAINTS
    # IMMEDIATE) must not let a later, unbalancing posting of the same transaction through
    school_id, purses, bank = await _setup(conn)
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        async with conn.transaction():
            tx = await _raw_tx(conn, school_id, [(purses["cash"], 500), (bank, -500)])
            await conn.execute("SET CONSTRAINTS postings_balanced IMMEDIATE")
            await _raw_postings(conn, tx, [(purses["cash"], 100)])
    await _cash_untouched(conn, purses)


async def test_each_journal_transaction_of_one_database_transaction_is_checked(
    conn: Conn,
) -> None:
    # a balanced journal transaction checked first does not excuse the next, unbalanced one
    school_id, purses, bank = await _setup(conn)
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        async with conn.transaction():
            await _raw_tx(conn, school_id, [(purses["cash"], 300), (bank, -300)])
            await _raw_tx(conn, school_id, [(purses["cash"], 200), (bank, -100)])
    await _cash_untouched(conn, purses)


async def test_purse_cannot_go_negative_by_raw_sql(conn: Conn) -> None:
    school_id, purses, bank = await _setup(conn)
    with pytest.raises(asyncpg.CheckViolationError, match="accounts_floor"):
        async with conn.transaction():
            await conn.execute(
                "SELECT cc_post($1, 'raw', NULL, '', 'x', $2::bigint[], $3::bigint[])",
                school_id,
                [purses["cash"], bank],
                [-1001, 1001],
            )
    with pytest.raises(InsufficientFunds):
        async with conn.transaction():
            await postings.post(
                conn,
                school_id=school_id,
                kind="t",
                legs=postings.legs_move(purses["cash"], bank, 1001),
            )


async def test_balance_cannot_be_set_directly(conn: Conn) -> None:
    _, purses, _ = await _setup(conn)
    with pytest.raises(asyncpg.RestrictViolationError, match="only by inserting postings"):
        await conn.execute("UPDATE accounts SET balance = 999999 WHERE id = $1", purses["cash"])


async def test_postings_and_transactions_cannot_be_updated_or_deleted(conn: Conn) -> None:
    await _setup(conn)
    for sql in (
        "UPDATE postings SET amount = amount * 2",
        "DELETE FROM postings",
        "TRUNCATE postings CASCADE",
        "UPDATE journal_tx SET memo = 'changed'",
        "DELETE FROM journal_tx",
    ):
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute(sql)


async def test_new_account_cannot_start_with_money(conn: Conn) -> None:
    school_id, _, _ = await _setup(conn)
    with pytest.raises(asyncpg.CheckViolationError, match="starts at balance 0"):
        await conn.execute(
            "INSERT INTO accounts(school_id, kind, system_code, balance) VALUES ($1, 'system', 'x', 5)",
            school_id,
        )


async def test_transaction_cannot_span_schools(conn: Conn) -> None:
    school_id, purses, _ = await _setup(conn)
    other = await make_school(conn, "OTH")
    other_bank = await postings.system_account(conn, other.id, "bank_clearing")
    # a posting's account is in the posting's school (the composite foreign key, decision 0231)
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="postings_account_id_fkey"):
        async with conn.transaction():
            await postings.post(
                conn,
                school_id=school_id,
                kind="t",
                legs=postings.legs_move(purses["cash"], other_bank, 100),
            )


async def test_posting_records_balance_after_and_version(conn: Conn) -> None:
    school_id, purses, bank = await _setup(conn)
    async with conn.transaction():
        await postings.post(
            conn, school_id=school_id, kind="t", legs=postings.legs_move(purses["cash"], bank, 300)
        )
    rows = await conn.fetch(
        "SELECT amount, balance_after, version FROM postings WHERE account_id = $1 ORDER BY version",
        purses["cash"],
    )
    assert [tuple(r) for r in rows] == [(1000, 1000, 1), (-300, 700, 2)]
    assert (await check_ledger(conn)).ok


async def test_idempotency_keys_are_unique(conn: Conn) -> None:
    await conn.execute(
        "INSERT INTO idempotency_keys(school_id, scope, key, request_hash) "
        "VALUES (0, 't', 'abcdefgh', 'h')"
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "INSERT INTO idempotency_keys(school_id, scope, key, request_hash) "
            "VALUES (0, 't', 'abcdefgh', 'h2')"
        )


async def test_post_many_books_each_transaction_as_post_does_or_none(conn: Conn) -> None:
    # several journal transactions in one round trip: each as post books it, in order; one
    # that would take a purse below its floor refuses them all
    school_id, purses, bank = await _setup(conn)
    cash = purses["cash"]
    async with conn.transaction():
        ids = await postings.post_many(
            conn,
            school_id=school_id,
            bookings=[
                postings.Booking("model", postings.legs_move(cash, bank, 300), ref="a", memo="m"),
                postings.Booking("model", postings.legs_move(bank, cash, 50), meta={"k": 1}),
                postings.Booking("model", postings.legs_move(cash, bank, 100), actor="t1"),
            ],
        )
    assert ids == sorted(ids) and len(set(ids)) == 3
    rows = await conn.fetch(
        "SELECT id, ref, memo, actor, meta FROM journal_tx WHERE id = ANY($1) ORDER BY id", ids
    )
    assert [(r["ref"], r["memo"], r["actor"]) for r in rows] == [
        ("a", "m", "system"),
        (None, "", "system"),
        (None, "", "t1"),
    ]
    assert rows[1]["meta"] == {"k": 1}
    after = [
        r["balance_after"]
        for r in await conn.fetch(
            "SELECT balance_after FROM postings WHERE account_id = $1 ORDER BY tx_id", cash
        )
    ]
    assert after[-3:] == [700, 750, 650]
    with pytest.raises(InsufficientFunds):
        await _post_moves(conn, school_id, [("model", cash, bank, 600), ("model", cash, bank, 60)])
    assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", cash) == 650
    assert (await check_ledger(conn)).ok


async def test_post_many_moves_each_account_once_with_every_posting_versioned(conn: Conn) -> None:
    # set-based (cc_post_many): accounts shared by several bookings get one update each, yet
    # every posting has its own version and running balance, as one cc_post per booking gives
    school_id, purses, bank = await _setup(conn)
    cash, subsidy = purses["cash"], purses["subsidy"]
    bal, before = await conn.fetchrow("SELECT balance, version FROM accounts WHERE id = $1", bank)
    async with conn.transaction():
        await postings.post_many(
            conn,
            school_id=school_id,
            bookings=[
                postings.Booking("model", postings.legs_move(cash, bank, 100)),
                postings.Booking("model", postings.legs_move(bank, subsidy, 40)),
                # legs on one account net, as cc_post nets them; a leg netting to 0 is dropped
                postings.Booking(
                    "model",
                    [
                        postings.Leg(cash, -30),
                        postings.Leg(cash, -20),
                        postings.Leg(subsidy, 5),
                        postings.Leg(subsidy, -5),
                        postings.Leg(bank, 50),
                    ],
                ),
            ],
        )
        # the switch that let the one update through is off again: a direct change is refused
        with pytest.raises(asyncpg.RestrictViolationError, match="only by inserting postings"):
            async with conn.transaction():
                await conn.execute("UPDATE accounts SET balance = 0 WHERE id = $1", cash)
    rows = {
        acc: [
            (r["amount"], r["balance_after"], r["version"])
            for r in await conn.fetch(
                "SELECT amount, balance_after, version FROM postings WHERE account_id = $1 "
                "ORDER BY id",
                acc,
            )
        ]
        for acc in (cash, subsidy, bank)
    }
    assert rows[cash][-2:] == [(-100, 900, 2), (-50, 850, 3)]
    assert rows[subsidy] == [(40, 40, 1)]
    assert rows[bank] == [
        (100, bal + 100, before + 1),
        (-40, bal + 60, before + 2),
        (50, bal + 110, before + 3),
    ]
    assert await conn.fetchval("SELECT version FROM accounts WHERE id = $1", bank) == before + 3
    assert (await check_ledger(conn)).ok


async def test_post_many_keeps_the_floor_after_every_booking_and_the_credit_line_rule(
    conn: Conn,
) -> None:
    school_id, purses, bank = await _setup(conn)
    cash = purses["cash"]
    # the second booking would bring the purse back above its floor: the first still may not
    # take it below, as with one cc_post each
    with pytest.raises(InsufficientFunds):
        await _post_moves(
            conn, school_id, [("model", cash, bank, 1200), ("model", bank, cash, 500)]
        )
    await _cash_untouched(conn, purses)
    # a credit line (floor below zero) pays bills, nothing else
    await conn.execute("UPDATE accounts SET floor = -500 WHERE id = $1", cash)
    with pytest.raises(InsufficientFunds):
        await _post_moves(conn, school_id, [("withdrawal", cash, bank, 1100)])
    await _post_moves(conn, school_id, [("bill_payment", cash, bank, 1100)])
    assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", cash) == -100
    assert (await check_ledger(conn)).ok


async def test_post_many_refuses_a_booking_that_does_not_balance_or_has_one_leg(
    conn: Conn,
) -> None:
    school_id, purses, bank = await _setup(conn)
    call = (
        "SELECT cc_post_many($1, '{model,model}', '{NULL,NULL}', '{\"\",\"\"}', "
        "'{system,system}', '{\"{}\",\"{}\"}', $2::int[], $3::bigint[], $4::bigint[])"
    )
    for numbers, accounts, amounts in (
        ([1, 1, 2, 2], [purses["cash"], bank, purses["cash"], bank], [-100, 100, -100, 90]),
        ([1, 1, 2], [purses["cash"], bank, bank], [-100, 100, 0]),
    ):
        with pytest.raises(asyncpg.CheckViolationError, match="booking 2 needs two legs"):
            async with conn.transaction():
                await conn.fetchval(call, school_id, numbers, accounts, amounts)
    await _cash_untouched(conn, purses)


async def test_a_raw_posting_that_names_its_version_still_moves_its_account(conn: Conn) -> None:
    # only cc_post_many's switch lets a posting's own version stand; raw SQL is applied as ever
    school_id, purses, bank = await _setup(conn)
    async with conn.transaction():
        tx = await conn.fetchval(
            "INSERT INTO journal_tx(school_id, kind, business_date) "
            "VALUES ($1, 'raw', current_date) RETURNING id",
            school_id,
        )
        await conn.executemany(
            "INSERT INTO postings(school_id, tx_id, account_id, amount, balance_after, version) "
            "VALUES ($1, $2, $3, $4, 0, 99)",
            [(school_id, tx, purses["cash"], -100), (school_id, tx, bank, 100)],
        )
    row = await conn.fetchrow(
        "SELECT balance_after, version FROM postings WHERE tx_id = $1 AND account_id = $2",
        tx,
        purses["cash"],
    )
    assert (row["balance_after"], row["version"]) == (900, 2)
    assert (await check_ledger(conn)).ok


async def test_a_posting_added_to_a_post_many_transaction_is_checked_at_commit(
    conn: Conn,
) -> None:
    # cc_post_many checks its own bookings and queues no commit check for them; a posting
    # written into one of them afterwards is checked with all of its siblings
    school_id, purses, bank = await _setup(conn)
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        async with conn.transaction():
            ids = await postings.post_many(
                conn,
                school_id=school_id,
                bookings=[postings.Booking("model", postings.legs_move(purses["cash"], bank, 100))],
            )
            await _raw_postings(conn, ids[0], [(bank, 1)])
    await _cash_untouched(conn, purses)
