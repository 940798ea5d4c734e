"""Adjustments and waivers of a bill line (减免, 调整): one person proposes, a second approves
(``platform/four_eyes.py``), and only then does the line change. When the new amount is below
what was already paid, the difference goes back to the holder's card in the same transaction."""

from __future__ import annotations

from typing import Any

from campuscard.bills import books
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger.money import Money, fmt
from campuscard.platform import audit, four_eyes, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

KINDS = ("adjustment", "waiver")


@owns_transaction
async def do_propose(
    tx: Tx,
    actor: Actor,
    school_id: int,
    line_id: int,
    *,
    kind: str,
    new_amount: Money | None,
    reason: str,
) -> dict[str, Any]:
    """Propose a line's new amount (an adjustment) or zero (a waiver); a second person with the
    settlement role or the school admin decides at /approvals."""
    actor.require("settlement", school_id=school_id)
    if kind not in KINDS:
        raise ValidationFailed("kind must be adjustment or waiver", field="kind")
    reason = reason.strip()
    if not 2 <= len(reason) <= 200:
        raise ValidationFailed("say why, in 2-200 characters", field="reason")
    if kind == "waiver":
        after = 0
    elif new_amount is None:
        raise ValidationFailed("an adjustment needs new_amount", field="new_amount")
    else:
        after = new_amount.fen
    line = await tx.fetchrow(
        """SELECT l.*, b.person_id, b.term, p.name AS person_name, p.number
             FROM bill_lines l JOIN bills b ON b.school_id = l.school_id AND b.id = l.bill_id
             JOIN persons p ON p.school_id = b.school_id AND p.id = b.person_id
            WHERE l.school_id = $1 AND l.id = $2""",
        school_id,
        line_id,
    )
    if line is None:
        raise NotFound("no such bill line", field="line_id")
    if after == line["amount"]:
        raise ValidationFailed("the line already asks for this amount", field="new_amount")
    if after > line["original"] * 2 + 100_000:
        raise ValidationFailed(
            "an adjustment may not raise a line this far; issue a new item instead",
            field="new_amount",
        )
    verb_zh = "减免" if kind == "waiver" else "调整"
    summary = (
        f"{verb_zh} {line['person_name']}({line['number']}) {line['term']} {line['name']}: "
        f"{fmt(line['amount'])} → {fmt(after)}，{reason}"
    )
    return await four_eyes.propose(
        tx,
        actor,
        school_id,
        kind="bill_adjustment",
        payload={"line_id": line_id, "kind": kind, "after": after, "reason": reason},
        amount=abs(line["amount"] - after),
        summary=summary,
    )


@four_eyes.executor("bill_adjustment")
async def _apply(tx: Tx, approver: Actor, proposal: four_eyes.Proposal) -> dict[str, Any]:
    p = proposal.payload
    school_id = proposal.school_id
    line = await tx.fetchrow(
        "SELECT bill_id FROM bill_lines WHERE school_id = $1 AND id = $2", school_id, p["line_id"]
    )
    if line is None:
        raise NotFound("the bill line is gone", field="line_id")
    bill = await books.lock_bill(tx, school_id, line["bill_id"])
    row = await tx.fetchrow(
        "SELECT * FROM bill_lines WHERE school_id = $1 AND id = $2 FOR UPDATE",
        school_id,
        p["line_id"],
    )
    assert row is not None
    after = int(p["after"])
    if row["amount"] == after:
        raise Conflict("the line already asks for this amount", code="NO_CHANGE", field="line_id")
    returned = max(0, row["paid"] - after)
    if returned:
        await books.give_back(
            tx,
            school_id=school_id,
            person_id=bill["person_id"],
            line_id=row["id"],
            fen=returned,
            why=f"{p['kind']} approved: {p['reason']}",
            actor=approver.name,
        )
    await tx.execute(
        "UPDATE bill_lines SET amount = $3, paid = paid - $4 WHERE school_id = $1 AND id = $2",
        school_id,
        row["id"],
        after,
        returned,
    )
    await tx.execute(
        """INSERT INTO bill_adjustments(school_id, line_id, kind, before, after, reason,
                                        approval_id, returned)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        school_id,
        row["id"],
        p["kind"],
        row["amount"],
        after,
        p["reason"],
        proposal.id,
        returned,
    )
    refreshed = await books.refresh_bill(tx, school_id, bill["id"])
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=bill["person_id"],
        kind="bill_adjusted",
        title=i18n.message("notice.bill_adjusted.title"),
        body=i18n.message(
            "notice.bill_adjusted.body",
            item=row["name"],
            before=i18n.money(row["amount"]),
            after=i18n.money(after),
            returned=i18n.message("notice.bill_adjusted.returned", amount=i18n.money(returned))
            if returned
            else "",
        ),
        data={"bill_id": bill["id"], "line_id": row["id"]},
        dedupe_key=f"bill_adjusted:{school_id}:{proposal.id}",
    )
    result = {
        "bill_id": bill["id"],
        "line_id": row["id"],
        "before": fmt(row["amount"]),
        "after": fmt(after),
        "returned_to_card": fmt(returned),
        "bill_owed": fmt(refreshed["total"] - refreshed["paid"]),
    }
    await audit.record(
        tx,
        approver,
        "bills.adjust",
        school_id=school_id,
        target_type="bill_line",
        target_id=row["id"],
        after=result,
    )
    return result
