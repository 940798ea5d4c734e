"""The demo campus's staff member with a credit line: 王老师 (T0001, sign-in T0001) has a
300.00 credit line, 20.00 on the card, and a 48.00 dinner at the canteen booked through the
payment engine — 28.00 of credit in use, repaid by the next top-up."""

from __future__ import annotations

import secrets

from campuscard.cards import lifecycle
from campuscard.credit import jobs, lines
from campuscard.db.tx import Tx
from campuscard.ledger import postings
from campuscard.payments import batching
from campuscard.platform import auth, idempotency
from campuscard.platform.actors import Actor

STAFF_NUMBER = "T0001"
CARD_NUMBER = "880000090001"
CARD_UID = "04D00001"


async def _actor(tx: Tx, school_id: int, username: str) -> Actor:
    uid = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = $2", school_id, username
    )
    return await auth.load_actor(tx, uid)


async def ensure_demo_credit(tx: Tx, school_id: int, password: str) -> None:
    """Once per school."""
    if await tx.fetchval(
        "SELECT 1 FROM persons WHERE school_id = $1 AND number = $2", school_id, STAFF_NUMBER
    ):
        return
    person = await tx.fetchval(
        """INSERT INTO persons(school_id, kind, number, name, phone, account_status)
           VALUES ($1, 'staff', $2, '王老师', '13700000001', 'active') RETURNING id""",
        school_id,
        STAFF_NUMBER,
    )
    await auth.create_user(
        tx,
        username=STAFF_NUMBER,
        password=password,
        school_id=school_id,
        roles=[("cardholder", school_id, None)],
        display_name="王老师",
        person_id=person,
    )
    purses = await postings.open_purses(tx, school_id, person)
    opening = await postings.system_account(tx, school_id, "opening_balances")
    await postings.post(
        tx,
        school_id=school_id,
        kind="opening_balance",
        legs=postings.legs_move(opening, purses["cash"], 2_000),
        ref=f"demo:{STAFF_NUMBER}",
        memo="demo opening balance",
    )
    await lifecycle.issue_card.in_tx(
        tx,
        await _actor(tx, school_id, "card-center"),
        person_id=person,
        number=CARD_NUMBER,
        uid=CARD_UID,
        kind="staff",
    )
    await lines.do_set_credit_line.in_tx(
        tx,
        await _actor(tx, school_id, "settlement"),
        school_id,
        person,
        credit_limit=30_000,
        repay_days=30,
    )
    till = await tx.fetchrow(
        """SELECT t.id, t.key_version FROM terminals t JOIN merchants m ON m.id = t.merchant_id
            WHERE t.school_id = $1 AND t.kind = 'pos' AND m.channel = 'canteen' ORDER BY t.id""",
        school_id,
    )
    assert till is not None  # the demo has its canteen tills
    payer = {"card_number": CARD_NUMBER, "card_uid": CARD_UID}
    member = dict(
        zip(
            batching.MEMBER_FIELDS,
            (
                till["id"],
                till["key_version"],
                secrets.token_hex(12),
                "demo-credit-dinner",
                idempotency.request_hash({"op": "pay", "amount": 4_800, **payer}),
                CARD_NUMBER,
                CARD_UID,
                None,
                None,
                4_800,
                None,
            ),
            strict=True,
        )
    )
    rows = await tx.fetch(batching.BATCH_SQL, school_id, [member])
    assert rows[0]["status"] == 200, rows[0]["body"]
    await jobs.check_line(tx, school_id, person, jobs.CreditTick())  # the debt's start
