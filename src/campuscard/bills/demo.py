"""The demo campus's bills, in every state a finance office meets: the term's tuition (per
major), accommodation (per dorm building) and insurance; bills paid in full from the card, in
part, by instalments with a late fee charged, by bank transfer with the overpayment back on the
card, deferred in the green channel, overdue with holds and reminders; one waiver waiting for a
second person; and dorm meters with an automatic top-up."""

from __future__ import annotations

from datetime import date, timedelta

from campuscard.bills import adjustments, arrears, billing, payments, rules
from campuscard.db.tx import Tx
from campuscard.ledger.money import Money
from campuscard.platform import auth
from campuscard.platform.actors import Actor

TERM_OF = "{y}-{y1}-1"
BILLED = 24  # the first students of the demo are billed this term


def demo_term(today: date) -> str:
    year = today.year if today.month >= 8 else today.year - 1
    return TERM_OF.format(y=year, y1=year + 1)


async def _actor_of(tx: Tx, school_id: int, username: str) -> Actor:
    uid = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = $2", school_id, username
    )
    return await auth.load_actor(tx, uid)


async def _holder(tx: Tx, person_id: int) -> Actor:
    uid = await tx.fetchval("SELECT id FROM users WHERE person_id = $1", person_id)
    return await auth.load_actor(tx, uid)


