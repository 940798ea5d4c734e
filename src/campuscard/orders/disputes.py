"""Disputes: the settlement center proposes how the held money is split (to the merchant, the
rest back to the buyer) and a second person approves before anything moves (decision 0120).
The executor runs in the approval's transaction and checks the order again."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger.money import Money
from campuscard.orders import books, queries, rules
from campuscard.platform import audit, four_eyes, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, ValidationFailed

APPROVER_ROLES = four_eyes.APPROVER_ROLES


@owns_transaction
async def do_propose_decision(
    tx: Tx, actor: Actor, school_id: int, order_id: int, *, to_merchant: int, note: str
) -> dict[str, Any]:
    """Propose: ``to_merchant`` fen of what is held go to the merchant, the rest to the buyer."""
    actor.require("settlement", "school_admin", school_id=school_id)
    why = rules.check_reason(note, "note")
    order = await books.lock_order(tx, school_id, order_id)
    books.check_state(order, "disputed", doing="decide a dispute")
    if type(to_merchant) is not int or to_merchant < 0:
        raise ValidationFailed("to_merchant must be zero or more", field="to_merchant")
    held = rules.remaining(order)
    if to_merchant > held:
        raise ValidationFailed(
            f"to_merchant is more than the {Money(held)} yuan held",
            code="AMOUNT_ABOVE_HELD",
            field="to_merchant",
        )
    if order["approval_id"] is not None:
        status = await tx.fetchval(
            "SELECT status FROM approvals WHERE school_id = $1 AND id = $2",
            school_id,
            order["approval_id"],
        )
        if status == "pending":
            raise Conflict(
                "a decision on this dispute is already waiting for a second person",
                code="DECISION_PENDING",
                field="order_id",
            )
    names = await tx.fetchrow(
        """SELECT m.name AS merchant, p.name AS buyer FROM merchants m, persons p
            WHERE m.school_id = $1 AND m.id = $2 AND p.school_id = $1 AND p.id = $3""",
        school_id,
        order["merchant_id"],
        order["person_id"],
    )
    assert names is not None
    proposal = await four_eyes.propose(
        tx,
        actor,
        school_id,
        kind="order_dispute",
        payload={"order_id": order_id, "to_merchant": to_merchant, "note": why},
        amount=held,
        summary=(
            f"{order['order_no']} · ¥{Money(to_merchant)} → {names['merchant']} · "
            f"¥{Money(held - to_merchant)} → {names['buyer']} · {why}"
        ),
    )
    approval_id = proposal["approval"]["id"]
    await tx.execute(
        "UPDATE orders SET approval_id = $3 WHERE school_id = $1 AND id = $2",
        school_id,
        order_id,
        approval_id,
    )
    await books.event(
        tx,
        order,
        "dispute_proposed",
        actor.name,
        amount=to_merchant,
        detail={"approval_id": approval_id, "note": why},
    )
    return proposal


@four_eyes.executor("order_dispute")
async def execute_decision(tx: Tx, approver: Actor, proposal: four_eyes.Proposal) -> dict[str, Any]:
    school_id = proposal.school_id
    order_id = int(proposal.payload["order_id"])
    to_merchant = int(proposal.payload["to_merchant"])
    order = await books.lock_order(tx, school_id, order_id)
    books.check_state(order, "disputed", doing="carry out the decision")
    if order["approval_id"] != proposal.id:
        raise Conflict(
            "another decision replaced this one", code="DECISION_REPLACED", field="approval_id"
        )
    held = rules.remaining(order)
    if held != proposal.amount:
        raise Conflict(
            "what is held changed since the proposal", code="HELD_CHANGED", field="approval_id"
        )
    who = f"{proposal.proposed_by_name}+{approver.name}"
    if to_merchant > 0:
        await books.release(tx, order, to_merchant, who, "dispute", approval_id=proposal.id)
    if held - to_merchant > 0:
        await books.refund(tx, order, held - to_merchant, who, "dispute", approval_id=proposal.id)
    await books.event(
        tx, order, "dispute_decided", who, amount=to_merchant, detail={"approval_id": proposal.id}
    )
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=order["person_id"],
        kind="order_dispute_decided",
        title=i18n.message("notice.order_dispute_decided.title"),
        body=i18n.message(
            "notice.order_dispute_decided.body",
            order=order["title"],
            back=i18n.money(held - to_merchant),
            paid=i18n.money(to_merchant),
        ),
        data={"order_id": order_id},
        dedupe_key=f"order:{school_id}:{order_id}:decided:{proposal.id}",
    )
    await audit.record(
        tx,
        approver,
        "order.dispute.decide",
        school_id=school_id,
        target_type="order",
        target_id=order_id,
        after={"to_merchant": str(Money(to_merchant)), "approval_id": proposal.id},
    )
    return {"order": await queries.order_view(tx, school_id, order_id)}


async def list_disputes(conn: Conn | PgPool, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    """Disputed orders waiting for a decision, oldest first (the settlement center)."""
    actor.require("settlement", "school_admin", school_id=school_id)
    return await queries.disputes(conn, school_id)
