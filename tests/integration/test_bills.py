"""Bills end to end on the ledger: a partial payment from the card, instalments and late fees,
a bank transfer matched by the student's reference when the statement is imported, an
overpayment back to the card, a waiver approved by a second person, an arrears hold placed and
lifted (and card replacement refused meanwhile), a parent paying online."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from campuscard.bills import (
    adjustments,
    arrears,
    billing,
    holds,
    payments,
    queries,
    rules,
    sheets,
)
from campuscard.config import Settings
from campuscard.issuing import import_rules
from campuscard.ledger import checks
from campuscard.ledger.money import Money
from campuscard.moneyflows import provider_orders
from campuscard.platform import four_eyes
from campuscard.platform.errors import DomainError, ValidationFailed
from campuscard.settlement import reconciliation
from tests.integration.test_reconciliation import bank_file
from tests.support import login, make_user
from tests.support_bills import TERM, bill_of, bills_world, holder_actor, tuition_and_dorm
from tests.support_moneyflows import balances, cid


async def _owed(pool: asyncpg.Pool[Any], school_id: int, bill_id: int) -> tuple[int, int, str]:
    row = await pool.fetchrow(
        "SELECT total, paid, status FROM bills WHERE school_id = $1 AND id = $2",
        school_id,
        bill_id,
    )
    assert row is not None
    return row["total"], row["paid"], row["status"]


async def test_partial_payment_from_the_card_with_numbered_receipts(
    pool: asyncpg.Pool[Any],
) -> None:
    # given a student with 4,000 yuan on the card and a 6,200 yuan bill
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=1, cash=400_000)
        summary = await tuition_and_dorm(conn, w, due=date(2026, 9, 1))
        uid = await make_user(conn, "s001", "cardholder", w.school_id, person_id=w.students[0])
    assert summary["bills_created"] == 1 and summary["lines_added"] == 2
    student = holder_actor(w.school_id, uid, w.students[0], "s001")
    bill_id = await bill_of(pool, w.school_id, w.students[0])
    assert await _owed(pool, w.school_id, bill_id) == (620_000, 0, "open")

    # when they pay 3,000 now and the same request is sent again
    key = cid("pay")
    first = await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("3000.00"), client_id=key
    )
    again = await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("3000.00"), client_id=key
    )

    # then one payment, with a receipt, is booked; the bill still asks for 3,200
    assert first.status == 201 and again.replayed and again.body == first.body
    assert first.body["receipt_no"] == "TST-2026-000001" or first.body["receipt_no"].startswith(
        "TST-"
    )
    assert await _owed(pool, w.school_id, bill_id) == (620_000, 300_000, "open")
    assert (await balances(pool, w.students[0]))["cash"] == 100_000
    detail = await queries.bill_detail(pool, w.school_id, bill_id)
    # the tuition line (first by due date and id) took the money
    assert [(ln["name"], ln["paid"]) for ln in detail["lines"]] == [
        ("学费", "3000.00"),
        ("住宿费", "0.00"),
    ]
    receipt = await queries.receipt(pool, w.school_id, first.body["receipt_no"])
    assert receipt["lines"] == [{"name": "学费", "kind": "tuition", "amount": "3000.00"}]

    # more than the bill asks, or more than the card holds, is refused and changes nothing
    over = await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("3200.01"), client_id=cid("pay")
    )
    assert over.status == 422 and over.body["error"]["code"] == "AMOUNT_ABOVE_DUE"
    poor = await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("3200.00"), client_id=cid("pay")
    )
    assert poor.status == 409 and poor.body["error"]["field"] == "amount"
    second = await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("1000.00"), client_id=cid("pay")
    )
    assert second.status == 201
    n1 = int(first.body["receipt_no"].rsplit("-", 1)[1])
    assert int(second.body["receipt_no"].rsplit("-", 1)[1]) == n1 + 1
    async with pool.acquire() as conn:
        assert (await checks.check_ledger(conn)).ok


async def test_instalments_and_late_fees_charged_once_per_late_instalment(
    pool: asyncpg.Pool[Any],
) -> None:
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=1, cash=1_000_000)
        await tuition_and_dorm(conn, w, due=date(2026, 9, 1), tuition="4800.00")
        await conn.execute(
            "UPDATE schools SET settings = settings || $2 WHERE id = $1",
            w.school_id,
            {
                "bills": {
                    "late_fee": {"fixed": "20.00", "percent": "1", "grace_days": 5, "cap": "200.00"}
                }
            },
        )
        uid = await make_user(conn, "s001", "cardholder", w.school_id, person_id=w.students[0])
    student = holder_actor(w.school_id, uid, w.students[0], "s001")
    bill_id = await bill_of(pool, w.school_id, w.students[0])

    # given the 6,000 yuan bill split into three instalments a month apart
    plan = await billing.do_set_plan(
        pool,
        w.finance,
        w.school_id,
        bill_id,
        instalments=3,
        first_due=date(2026, 9, 1),
        every_days=30,
    )
    assert [i["amount"] for i in plan["instalments"]] == ["2000.00", "2000.00", "2000.00"]
    # and the first instalment paid on time
    paid = await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("2000.00"), client_id=cid("pay")
    )
    assert paid.status == 201

    # within the grace period nothing is charged
    quiet = await arrears.run_school(pool, w.school_id, today=date(2026, 10, 5))
    assert quiet.late_fees == 0
    # after it, the second instalment is late: 20 + 1% of 2,000 = 40 yuan, once
    first = await arrears.run_school(pool, w.school_id, today=date(2026, 10, 8))
    again = await arrears.run_school(pool, w.school_id, today=date(2026, 10, 9))
    assert (first.late_fees, first.late_fee_amount, again.late_fees) == (1, 4_000, 0)
    assert await _owed(pool, w.school_id, bill_id) == (604_000, 200_000, "open")

    # a payment pays the late fee first, then the instalment
    await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("2040.00"), client_id=cid("pay")
    )
    detail = await queries.bill_detail(pool, w.school_id, bill_id)
    fee_line = next(ln for ln in detail["lines"] if ln["kind"] == "late_fee")
    assert fee_line["owed"] == "0.00"
    # the third instalment, late too, is charged its own fee; the second is not charged again
    third = await arrears.run_school(pool, w.school_id, today=date(2026, 11, 10))
    assert (third.late_fees, third.late_fee_amount) == (1, 4_000)
    assert [
        i["late_fee_charged"]
        for i in (await queries.bill_detail(pool, w.school_id, bill_id))["instalments"]
    ] == [False, True, True]


async def test_a_bank_transfer_is_matched_by_the_students_reference(
    pool: asyncpg.Pool[Any],
) -> None:
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=2)
        await tuition_and_dorm(conn, w, due=date(2026, 9, 1))
    alice, bob = w.students
    ref_alice = rules.payment_reference(w.school_id, alice)
    ref_bob = rules.payment_reference(w.school_id, bob)
    typo = ref_bob[:-1] + str((int(ref_bob[-1]) + 1) % 10)  # a wrong check digit
    day = await pool.fetchval("SELECT cc_business_date($1)", w.school_id)

    # when the bank statement carries three transfers: alice pays in full, bob pays part,
    # and one quotes a reference with a wrong check digit
    content = bank_file(
        day, [(ref_alice, "LOAD", 620_000), (ref_bob, "LOAD", 100_000), (typo, "LOAD", 5_000)]
    )
    result = await reconciliation.do_import_statement(
        pool, w.finance, w.school_id, source="bank", content=content, file_name="bank.txt"
    )

    # then the two good references are matched and booked to their bills by themselves
    assert result["matched"] == 2 and len(result["cases"]) == 1
    assert await _owed(pool, w.school_id, await bill_of(pool, w.school_id, alice)) == (
        620_000,
        620_000,
        "paid",
    )
    assert await _owed(pool, w.school_id, await bill_of(pool, w.school_id, bob)) == (
        620_000,
        100_000,
        "open",
    )
    pays = await queries.payments_of_person(pool, w.school_id, alice)
    assert [(p["method"], p["amount"], p["reference"]) for p in pays] == [
        ("bank", "6200.00", ref_alice)
    ]
    # the unknown one waits in suspense like any line we do not know
    case = await pool.fetchrow(
        "SELECT reference, reason FROM recon_cases WHERE school_id = $1", w.school_id
    )
    assert case is not None and (case["reference"], case["reason"]) == (typo, "missing_ours")
    # the same file again replays, and books nothing twice
    again = await reconciliation.do_import_statement(
        pool, w.finance, w.school_id, source="bank", content=content, file_name="bank.txt"
    )
    assert again["replayed"] is True
    assert len(await queries.payments_of_person(pool, w.school_id, alice)) == 1
    async with pool.acquire() as conn:
        assert (await checks.check_ledger(conn)).ok


async def test_overpayment_goes_back_to_the_card_and_a_waiver_needs_a_second_person(
    pool: asyncpg.Pool[Any],
) -> None:
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=1)
        await tuition_and_dorm(conn, w, due=date(2026, 9, 1))
    person = w.students[0]
    bill_id = await bill_of(pool, w.school_id, person)
    day = await pool.fetchval("SELECT cc_business_date($1)", w.school_id)

    # a transfer of 6,500 for a 6,200 bill: the 300 over goes back to the card
    ref = rules.payment_reference(w.school_id, person)
    await reconciliation.do_import_statement(
        pool,
        w.finance,
        w.school_id,
        source="bank",
        content=bank_file(day, [(ref, "LOAD", 650_000)]),
        file_name="b.txt",
    )
    assert await _owed(pool, w.school_id, bill_id) == (620_000, 620_000, "paid")
    assert (await balances(pool, person))["cash"] == 30_000
    [pay] = await queries.payments_of_person(pool, w.school_id, person)
    assert (pay["applied"], pay["returned"]) == ("6200.00", "300.00")

    # a waiver of the accommodation, proposed by one operator...
    line_id = await pool.fetchval(
        "SELECT id FROM bill_lines WHERE bill_id = $1 AND kind = 'accommodation'", bill_id
    )
    proposal = await adjustments.do_propose(
        pool,
        w.finance,
        w.school_id,
        line_id,
        kind="waiver",
        new_amount=None,
        reason="建档立卡家庭 hardship",
    )
    assert proposal["status"] == "pending_approval"
    assert (await balances(pool, person))["cash"] == 30_000  # nothing moved yet
    with pytest.raises(DomainError) as err:
        await four_eyes.do_decide(
            pool, w.finance, w.school_id, proposal["approval"]["id"], approve=True
        )
    assert err.value.code == "SECOND_PERSON_REQUIRED"
    # ...and approved by a second: the 1,200 already paid for it goes back to the card
    decided = await four_eyes.do_decide(
        pool, w.second, w.school_id, proposal["approval"]["id"], approve=True
    )
    assert decided["result"]["returned_to_card"] == "1200.00"
    assert (await balances(pool, person))["cash"] == 150_000
    assert await _owed(pool, w.school_id, bill_id) == (500_000, 500_000, "paid")
    items = {i["name"]: i for i in await queries.items(pool, w.school_id, TERM)}
    assert (items["住宿费"]["billed"], items["住宿费"]["adjusted"], items["住宿费"]["paid"]) == (
        "1200.00",
        "1200.00",
        "0.00",
    )
    async with pool.acquire() as conn:
        assert (await checks.check_ledger(conn)).ok


async def test_arrears_hold_placed_and_lifted_when_paid(pool: asyncpg.Pool[Any]) -> None:
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=2, cash=700_000)
        today = await conn.fetchval("SELECT cc_business_date($1)", w.school_id)
        due = today - timedelta(days=20)
        await tuition_and_dorm(conn, w, due=due)
        await conn.execute(
            "UPDATE schools SET settings = settings || $2 WHERE id = $1",
            w.school_id,
            {"bills": {"holds": ["card_replacement", "exam_hall"], "hold_after_days": 14}},
        )
        uid = await make_user(conn, "s001", "cardholder", w.school_id, person_id=w.students[0])
    debtor, deferred = w.students
    student = holder_actor(w.school_id, uid, debtor, "s001")
    # the second student is in the green channel for another month
    await billing.do_defer(
        pool,
        w.finance,
        w.school_id,
        await bill_of(pool, w.school_id, deferred),
        until=today + timedelta(days=30),
        reason="绿色通道 green channel",
    )

    # 10 days overdue: a reminder, no hold yet
    early = await arrears.run_school(pool, w.school_id, today=due + timedelta(days=10))
    assert (early.holds_placed, early.reminders) == (0, 1)
    # 20 days overdue: both holds the school chose, for the debtor only
    late = await arrears.run_school(pool, w.school_id, today=today)
    assert late.holds_placed == 2
    assert [h["kind"] for h in await holds.active(pool, w.school_id, debtor, "exam_hall")] == [
        "exam_hall"
    ]
    assert await holds.active(pool, w.school_id, deferred, "exam_hall") == []
    with pytest.raises(DomainError) as err:
        await holds.check_none(pool, w.school_id, debtor, "card_replacement")
    assert err.value.code == "ARREARS_HOLD"
    summary = await queries.arrears_summary(pool, w.school_id)
    assert summary["active_holds"] == 2 and summary["deferred"]["bills"] == 1

    # paying part keeps the holds; paying the rest lifts them in the same transaction
    bill_id = await bill_of(pool, w.school_id, debtor)
    await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("6000.00"), client_id=cid("p")
    )
    assert len(await holds.active(pool, w.school_id, debtor, "card_replacement")) == 1
    await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("200.00"), client_id=cid("p")
    )
    assert await holds.active(pool, w.school_id, debtor, "card_replacement") == []
    await holds.check_none(pool, w.school_id, debtor, "card_replacement")
    kinds = [
        r["kind"]
        for r in await pool.fetch(
            "SELECT kind FROM notifications WHERE person_id = $1 ORDER BY id", debtor
        )
    ]
    assert "bill_hold" in kinds and "bill_hold_lifted" in kinds


async def test_a_parent_pays_online_for_the_child(
    pool: asyncpg.Pool[Any], settings: Settings
) -> None:
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=1)
        await tuition_and_dorm(conn, w, due=date(2026, 9, 1))
        parent = await make_user(conn, "parent1", "guardian", w.school_id)
        await conn.execute(
            "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
            parent,
            w.students[0],
            w.school_id,
        )
        stranger = await make_user(conn, "parent2", "guardian", w.school_id)
    from campuscard.platform.actors import Actor, Grant

    mum = Actor(name="parent1", user_id=parent, grants=frozenset({Grant("guardian", w.school_id)}))
    other = Actor(
        name="parent2", user_id=stranger, grants=frozenset({Grant("guardian", w.school_id)})
    )
    bill_id = await bill_of(pool, w.school_id, w.students[0])
    # someone else's child's bill does not exist for them
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(DomainError) as err:
            await payments.check_can_see(conn, other, w.school_id, w.students[0])
    assert err.value.status == 404
    # the parent's order, once paid by the provider, pays the bill on a receipt
    async with pool.acquire() as conn:
        async with conn.transaction():
            out = await payments._open_order(
                conn,
                settings,
                mum,
                w.school_id,
                bill_id,
                620_000,  # type: ignore[arg-type]
            )
        order = await provider_orders.get_order(conn, out["order_id"])
        async with conn.transaction():
            assert await provider_orders.settle_paid(
                conn,
                order["id"],
                transaction_id="WX0001",
                total_fee=620_000,  # type: ignore[arg-type]
                via="notify",
            )
    assert await _owed(pool, w.school_id, bill_id) == (620_000, 620_000, "paid")
    [pay] = await queries.payments_of_person(pool, w.school_id, w.students[0])
    assert (pay["method"], pay["payer_name"]) == ("provider", "parent1")
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'bill_paid'", parent
        )
        == 1
    )


def test_payment_references_carry_a_check_digit() -> None:
    ref = rules.payment_reference(12, 4217)
    assert ref == "JF" + "0012" + "0000004217" + ref[-1]
    assert rules.parse_reference(ref) == (12, 4217)
    assert rules.parse_reference(ref.lower()) == (12, 4217)
    swapped = ref[:-3] + ref[-2] + ref[-3] + ref[-1]
    assert rules.parse_reference(swapped) is None or swapped == ref
    assert rules.parse_reference("JF123") is None
    with pytest.raises(ValidationFailed):
        rules.check_term("2026-2028-1")
    assert rules.split_plan(1001, date(2026, 9, 1), 2, 30)[0].amount == 501
    assert rules.late_instalments(
        rules.split_plan(1000, date(2026, 9, 1), 2, 30), 500, date(2026, 10, 10), 5
    ) == [(rules.Instalment(2, date(2026, 10, 1), 500), 500)]
    assert rules.bucket_of(45) == "d31_60" and rules.bucket_of(0) is None
    assert date(2026, 9, 1) + timedelta(days=0) == date(2026, 9, 1)


async def test_a_bad_bill_sheet_is_refused_whole_with_every_bad_row_listed(
    pool: asyncpg.Pool[Any],
) -> None:
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=2)
        await tuition_and_dorm(conn, w, due=date(2026, 9, 1))
        await billing.do_create_item(
            conn,
            w.finance,
            w.school_id,
            term=TERM,
            kind="textbooks",
            name="教材费",
            amount=None,
            due_date=date(2026, 9, 15),
        )
    lines_before = await pool.fetchval("SELECT count(*) FROM bill_lines")
    bad = (
        "学号,姓名,收费项目,金额\n"
        "S001,学生1,教材费,320.50\n"  # good
        "S0 1,学生1,教材费,10.00\n"  # a number that cannot be
        "S999,某某,教材费,10.00\n"  # nobody
        "S002,学生2,体检费,10.00\n"  # no such item this term
        "S002,学生2,教材费,12.345\n"  # three decimals
        "S001,学生1,教材费,320.50\n"  # the same student and item twice
        "S002,学生2,学费,4000.00\n"  # already billed at 5,000
        "S002,王五,教材费,1.00\n"  # the name is not the student's
    ).encode()
    with pytest.raises(ValidationFailed) as err:
        await sheets.do_import_sheet(
            pool,
            w.finance,
            w.school_id,
            term=TERM,
            frame=import_rules.build_frame(bad),
            filename="教材费.csv",
        )
    assert err.value.code == "IMPORT_ROWS_INVALID"
    problems = [(e["row"], e["field"]) for e in err.value.details["errors"]]
    assert problems == [
        (3, "number"),
        (4, "number"),
        (5, "item"),
        (6, "amount"),
        (7, "item"),
        (8, "amount"),
        (9, "name"),
    ]
    assert await pool.fetchval("SELECT count(*) FROM bill_lines") == lines_before

    # a frame damaged in transit is refused before it is read
    frame = bytearray(import_rules.build_frame(b"x" + bad))
    frame[40] ^= 1
    with pytest.raises(ValidationFailed) as damaged:
        await sheets.do_import_sheet(
            pool, w.finance, w.school_id, term=TERM, frame=bytes(frame), filename="x.csv"
        )
    assert damaged.value.code == "DIGEST_MISMATCH"

    # the good sheet is applied and echoed; sent again, it changes nothing
    good = "学号,收费项目,金额\nS001,教材费,320.50\nS002,教材费,298.00\nS002,学费,5000.00\n"
    first = await sheets.do_import_sheet(
        pool,
        w.finance,
        w.school_id,
        term=TERM,
        frame=import_rules.build_frame(good.encode()),
        filename="教材费.csv",
    )
    assert (first.added, first.unchanged, first.amount) == (2, 1, "618.50")
    assert first.canonical == [
        "S001\t教材费\t320.50",
        "S002\t教材费\t298.00",
        "S002\t学费\t5000.00",
    ]
    again = await sheets.do_import_sheet(
        pool,
        w.finance,
        w.school_id,
        term=TERM,
        frame=import_rules.build_frame(good.encode()),
        filename="教材费.csv",
    )
    assert again.replayed and (again.added, again.unchanged) == (0, 3)
    assert await _owed(pool, w.school_id, await bill_of(pool, w.school_id, w.students[0])) == (
        652_050,
        0,
        "open",
    )


async def test_paying_over_the_api_in_the_tuition_channel(
    pool: asyncpg.Pool[Any], client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=2, cash=100_000)
        await tuition_and_dorm(conn, w, due=date(2026, 9, 1))
        await make_user(conn, "s001", "cardholder", w.school_id, person_id=w.students[0])
        await make_user(conn, "s002", "cardholder", w.school_id, person_id=w.students[1])
    me = await login(client, "s001", w.code)
    other = await login(client, "s002", w.code)
    bill_id = await bill_of(pool, w.school_id, w.students[0])
    url = f"/api/v1/schools/{w.code}/bills/{bill_id}"

    body = {"client_id": cid("api"), "amount": "500.00"}
    r = await client.post(f"{url}/card-payments", json=body, headers=me)
    again = await client.post(f"{url}/card-payments", json=body, headers=me)
    assert r.status_code == 201 and again.json() == r.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    bad = await client.post(
        f"{url}/card-payments", json={"client_id": cid("api"), "amount": "5.001"}, headers=me
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"].endswith("amount")
    detail = (await client.get(url, headers=me)).json()
    assert detail["paid"] == "500.00" and detail["payment_reference"].startswith("JF")
    receipt = await client.get(
        f"/api/v1/schools/{w.code}/receipts/{r.json()['receipt_no']}", headers=me
    )
    assert receipt.status_code == 200 and receipt.json()["lines"][0]["amount"] == "500.00"
    # another student sees neither the bill nor the receipt
    assert (await client.get(url, headers=other)).status_code == 404
    assert (
        await client.get(
            f"/api/v1/schools/{w.code}/receipts/{r.json()['receipt_no']}", headers=other
        )
    ).status_code == 404
