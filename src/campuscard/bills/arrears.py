"""Arrears: late fees on late instalments, reminders by age bucket, and the holds the school
chose, run by the ``bills-arrears`` job (jobs.py) once per bill per pass, each bill in its own
short transaction. A green-channel deferral moves the date arrears count from; a paid bill has
none. Reminders go to the student and to linked parents, once per bill and bucket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from campuscard.bills import books, holds, rules
from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.ledger.money import fmt
from campuscard.monitoring import signals
from campuscard.platform import i18n, notifications

REMIND_BEFORE_DAYS = 3


@dataclass
class ArrearsPass:
    bills: int = 0
    late_fees: int = 0
    late_fee_amount: int = 0
    holds_placed: int = 0
    reminders: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "bills": self.bills,
            "late_fees": self.late_fees,
            "late_fee_amount": fmt(self.late_fee_amount),
            "holds_placed": self.holds_placed,
            "reminders": self.reminders,
        }


async def run_school(pool: PgPool, school_id: int, *, today: date | None = None) -> ArrearsPass:
    """One pass over the school's open bills (``today``: the school's business date)."""
    out = ArrearsPass()
    if today is None:
        today = await pool.fetchval("SELECT cc_business_date($1)", school_id)
        assert today is not None
    ids = await pool.fetch(
        """SELECT b.id FROM bills b WHERE b.school_id = $1 AND b.status = 'open'
              AND least(b.due_date, (SELECT min(i.due_date) FROM bill_instalments i
                                      WHERE i.school_id = b.school_id AND i.bill_id = b.id))
                  <= $2
            ORDER BY b.id""",
        school_id,
        today + timedelta(days=REMIND_BEFORE_DAYS),
    )
    settings = await pool.fetchval("SELECT settings FROM schools WHERE id = $1", school_id)
    fee_rule = rules.late_fee_rule(settings or {})
    hold_kinds, hold_after = rules.school_holds(settings or {})
    for r in ids:
        async with transaction(pool) as tx:
            await one_bill(tx, school_id, r["id"], today, fee_rule, hold_kinds, hold_after, out)
        out.bills += 1
    return out


async def one_bill(
    tx: Tx,
    school_id: int,
    bill_id: int,
    today: date,
    fee_rule: rules.LateFeeRule,
    hold_kinds: list[str],
    hold_after: int,
    out: ArrearsPass,
) -> None:
    bill = await books.lock_bill(tx, school_id, bill_id)
    if bill["status"] != "open":
        return
    deferred = bill["deferred_until"] is not None and bill["deferred_until"] >= today
    if fee_rule.active and not deferred:
        await _late_fees(tx, bill, today, fee_rule, out)
        bill = await books.lock_bill(tx, school_id, bill_id)
    due = rules.effective_due(await arrears_due(tx, bill), bill["deferred_until"])
    overdue = (today - due).days
    if not deferred and overdue >= max(hold_after, 1):
        for kind in hold_kinds:
            if await holds.place(tx, school_id, bill["person_id"], bill_id, kind):
                out.holds_placed += 1
    if not deferred and overdue > 0:
        await _tell_monitoring(tx, school_id, bill["person_id"], today)
    bucket = (
        rules.bucket_of(overdue)
        if overdue > 0
        else ("due_soon" if 0 <= -overdue <= REMIND_BEFORE_DAYS else None)
    )
    if bucket is not None and await _remind(tx, bill, bucket, due):
        out.reminders += 1


async def _tell_monitoring(tx: Tx, school_id: int, person_id: int, today: date) -> None:
    """The person's whole overdue total and oldest due date, for the arrears alert rule."""
    row = await tx.fetchrow(
        """SELECT coalesce(sum(total - paid), 0)::bigint AS owed, min(due_date) AS oldest,
                  string_agg(DISTINCT term, ', ') AS terms
             FROM bills WHERE school_id = $1 AND person_id = $2 AND status = 'open'
              AND greatest(due_date, coalesce(deferred_until, due_date)) < $3""",
        school_id,
        person_id,
        today,
    )
    if row is None or not row["owed"]:
        return
    await signals.arrears(
        tx, school_id, person_id, int(row["owed"]), row["oldest"], f"学杂费 fees {row['terms']}"
    )


async def arrears_due(tx: Tx, bill: dict[str, Any]) -> date:
    """The date arrears count from: the first instalment not yet covered, or the bill's date."""
    plan = await tx.fetch(
        "SELECT seq, due_date, amount FROM bill_instalments WHERE school_id = $1 AND bill_id = $2",
        bill["school_id"],
        bill["id"],
    )
    bill_due: date = bill["due_date"]
    if not plan:
        return bill_due
    paid = await tx.fetchval(
        "SELECT coalesce(sum(paid), 0)::bigint FROM bill_lines "
        "WHERE school_id = $1 AND bill_id = $2 AND kind <> 'late_fee'",
        bill["school_id"],
        bill["id"],
    )
    first = rules.first_unpaid_due(
        [rules.Instalment(r["seq"], r["due_date"], r["amount"]) for r in plan], paid
    )
    return first or bill_due


