"""The finance office's side of bills: fee items per term and their rates per class, major or
dorm; issuing the term's bills; instalment plans; green-channel deferrals. Every use case needs
the 'settlement' role of the school (a school admin may too) and is audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from campuscard.bills import books, holds, rules
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger.money import Money, fmt
from campuscard.platform import audit, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

FINANCE = ("settlement",)


@dataclass(frozen=True)
class Rate:
    scope: str
    value: str
    amount: Money


def item_view(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "term": r["term"],
        "kind": r["kind"],
        "name": r["name"],
        "amount": fmt(r["amount"]) if r["amount"] is not None else None,
        "due_date": r["due_date"].isoformat(),
    }


@owns_transaction
async def do_create_item(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    term: str,
    kind: str,
    name: str,
    amount: Money | None,
    due_date: date,
    rates: Sequence[Rate] = (),
) -> dict[str, Any]:
    """A fee item of a term, with its amount for everyone and/or per class, major or dorm
    (neither: the item is billed from sheets, student by student)."""
    actor.require(*FINANCE, school_id=school_id)
    rules.check_term(term)
    if kind not in rules.ITEM_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(rules.ITEM_KINDS)}", field="kind")
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise ValidationFailed("name must be 1-64 characters", field="name")
    # no amount and no rates: an item billed only from bill sheets (bills/sheets.py)
    seen: set[tuple[str, str]] = set()
    class_ids: dict[str, int] = {}
    for i, rate in enumerate(rates):
        where = f"rates[{i}]"
        if rate.scope not in rules.SCOPES:
            raise ValidationFailed("scope must be class, major or dorm", field=f"{where}.scope")
        value = rate.value.strip()
        if not 1 <= len(value) <= 64:
            raise ValidationFailed("value must be 1-64 characters", field=f"{where}.value")
        if (rate.scope, value) in seen:
            raise ValidationFailed("this rate is given twice", field=f"{where}.value")
        seen.add((rate.scope, value))
        if rate.scope == "class":
            cid = await tx.fetchval(
                "SELECT id FROM classes WHERE school_id = $1 AND name = $2", school_id, value
            )
            if cid is None:
                raise ValidationFailed(f"no class named {value!r}", field=f"{where}.value")
            class_ids[value] = cid
    if await tx.fetchval(
        "SELECT 1 FROM fee_items WHERE school_id = $1 AND term = $2 AND name = $3",
        school_id,
        term,
        name,
    ):
        raise Conflict(
            f"term {term} already has an item {name!r}", code="ITEM_EXISTS", field="name"
        )
    row = await tx.fetchrow(
        """INSERT INTO fee_items(school_id, term, kind, name, amount, due_date, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *""",
        school_id,
        term,
        kind,
        name,
        amount.fen if amount else None,
        due_date,
        actor.name,
    )
    assert row is not None
    await tx.executemany(
        """INSERT INTO fee_item_rates(school_id, item_id, scope, scope_value, amount)
           VALUES ($1, $2, $3, $4, $5)""",
        [
            (
                school_id,
                row["id"],
                r.scope,
                str(class_ids.get(r.value.strip(), r.value.strip())),
                r.amount.fen,
            )
            if r.scope == "class"
            else (school_id, row["id"], r.scope, r.value.strip(), r.amount.fen)
            for r in rates
        ],
    )
    view = item_view(row) | {
        "rates": [
            {"scope": r.scope, "value": r.value.strip(), "amount": str(r.amount)} for r in rates
        ]
    }
    await audit.record(
        tx,
        actor,
        "bills.item.create",
        school_id=school_id,
        target_type="fee_item",
        target_id=row["id"],
        after=view,
    )
    return view


# Each enrolled student's amount for each item of the term: the class rate, else the major's,
# else the dorm's, else the item's own amount; nothing when none applies or it is zero.
_AMOUNTS_SQL = """
SELECT p.id AS person_id, i.id AS item_id, i.kind, i.name, i.due_date,
       coalesce(rc.amount, rm.amount, rd.amount, i.amount) AS amount
  FROM persons p
  JOIN fee_items i ON i.school_id = p.school_id AND i.term = $2
  LEFT JOIN fee_item_rates rc ON rc.school_id = i.school_id AND rc.item_id = i.id
        AND rc.scope = 'class' AND rc.scope_value = p.class_id::text
  LEFT JOIN fee_item_rates rm ON rm.school_id = i.school_id AND rm.item_id = i.id
        AND rm.scope = 'major' AND rm.scope_value = p.major
  LEFT JOIN fee_item_rates rd ON rd.school_id = i.school_id AND rd.item_id = i.id
        AND rd.scope = 'dorm' AND rd.scope_value = p.dorm
 WHERE p.school_id = $1 AND p.kind = 'student' AND p.status = 'enrolled'
   AND ($3::bigint[] IS NULL OR p.id = ANY($3::bigint[]))
"""


@owns_transaction
async def do_issue_bills(
    tx: Tx, actor: Actor, school_id: int, *, term: str, person_ids: Sequence[int] | None = None
) -> dict[str, Any]:
    """Bill every enrolled student (or those given) for the term's items. Items already on a
    bill are left as they are, so issuing again after adding an item adds only that item."""
    actor.require(*FINANCE, school_id=school_id)
    rules.check_term(term)
    if not await tx.fetchval(
        "SELECT 1 FROM fee_items WHERE school_id = $1 AND term = $2", school_id, term
    ):
        raise NotFound(f"term {term} has no fee items", field="term")
    ids = list(person_ids) if person_ids is not None else None
    # two statements: a CTE does not see the rows another CTE of its statement inserts
    created = await tx.fetchval(
        f"""WITH amounts AS ({_AMOUNTS_SQL}),
            new_bills AS (
                INSERT INTO bills(school_id, person_id, term, due_date)
                SELECT $1, person_id, $2, min(due_date) FROM amounts WHERE amount > 0
                 GROUP BY person_id
                ON CONFLICT (school_id, person_id, term) DO NOTHING RETURNING id)
            SELECT count(*) FROM new_bills""",
        school_id,
        term,
        ids,
    )
    result = await tx.fetchrow(
        f"""WITH amounts AS ({_AMOUNTS_SQL}),
            new_lines AS (
                INSERT INTO bill_lines(school_id, bill_id, item_id, kind, name, original, amount,
                                       due_date)
                SELECT $1, b.id, d.item_id, d.kind, d.name, d.amount, d.amount, d.due_date
                  FROM amounts d JOIN bills b
                    ON b.school_id = $1 AND b.term = $2 AND b.person_id = d.person_id
                 WHERE d.amount > 0
                ON CONFLICT (school_id, bill_id, item_id) DO NOTHING RETURNING bill_id, amount)
            SELECT (SELECT count(*) FROM new_lines) AS lines,
                   (SELECT coalesce(sum(amount), 0) FROM new_lines)::bigint AS amount,
                   (SELECT array_agg(DISTINCT bill_id) FROM new_lines) AS touched""",
        school_id,
        term,
        ids,
    )
    assert result is not None
    touched = list(result["touched"] or [])
    for bill_id in touched:
        await books.refresh_bill(tx, school_id, bill_id)
    # new bills and new lines are announced to each student once per issue
    rows = await tx.fetch(
        """SELECT b.id, b.person_id, b.total - b.paid AS owed, b.due_date FROM bills b
            WHERE b.school_id = $1 AND b.id = ANY($2::bigint[])""",
        school_id,
        touched,
    )
    for r in rows:
        await notifications.notify(
            tx,
            school_id=school_id,
            person_id=r["person_id"],
            kind="bill_issued",
            title=i18n.message("notice.bill_issued.title"),
            body=i18n.message(
                "notice.bill_issued.body",
                term=term,
                amount=i18n.money(r["owed"]),
                due=i18n.day(r["due_date"]),
            ),
            data={"bill_id": r["id"]},
        )
    summary = {
        "term": term,
        "bills_created": int(created),
        "lines_added": int(result["lines"]),
        "amount": fmt(int(result["amount"])),
        "bills_touched": len(touched),
    }
    await audit.record(
        tx,
        actor,
        "bills.issue",
        school_id=school_id,
        target_type="term",
        target_id=term,
        after=summary,
    )
    return summary


@owns_transaction
async def do_set_plan(
    tx: Tx,
    actor: Actor,
    school_id: int,
    bill_id: int,
    *,
    instalments: int,
    first_due: date,
    every_days: int,
) -> dict[str, Any]:
    """Split what is left of a bill's items into instalments (分期); replaces a plan none of
    whose instalments has been charged a late fee."""
    actor.require(*FINANCE, school_id=school_id)
    bill = await books.lock_bill(tx, school_id, bill_id)
    owed_items = await tx.fetchval(
        "SELECT coalesce(sum(amount), 0)::bigint FROM bill_lines "
        "WHERE school_id = $1 AND bill_id = $2 AND kind <> 'late_fee'",
        school_id,
        bill_id,
    )
    paid_items = await tx.fetchval(
        "SELECT coalesce(sum(paid), 0)::bigint FROM bill_lines "
        "WHERE school_id = $1 AND bill_id = $2 AND kind <> 'late_fee'",
        school_id,
        bill_id,
    )
    if owed_items - paid_items <= 0:
        raise Conflict("nothing is left to pay on this bill", code="BILL_PAID", field="bill_id")
    if await tx.fetchval(
        "SELECT 1 FROM bill_instalments WHERE school_id = $1 AND bill_id = $2 "
        "AND late_fee_line_id IS NOT NULL",
        school_id,
        bill_id,
    ):
        raise Conflict(
            "an instalment of this plan was already charged a late fee; the plan stays",
            code="PLAN_CHARGED",
            field="bill_id",
        )
    plan = rules.split_plan(owed_items - paid_items, first_due, instalments, every_days)
    # what was paid before the plan counts as a first, settled part
    if paid_items:
        plan = [rules.Instalment(1, bill["created_at"].date(), paid_items)] + [
            rules.Instalment(p.seq + 1, p.due_date, p.amount) for p in plan
        ]
    await tx.execute(
        "DELETE FROM bill_instalments WHERE school_id = $1 AND bill_id = $2", school_id, bill_id
    )
    await tx.executemany(
        """INSERT INTO bill_instalments(school_id, bill_id, seq, due_date, amount)
           VALUES ($1, $2, $3, $4, $5)""",
        [(school_id, bill_id, p.seq, p.due_date, p.amount) for p in plan],
    )
    await tx.execute(
        "UPDATE bills SET due_date = $3, updated_at = now() WHERE school_id = $1 AND id = $2",
        school_id,
        bill_id,
        plan[-1].due_date,
    )
    view = {
        "bill_id": bill_id,
        "instalments": [
            {"seq": p.seq, "due_date": p.due_date.isoformat(), "amount": fmt(p.amount)}
            for p in plan
        ],
    }
    await audit.record(
        tx,
        actor,
        "bills.plan",
        school_id=school_id,
        target_type="bill",
        target_id=bill_id,
        after=view,
    )
    return view


@owns_transaction
async def do_defer(
    tx: Tx, actor: Actor, school_id: int, bill_id: int, *, until: date, reason: str
) -> dict[str, Any]:
    """Green channel (绿色通道): a student in hardship pays later, without late fees or holds
    until then; holds already placed are lifted."""
    actor.require(*FINANCE, school_id=school_id)
    reason = reason.strip()
    if not 2 <= len(reason) <= 200:
        raise ValidationFailed("say why, in 2-200 characters", field="reason")
    bill = await books.lock_bill(tx, school_id, bill_id)
    if bill["status"] == "paid":
        raise Conflict("this bill is paid in full", code="BILL_PAID", field="bill_id")
    today = await tx.fetchval("SELECT cc_business_date($1)", school_id)
    if until <= today or (until - today).days > 366:
        raise ValidationFailed("until must be after today and within a year", field="until")
    await tx.execute(
        """UPDATE bills SET deferred_until = $3, deferral_reason = $4, deferred_by = $5,
                  updated_at = now() WHERE school_id = $1 AND id = $2""",
        school_id,
        bill_id,
        until,
        reason,
        actor.name,
    )
    lifted = await holds.lift_for_bill(tx, school_id, bill_id, why="deferred")
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=bill["person_id"],
        kind="bill_deferred",
        title=i18n.message("notice.bill_deferred.title"),
        body=i18n.message("notice.bill_deferred.body", term=bill["term"], until=i18n.day(until)),
        data={"bill_id": bill_id},
    )
    view = {"bill_id": bill_id, "deferred_until": until.isoformat(), "holds_lifted": lifted}
    await audit.record(
        tx,
        actor,
        "bills.defer",
        school_id=school_id,
        target_type="bill",
        target_id=bill_id,
        before={
            "deferred_until": bill["deferred_until"].isoformat() if bill["deferred_until"] else None
        },
        after=view | {"reason": reason},
    )
    return view
