"""Paying a bill: from the card account, online through the provider (the student or a linked
parent), or by bank transfer quoting the student's payment reference, which reconciliation
applies by itself when the bank's statement is imported (``claim_bank_lines``).

A payment may be partial; what is more than the bill asks (a transfer rounded up, a provider
payment that crossed a waiver) goes back to the holder's cash purse, on the same receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from campuscard.bills import books, rules
from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx
from campuscard.ledger import postings
from campuscard.ledger.money import Money, fmt
from campuscard.moneyflows import provider_orders
from campuscard.platform import audit, idempotency
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

MAX_PAYMENT_FEN = 10_000_000  # 100,000.00 yuan in one payment


async def check_can_see(conn: Conn, actor: Actor, school_id: int, person_id: int) -> str:
    """Who may see and pay a student's bills: the student ('holder'), a linked parent
    ('guardian') or the finance office ('finance'). Anyone else is told it does not exist."""
    if actor.person_id == person_id:
        return "holder"
    if actor.has("settlement", school_id=school_id):
        exists = await conn.fetchval(
            "SELECT 1 FROM persons WHERE school_id = $1 AND id = $2", school_id, person_id
        )
        if exists:
            return "finance"
    elif actor.user_id is not None and await conn.fetchval(
        "SELECT true FROM guardian_links WHERE user_id = $1 AND person_id = $2 AND school_id = $3",
        actor.user_id,
        person_id,
        school_id,
    ):
        return "guardian"
    raise NotFound("no such student", field="person_id")


async def _bill_of(
    tx: Tx, actor: Actor, school_id: int, bill_id: int
) -> tuple[dict[str, Any], str]:
    bill = await tx.fetchrow(
        "SELECT person_id FROM bills WHERE school_id = $1 AND id = $2", school_id, bill_id
    )
    if bill is None:
        raise NotFound("no such bill", field="bill_id")
    who = await check_can_see(tx, actor, school_id, bill["person_id"])
    return await books.lock_bill(tx, school_id, bill_id), who


async def book_card_payment(
    tx: Tx, actor: Actor, school_id: int, bill_id: int, amount: int, client_id: str
) -> dict[str, Any]:
    """The card payment's work in the caller's transaction (``do_pay_from_card`` wraps it in
    the client id's idempotency)."""
    bill, who = await _bill_of(tx, actor, school_id, bill_id)
    if who != "holder":
        raise Forbidden(
            "only the student pays from the card account; a parent pays online",
            code="HOLDER_ONLY",
            field="method",
        )
    left = books.check_open(bill)
    if amount > left:
        raise ValidationFailed(
            f"amount is more than the {fmt(left)} yuan the bill still asks for",
            code="AMOUNT_ABOVE_DUE",
            field="amount",
        )
    status = await tx.fetchval(
        "SELECT account_status FROM persons WHERE school_id = $1 AND id = $2",
        school_id,
        bill["person_id"],
    )
    if status != "active":
        raise Conflict("the card account is not active", code="ACCOUNT_NOT_ACTIVE", field="method")
    split = await books.split_payment(tx, school_id, bill_id, amount)
    purses = await postings.open_purses(tx, school_id, bill["person_id"])
    tx_id = await postings.post(
        tx,
        school_id=school_id,
        kind="bill_payment",
        legs=[
            postings.Leg(purses["cash"], -amount),
            *await books.credit_legs(tx, school_id, bill["person_id"], split),
        ],
        ref=f"bill:{bill_id}",
        memo=f"学杂费 {bill['term']} fees",
        actor=actor.name,
        meta={"method": "card", "client_id": client_id},
    )
    payment = await books.record_payment(
        tx,
        school_id=school_id,
        bill_id=bill_id,
        person_id=bill["person_id"],
        method="card",
        amount=amount,
        split=split,
        reference=client_id,
        tx_id=tx_id,
        payer_user_id=actor.user_id,
        payer_name=actor.name,
    )
    await audit.record(
        tx,
        actor,
        "bills.pay.card",
        school_id=school_id,
        target_type="bill",
        target_id=bill_id,
        after=payment,
    )
    return payment


async def do_pay_from_card(
    pool: PgPool, actor: Actor, school_id: int, bill_id: int, *, amount: Money, client_id: str
) -> idempotency.Outcome:
    """The student pays all or part of a bill from the cash purse, once per client id. The
    route runs it inside the tuition channel's admission limit (docs/channels.md)."""
    idempotency.check_client_id(client_id)
    if amount.fen > MAX_PAYMENT_FEN:
        raise ValidationFailed(f"one payment is at most {fmt(MAX_PAYMENT_FEN)}", field="amount")
    if actor.user_id is None:
        raise Forbidden("sign in first", field="actor")
    async with pool.acquire() as conn:
        return await idempotency.run_idempotent(
            conn,
            school_id=school_id,
            scope=f"bill_pay:{actor.user_id}",
            key=client_id,
            payload={"bill_id": bill_id, "amount": amount.fen, "school_id": school_id},
            work=lambda tx: book_card_payment(tx, actor, school_id, bill_id, amount.fen, client_id),
            success_status=201,
        )


# ---- online, through the provider ------------------------------------------------------


async def _order_split(conn: Conn, order: provider_orders.Order) -> books.Split:
    tx = cast(Tx, conn)  # the provider books a paid order inside its transaction
    bill_id = int(order["meta"]["bill_id"])
    await books.lock_bill(tx, order["school_id"], bill_id)
    return await books.split_payment(tx, order["school_id"], bill_id, order["amount"])


async def _bill_credit(conn: Conn, order: provider_orders.Order) -> list[postings.Leg]:
    split = await _order_split(conn, order)
    return await books.credit_legs(cast(Tx, conn), order["school_id"], order["person_id"], split)


async def _bill_paid(tx: Tx, order: provider_orders.Order, tx_id: int) -> None:
    # the bill is still locked since _bill_credit: the same split
    split = await _order_split(tx, order)
    payer = await tx.fetchval(
        "SELECT coalesce(nullif(display_name, ''), username) FROM users WHERE id = $1",
        order["payer_user_id"],
    )
    await books.record_payment(
        tx,
        school_id=order["school_id"],
        bill_id=int(order["meta"]["bill_id"]),
        person_id=order["person_id"],
        method="provider",
        amount=order["amount"],
        split=split,
        reference=order["out_trade_no"],
        tx_id=tx_id,
        payer_user_id=order["payer_user_id"],
        payer_name=payer or "",
    )


provider_orders.register_purpose(
    provider_orders.Purpose(
        name="bill",
        journal_kind="bill_payment",
        credit_legs=_bill_credit,
        after_paid=_bill_paid,
    )
)


async def _open_order(
    tx: Tx, settings: Settings, actor: Actor, school_id: int, bill_id: int, amount: int
) -> dict[str, Any]:
    bill, who = await _bill_of(tx, actor, school_id, bill_id)
    left = books.check_open(bill)
    if amount > left:
        raise ValidationFailed(
            f"amount is more than the {fmt(left)} yuan the bill still asks for",
            code="AMOUNT_ABOVE_DUE",
            field="amount",
        )
    if who == "finance":
        raise Forbidden("the student or a parent pays online", code="PAYER_ONLY", field="actor")
    order = await provider_orders.create_order(
        tx,
        settings,
        school_id=school_id,
        purpose="bill",
        amount=amount,
        person_id=bill["person_id"],
        payer_user_id=actor.user_id,
        description=f"学杂费 {bill['term']} fees {fmt(amount)}",
        meta={"bill_id": bill_id},
    )
    return {"order_id": order["id"]}


async def do_pay_online(
    pool: PgPool,
    settings: Settings,
    actor: Actor,
    school_id: int,
    bill_id: int,
    *,
    amount: Money,
    client_id: str,
) -> tuple[int, dict[str, Any]]:
    """Open a provider order for all or part of a bill (the student or a linked parent) and
    place it; the bill is paid when the provider says so. Returns (status, order view)."""
    idempotency.check_client_id(client_id)
    if amount.fen > MAX_PAYMENT_FEN:
        raise ValidationFailed(f"one payment is at most {fmt(MAX_PAYMENT_FEN)}", field="amount")
    if actor.user_id is None:
        raise Forbidden("sign in first", field="actor")
    async with pool.acquire() as conn:
        outcome = await idempotency.run_idempotent(
            conn,
            school_id=school_id,
            scope=f"bill_order:{actor.user_id}",
            key=client_id,
            payload={"bill_id": bill_id, "amount": amount.fen, "school_id": school_id},
            work=lambda tx: _open_order(tx, settings, actor, school_id, bill_id, amount.fen),
            success_status=201,
        )
    if outcome.status >= 400:
        return outcome.status, outcome.body
    order = await provider_orders.place_order(pool, settings, outcome.body["order_id"])
    return outcome.status, provider_orders.order_view(order)


# ---- bank transfer with the student's reference ------------------------------------------


async def claim_bank_lines(tx: Tx, school_id: int, theirs: Mapping[str, int]) -> list[str]:
    """Book the bank statement's transfers that quote a student's payment reference (called by
    reconciliation before it pairs the two sides, so the bookings it makes here match).

    Each reference pays the student's oldest open bills, oldest first; what is more goes back
    to the cash purse. A reference of another school, of nobody, or with a wrong check digit
    is left alone and becomes a case like any unknown line. Returns the references booked."""
    booked: list[str] = []
    for reference, amount in sorted(theirs.items()):
        parsed = rules.parse_reference(reference)
        if parsed is None or amount <= 0 or parsed[0] != school_id:
            continue
        person_id = parsed[1]
        person = await tx.fetchrow(
            "SELECT id, name FROM persons WHERE school_id = $1 AND id = $2", school_id, person_id
        )
        if person is None:
            continue
        if await tx.fetchval(
            """SELECT 1 FROM journal_tx j WHERE j.school_id = $1 AND j.kind = 'bill_payment'
                 AND j.meta ->> 'recon_ref' = $2
                 AND NOT EXISTS (SELECT 1 FROM recon_our_items r WHERE r.tx_id = j.id)""",
            school_id,
            reference,
        ):
            continue  # already booked and waiting for this statement
        await _book_transfer(tx, school_id, person_id, reference, amount)
        booked.append(reference)
    return booked


async def _book_transfer(
    tx: Tx, school_id: int, person_id: int, reference: str, amount: int
) -> None:
    bills = await tx.fetch(
        """SELECT id FROM bills WHERE school_id = $1 AND person_id = $2 AND status = 'open'
            ORDER BY due_date, id FOR UPDATE""",
        school_id,
        person_id,
    )
    clearing = await postings.system_account(tx, school_id, "bank_clearing")
    left = amount
    parts: list[tuple[int | None, int, books.Split]] = []
    for b in bills:
        if left <= 0:
            break
        split = await books.split_payment(tx, school_id, b["id"], left)
        if split.applied:
            parts.append((b["id"], split.applied, books.Split(split.lines, 0)))
            left -= split.applied
    if left > 0 or not parts:
        # the rest (or all of it, when nothing is owed) goes back to the card, on the receipt
        # of the last bill paid
        if parts:
            bill_id, applied, split = parts[-1]
            parts[-1] = (bill_id, applied + left, books.Split(split.lines, left))
        else:
            parts.append((None, left, books.Split({}, left)))
    for i, (bill_id, part, split) in enumerate(parts):
        tx_id = await postings.post(
            tx,
            school_id=school_id,
            kind="bill_payment",
            legs=[
                postings.Leg(clearing, -part),
                *await books.credit_legs(tx, school_id, person_id, split),
            ],
            ref=f"bill:{bill_id}" if bill_id else f"bill_person:{person_id}",
            memo=f"银行转账缴费 bank transfer {reference}",
            actor="bank",
            meta={"method": "bank", "recon_ref": reference, "part": i},
        )
        await books.record_payment(
            tx,
            school_id=school_id,
            bill_id=bill_id,
            person_id=person_id,
            method="bank",
            amount=part,
            split=split,
            reference=reference,
            tx_id=tx_id,
            payer_user_id=None,
            payer_name="bank transfer",
        )