async def ensure_demo_bills(tx: Tx, school_id: int, numbers: list[str]) -> None:
    """Once per school: the term's items and bills in their states (``numbers``: the demo's
    students, in order)."""
    if await tx.fetchval("SELECT 1 FROM fee_items WHERE school_id = $1", school_id):
        return
    today: date = await tx.fetchval("SELECT cc_business_date($1)", school_id)
    term = demo_term(today)
    due = today - timedelta(days=40)
    finance = await _actor_of(tx, school_id, "settlement")
    people = [
        r["id"]
        for r in await tx.fetch(
            "SELECT id FROM persons WHERE school_id = $1 AND number = ANY($2::text[]) "
            "ORDER BY number",
            school_id,
            numbers[:BILLED],
        )
    ]
    # majors and dorm buildings, so the rates have something to choose by
    for i, pid in enumerate(people):
        await tx.execute(
            "UPDATE persons SET major = $2, dorm = $3 WHERE id = $1",
            pid,
            "计算机科学与技术" if i % 2 == 0 else "汉语言文学",
            "东区3栋" if i % 3 else "西区1栋",
        )
    await tx.execute(
        "UPDATE schools SET settings = settings || $2 WHERE id = $1",
        school_id,
        {
            "bills": {
                "late_fee": {"fixed": "20.00", "percent": "0.5", "grace_days": 5, "cap": "200.00"},
                "holds": ["card_replacement", "exam_hall"],
                "hold_after_days": 30,
            }
        },
    )
    await billing.do_create_item.in_tx(
        tx,
        finance,
        school_id,
        term=term,
        kind="tuition",
        name="学费 tuition",
        amount=Money.parse("5000.00"),
        due_date=due,
        rates=[billing.Rate("major", "计算机科学与技术", Money.parse("5800.00"))],
    )
    await billing.do_create_item.in_tx(
        tx,
        finance,
        school_id,
        term=term,
        kind="accommodation",
        name="住宿费 accommodation",
        amount=None,
        due_date=due,
        rates=[
            billing.Rate("dorm", "东区3栋", Money.parse("1200.00")),
            billing.Rate("dorm", "西区1栋", Money.parse("900.00")),
        ],
    )
    await billing.do_create_item.in_tx(
        tx,
        finance,
        school_id,
        term=term,
        kind="insurance",
        name="医保 insurance",
        amount=Money.parse("380.00"),
        due_date=due,
    )
    await billing.do_issue_bills.in_tx(tx, finance, school_id, term=term, person_ids=people)
    bill = {
        r["person_id"]: r["id"]
        for r in await tx.fetch(
            "SELECT person_id, id FROM bills WHERE school_id = $1 AND term = $2", school_id, term
        )
    }

    async def owed(pid: int) -> int:
        v: int = await tx.fetchval(
            "SELECT total - paid FROM bills WHERE school_id = $1 AND id = $2", school_id, bill[pid]
        )
        return v

    async def fund(pid: int, fen: int) -> None:
        from campuscard.ledger import postings

        purses = await postings.open_purses(tx, school_id, pid)
        opening = await postings.system_account(tx, school_id, "opening_balances")
        await postings.post(
            tx,
            school_id=school_id,
            kind="opening_balance",
            legs=postings.legs_move(opening, purses["cash"], fen),
            memo="demo: fees money",
        )

    # 0 (the demo's student login): paid in part from the card; 1: paid in full
    for k, pid in enumerate(people[:2]):
        await fund(pid, 800_000)
        amount = 200_000 if k == 0 else await owed(pid)
        await payments.book_card_payment(
            tx, await _holder(tx, pid), school_id, bill[pid], amount, f"demo-bill-pay-{k}"
        )
    # 2: instalments, the first paid, the second late with its late fee
    pid = people[2]
    await billing.do_set_plan.in_tx(
        tx, finance, school_id, bill[pid], instalments=3, first_due=due, every_days=30
    )
    first = await tx.fetchval(
        "SELECT amount FROM bill_instalments WHERE school_id = $1 AND bill_id = $2 AND seq = 1",
        school_id,
        bill[pid],
    )
    await fund(pid, first)
    await payments.book_card_payment(
        tx, await _holder(tx, pid), school_id, bill[pid], first, "demo-bill-pay-2"
    )
    # 3: a bank transfer quoting the student's reference, 100 yuan over the bill
    pid = people[3]
    ref = rules.payment_reference(school_id, pid)
    await payments.claim_bank_lines(tx, school_id, {ref: await owed(pid) + 10_000})
    # 4: green channel
    await billing.do_defer.in_tx(
        tx,
        finance,
        school_id,
        bill[people[4]],
        until=today + timedelta(days=60),
        reason="家庭经济困难，绿色通道 green channel",
    )
    # 5: a waiver of the accommodation proposed, waiting for the second person
    line = await tx.fetchval(
        "SELECT id FROM bill_lines WHERE school_id = $1 AND bill_id = $2 "
        "AND kind = 'accommodation'",
        school_id,
        bill[people[5]],
    )
    await adjustments.do_propose.in_tx(
        tx,
        finance,
        school_id,
        line,
        kind="waiver",
        new_amount=None,
        reason="建档立卡户 住宿费减免 / accommodation waived for a family in hardship",
    )
    # the others stay unpaid, 40 days overdue: the arrears pass charges late fees, places the
    # holds the school chose and reminds them (and their parents)
    settings = await tx.fetchval("SELECT settings FROM schools WHERE id = $1", school_id)
    fee_rule = rules.late_fee_rule(settings)
    kinds, after = rules.school_holds(settings)
    run = arrears.ArrearsPass()
    for b in await tx.fetch(
        "SELECT id FROM bills WHERE school_id = $1 AND status = 'open' ORDER BY id", school_id
    ):
        await arrears.one_bill(tx, school_id, b["id"], today, fee_rule, kinds, after, run)
    await _meters(tx, school_id, finance, people[:4])


async def _meters(tx: Tx, school_id: int, finance: Actor, people: list[int]) -> None:
    """Room 101 of 东区3栋: an electricity and a water meter; the first student tops up
    electricity by themself when it falls below 20 yuan."""
    for kind, meter_no in (("electricity", "E3101"), ("water", "W3101")):
        meter_id = await tx.fetchval(
            """INSERT INTO utility_meters(school_id, meter_no, kind, dorm, room)
               VALUES ($1, $2, $3, '东区3栋', '101') RETURNING id""",
            school_id,
            meter_no,
            kind,
        )
        await tx.executemany(
            "INSERT INTO utility_residents(school_id, meter_id, person_id) VALUES ($1, $2, $3)",
            [(school_id, meter_id, p) for p in people],
        )
        if kind == "electricity":
            await tx.execute(
                "UPDATE utility_residents SET auto_below = 2000, auto_amount = 5000 "
                "WHERE school_id = $1 AND meter_id = $2 AND person_id = $3",
                school_id,
                meter_id,
                people[0],
            )
