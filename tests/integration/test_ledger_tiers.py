"""The ledger check proves the tiers money passes through: held money moves only as its hold
says (T1), an automatic top-up never lifts the settlement-center account above its target (T2),
bank clearing holds what the bank transfers' states say (T3). Each test builds a sound state,
sees the check pass, breaks one tier and sees the check name it."""

from __future__ import annotations

from campuscard.db.pool import Conn
from campuscard.ledger import holds, postings
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.holds_rules import HoldRequest
from tests.support import make_school, make_student


async def _violations(conn: Conn) -> list[str]:
    return [v.split(":")[0] for v in (await check_ledger(conn)).violations]


async def _holder(conn: Conn, cash: int = 100_000) -> tuple[int, int]:
    school = await make_school(conn)
    return school.id, await make_student(conn, school.id, "S001", cash=cash)


async def _bank_card(conn: Conn, school_id: int, person: int) -> int:
    card: int = await conn.fetchval(
        """INSERT INTO bank_cards(school_id, person_id, bank_name, masked_pan, holder_name,
                                  bank_token)
           VALUES ($1, $2, '工商银行', '622202******0128', '张三', 'TK0001') RETURNING id""",
        school_id,
        person,
    )
    return card


async def _transfer(
    conn: Conn, school_id: int, person: int, card: int, n: int, **columns: object
) -> int:
    names = ["school_id", "person_id", "bank_card_id", "rrn", "stan", *columns]
    values = [school_id, person, card, f"{n:012d}", f"{n:06d}", *columns.values()]
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    transfer: int = await conn.fetchval(
        f"INSERT INTO bank_transfers({', '.join(names)}) VALUES ({marks}) RETURNING id", *values
    )
    return transfer


async def test_held_money_moves_only_as_its_hold_says(conn: Conn) -> None:
    # given: two holds on a purse, one captured in part through the ledger
    school_id, person = await _holder(conn)
    payee = await postings.system_account(conn, school_id, "merchant_payable")
    for key in ("hold-0001", "hold-0002"):
        request = HoldRequest(
            hold_id=key,
            person_id=person,
            amount=3_000,
            kind="shower",
            owner_kind="device_session",
            owner_id=f"shower-7:{key}",
            payee_account_id=payee,
        )
        assert (await holds.place_hold(conn, school_id, request)).ok
    assert (await holds.capture_hold(conn, school_id, "hold-0001", 1_000)).ok
    assert await _violations(conn) == []
    # when: the other hold is marked captured, naming the first one's booking of 10.00
    await conn.execute(
        """UPDATE holds SET state = 'captured', captured = 3000, resolved_at = now(),
                  tx_id = (SELECT tx_id FROM holds WHERE hold_key = 'hold-0001')
            WHERE hold_key = 'hold-0002'"""
    )
    # then
    assert await _violations(conn) == ["T1 held money moved other than its hold says"]


async def test_an_automatic_top_up_never_lifts_the_account_above_its_target(conn: Conn) -> None:
    # given: an automatic load of 60.00 that took the purse from 1000.00 to 1060.00
    school_id, person = await _holder(conn)
    card = await _bank_card(conn, school_id, person)
    clearing = await postings.system_account(conn, school_id, "bank_clearing")
    cash = (await postings.open_purses(conn, school_id, person))["cash"]
    async with conn.transaction():
        tx = await postings.post(
            conn,
            school_id=school_id,
            kind="bank_load",
            legs=postings.legs_move(clearing, cash, 6_000),
        )
        transfer = await _transfer(
            conn,
            school_id,
            person,
            card,
            1,
            direction="load",
            origin="auto",
            amount=6_000,
            status="posted",
            tx_id=tx,
            target=106_000,
        )
    assert await _violations(conn) == []
    # when: its target was below where it took the account
    await conn.execute("UPDATE bank_transfers SET target = 105_999 WHERE id = $1", transfer)
    # then
    assert await _violations(conn) == [
        "T2 an automatic top-up lifted the settlement-center account above its target"
    ]


async def test_bank_clearing_holds_what_the_transfers_say(conn: Conn) -> None:
    # given: a payout of 20.00 held in bank clearing while the bank has not answered
    school_id, person = await _holder(conn)
    card = await _bank_card(conn, school_id, person)
    clearing = await postings.system_account(conn, school_id, "bank_clearing")
    cash = (await postings.open_purses(conn, school_id, person))["cash"]
    async with conn.transaction():
        hold = await postings.post(
            conn,
            school_id=school_id,
            kind="bank_payout",
            legs=postings.legs_move(cash, clearing, 2_000),
        )
        payout = await _transfer(
            conn,
            school_id,
            person,
            card,
            1,
            direction="payout",
            origin="holder",
            amount=2_000,
            status="unknown",
            hold_tx_id=hold,
        )
    assert await _violations(conn) == []
    # when: the payout is marked reversed, but its money was never released to the purse
    await conn.execute("UPDATE bank_transfers SET status = 'reversed' WHERE id = $1", payout)
    # and a load is marked posted that never booked anything
    await _transfer(
        conn, school_id, person, card, 2, direction="load", origin="holder", amount=500,
        status="posted",
    )  # fmt: skip
    # then: both named
    violations = (await check_ledger(conn)).violations
    assert [v.split(":")[0] for v in violations] == [
        "T3 bank clearing differs from what the bank transfers' states say"
    ] * 2
    assert any("payout reversed moved 2000" in v for v in violations)
    assert any("load posted moved 0" in v and "expected -500" in v for v in violations)