async def _late_fees(
    tx: Tx, bill: dict[str, Any], today: date, fee_rule: rules.LateFeeRule, out: ArrearsPass
) -> None:
    school_id, bill_id = bill["school_id"], bill["id"]
    plan_rows = await tx.fetch(
        "SELECT seq, due_date, amount, late_fee_line_id FROM bill_instalments "
        "WHERE school_id = $1 AND bill_id = $2 ORDER BY seq",
        school_id,
        bill_id,
    )
    items = await tx.fetchrow(
        "SELECT coalesce(sum(amount), 0)::bigint AS owed, coalesce(sum(paid), 0)::bigint AS paid "
        "FROM bill_lines WHERE school_id = $1 AND bill_id = $2 AND kind <> 'late_fee'",
        school_id,
        bill_id,
    )
    assert items is not None
    if not plan_rows:
        # without a plan the whole bill is one instalment due on the bill's date
        plan = [rules.Instalment(1, bill["due_date"], items["owed"])]
        charged: set[int] = set()
    else:
        plan = [rules.Instalment(r["seq"], r["due_date"], r["amount"]) for r in plan_rows]
        charged = {r["seq"] for r in plan_rows if r["late_fee_line_id"] is not None}
    for inst, short in rules.late_instalments(plan, items["paid"], today, fee_rule.grace_days):
        if inst.seq in charged:
            continue
        fee = fee_rule.fee(short)
        if fee <= 0:
            continue
        name = f"滞纳金 late fee ({inst.seq}/{len(plan)})"
        line_id = await tx.fetchval(
            """INSERT INTO bill_lines(school_id, bill_id, item_id, kind, name, original, amount,
                                      due_date)
               VALUES ($1, $2, NULL, 'late_fee', $3, $4, $4, $5) RETURNING id""",
            school_id,
            bill_id,
            name,
            fee,
            today,
        )
        if plan_rows:
            await tx.execute(
                "UPDATE bill_instalments SET late_fee_line_id = $3 "
                "WHERE school_id = $1 AND bill_id = $2 AND seq = $4",
                school_id,
                bill_id,
                line_id,
                inst.seq,
            )
        else:
            await tx.execute(
                """INSERT INTO bill_instalments(school_id, bill_id, seq, due_date, amount,
                                                late_fee_line_id)
                   VALUES ($1, $2, 1, $3, $4, $5)""",
                school_id,
                bill_id,
                inst.due_date,
                inst.amount,
                line_id,
            )
        await notifications.notify(
            tx,
            school_id=school_id,
            person_id=bill["person_id"],
            kind="bill_late_fee",
            title=i18n.message("notice.bill_late_fee.title"),
            body=i18n.message(
                "notice.bill_late_fee.body",
                seq=inst.seq,
                amount=i18n.money(short),
                fee=i18n.money(fee),
            ),
            data={"bill_id": bill_id, "line_id": line_id},
            dedupe_key=f"bill_late_fee:{school_id}:{line_id}",
        )
        out.late_fees += 1
        out.late_fee_amount += fee
    await books.refresh_bill(tx, school_id, bill_id)


async def _remind(tx: Tx, bill: dict[str, Any], bucket: str, due: date) -> bool:
    school_id = bill["school_id"]
    new = await tx.fetchval(
        """INSERT INTO bill_reminders(school_id, bill_id, bucket) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING RETURNING true""",
        school_id,
        bill["id"],
        bucket,
    )
    if not new:
        return False
    # notice.bill_reminder.due_soon, .d1_30, .d31_60, .d61_90, .d90_plus
    title = i18n.message(f"notice.bill_reminder.{bucket}")
    body = i18n.message(
        "notice.bill_reminder.body",
        term=bill["term"],
        amount=i18n.money(bill["total"] - bill["paid"]),
        due=i18n.day(due),
    )
    data = {"bill_id": bill["id"], "bucket": bucket}
    phone = await tx.fetchval(
        "SELECT phone FROM persons WHERE school_id = $1 AND id = $2", school_id, bill["person_id"]
    )
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=bill["person_id"],
        kind="bill_reminder",
        title=title,
        body=body,
        data=data,
        sms_phone=phone if bucket != "due_soon" else None,
        dedupe_key=f"bill_reminder:{school_id}:{bill['id']}:{bucket}",
    )
    for g in await tx.fetch(
        "SELECT user_id FROM guardian_links WHERE school_id = $1 AND person_id = $2",
        school_id,
        bill["person_id"],
    ):
        await notifications.notify(
            tx,
            school_id=school_id,
            user_id=g["user_id"],
            kind="bill_reminder",
            title=title,
            body=body,
            data=data | {"person_id": bill["person_id"]},
            dedupe_key=f"bill_reminder:{school_id}:{bill['id']}:{bucket}:{g['user_id']}",
        )
    return True
