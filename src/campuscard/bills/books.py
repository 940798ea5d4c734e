"""Where a bill's money is booked: a payment spread over the bill's lines (the rest back to the
card), money given back after a waiver, the bill's totals and its numbered receipts.

Every writer here runs in the caller's transaction (``tx: Tx``) with the bill row locked first
(``lock_bill``), then the purses through ``post``: one lock order for every bill operation.
Paid money goes to the school's ``fee_income``; ``bill_allocations`` says which line it paid,
so the books per fee item are a sum over that table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campuscard.bills import holds, rules
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx
from campuscard.ledger import postings
from campuscard.ledger.money import fmt
from campuscard.platform import i18n, notifications
from campuscard.platform.errors import Conflict, NotFound

METHODS = ("card", "provider", "bank")


async def lock_bill(tx: Tx, school_id: int, bill_id: int) -> dict[str, Any]:
    row = await tx.fetchrow(
        "SELECT * FROM bills WHERE school_id = $1 AND id = $2 FOR UPDATE", school_id, bill_id
    )
    if row is None:
        raise NotFound("no such bill in this school", field="bill_id")
    return dict(row)


async def bill_lines(conn: Conn, school_id: int, bill_id: int) -> list[rules.Line]:
    rows = await conn.fetch(
        "SELECT id, kind, amount, paid, due_date FROM bill_lines "
        "WHERE school_id = $1 AND bill_id = $2 ORDER BY id",
        school_id,
        bill_id,
    )
    return [rules.Line(r["id"], r["kind"], r["amount"], r["paid"], r["due_date"]) for r in rows]


async def refresh_bill(tx: Tx, school_id: int, bill_id: int) -> dict[str, Any]:
    """Recompute the bill's total and paid from its lines; a bill paid in full lifts its holds."""
    row = await tx.fetchrow(
        """UPDATE bills b SET total = s.total, paid = s.paid,
                  status = CASE WHEN s.paid = s.total THEN 'paid' ELSE 'open' END,
                  updated_at = now()
             FROM (SELECT coalesce(sum(amount), 0)::bigint AS total,
                          coalesce(sum(paid), 0)::bigint AS paid
                     FROM bill_lines WHERE school_id = $1 AND bill_id = $2) s
            WHERE b.school_id = $1 AND b.id = $2 RETURNING b.*""",
        school_id,
        bill_id,
    )
    assert row is not None
    if row["status"] == "paid":
        await holds.lift_for_bill(tx, school_id, bill_id, why="paid")
    return dict(row)


async def next_receipt_no(tx: Tx, school_id: int) -> str:
    """The next receipt number of the school's year, without gaps (the counter row is locked
    until the payment commits): TST-2026-000001."""
    row = await tx.fetchrow(
        """INSERT INTO bill_receipt_counters(school_id, year, last)
           VALUES ($1, extract(year FROM cc_business_date($1))::int, 1)
           ON CONFLICT (school_id, year) DO UPDATE SET last = bill_receipt_counters.last + 1
           RETURNING year, last""",
        school_id,
    )
    assert row is not None
    # its own read: Citus refuses a subquery in an INSERT on a distributed table
    code = await tx.fetchval("SELECT code FROM schools WHERE id = $1", school_id)
    return f"{code}-{row['year']}-{row['last']:06d}"


@dataclass(frozen=True)
class Split:
    """How a payment divides: fen per line, and what is more than the bill asks."""

    lines: dict[int, int]
    returned: int

    @property
    def applied(self) -> int:
        return sum(self.lines.values())


async def split_payment(tx: Tx, school_id: int, bill_id: int | None, amount: int) -> Split:
    if bill_id is None:
        return Split({}, amount)
    alloc, left = rules.allocate(await bill_lines(tx, school_id, bill_id), amount)
    return Split(alloc, left)


async def credit_legs(tx: Tx, school_id: int, person_id: int, split: Split) -> list[postings.Leg]:
    """The receiving legs of a payment: fee income for what the bill asked, the holder's cash
    purse for the overpayment."""
    legs = []
    if split.applied:
        income = await postings.system_account(tx, school_id, "fee_income")
        legs.append(postings.Leg(income, split.applied))
    if split.returned:
        purses = await postings.open_purses(tx, school_id, person_id)
        legs.append(postings.Leg(purses["cash"], split.returned))
    return legs


async def record_payment(
    tx: Tx,
    *,
    school_id: int,
    bill_id: int | None,
    person_id: int,
    method: str,
    amount: int,
    split: Split,
    reference: str,
    tx_id: int,
    payer_user_id: int | None,
    payer_name: str,
) -> dict[str, Any]:
    """Write the payment booked as ``tx_id``: its lines, the bill's totals, the receipt, and
    tell the holder (and a parent who paid)."""
    if method not in METHODS:
        raise ValueError(method)
    receipt_no = await next_receipt_no(tx, school_id)
    payment = await tx.fetchrow(
        """INSERT INTO bill_payments(school_id, bill_id, person_id, method, amount, applied,
                                     returned, reference, tx_id, payer_user_id, payer_name,
                                     receipt_no)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *""",
        school_id,
        bill_id,
        person_id,
        method,
        amount,
        split.applied,
        split.returned,
        reference,
        tx_id,
        payer_user_id,
        payer_name[:64],
        receipt_no,
    )
    assert payment is not None
    if split.lines:
        await tx.executemany(
            """INSERT INTO bill_allocations(school_id, line_id, payment_id, amount, tx_id)
               VALUES ($1, $2, $3, $4, $5)""",
            [(school_id, ln, payment["id"], fen, tx_id) for ln, fen in split.lines.items()],
        )
        await tx.execute(
            """UPDATE bill_lines l SET paid = l.paid + a.fen
                 FROM unnest($2::bigint[], $3::bigint[]) AS a(line_id, fen)
                WHERE l.school_id = $1 AND l.id = a.line_id""",
            school_id,
            list(split.lines),
            list(split.lines.values()),
        )
    bill = await refresh_bill(tx, school_id, bill_id) if bill_id is not None else None
    left = bill["total"] - bill["paid"] if bill else 0
    state: Any = ""
    if bill is not None:
        state = (
            i18n.message("notice.bill_paid.in_full")
            if left == 0
            else i18n.message("notice.bill_paid.left", amount=i18n.money(left))
        )
    body = i18n.message(
        "notice.bill_paid.body",
        amount=i18n.money(amount),
        receipt=receipt_no,
        returned=i18n.message("notice.bill_paid.returned", amount=i18n.money(split.returned))
        if split.returned
        else "",
        state=state,
    )
    data = {"payment_id": payment["id"], "bill_id": bill_id, "receipt_no": receipt_no}
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=person_id,
        kind="bill_paid",
        title=i18n.message("notice.bill_paid.title"),
        body=body,
        data=data,
        dedupe_key=f"bill_paid:{school_id}:{payment['id']}",
    )
    holder_user = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND person_id = $2", school_id, person_id
    )
    if payer_user_id is not None and payer_user_id != holder_user:
        await notifications.notify(
            tx,
            school_id=school_id,
            user_id=payer_user_id,
            kind="bill_paid",
            title=i18n.message("notice.bill_paid_payer.title"),
            body=body,
            data=data | {"person_id": person_id},
            dedupe_key=f"bill_paid_payer:{school_id}:{payment['id']}",
        )
    await notifications.publish_event(
        tx,
        {"type": "bill_paid", "school_id": school_id, "person_id": person_id, **data},
    )
    return payment_view(dict(payment))


async def give_back(
    tx: Tx, *, school_id: int, person_id: int, line_id: int, fen: int, why: str, actor: str
) -> int:
    """Money a line no longer asks for goes from fee income back to the holder's cash purse."""
    income = await postings.system_account(tx, school_id, "fee_income")
    purses = await postings.open_purses(tx, school_id, person_id)
    tx_id = await postings.post(
        tx,
        school_id=school_id,
        kind="bill_refund",
        legs=postings.legs_move(income, purses["cash"], fen),
        ref=f"bill_line:{line_id}",
        memo=why[:200],
        actor=actor,
    )
    await tx.execute(
        """INSERT INTO bill_allocations(school_id, line_id, payment_id, amount, tx_id)
           VALUES ($1, $2, NULL, $3, $4)""",
        school_id,
        line_id,
        -fen,
        tx_id,
    )
    return tx_id


def payment_view(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": p["id"],
        "bill_id": p["bill_id"],
        "person_id": p["person_id"],
        "method": p["method"],
        "amount": fmt(p["amount"]),
        "applied": fmt(p["applied"]),
        "returned": fmt(p["returned"]),
        "reference": p["reference"],
        "receipt_no": p["receipt_no"],
        "payer_name": p["payer_name"],
        "created_at": p["created_at"].isoformat(),
    }


def check_open(bill: dict[str, Any]) -> int:
    """What the bill still asks for; a paid bill refuses more money from the card."""
    left = int(bill["total"] - bill["paid"])
    if left <= 0:
        raise Conflict("this bill is paid in full", code="BILL_PAID", field="bill_id")
    return left
