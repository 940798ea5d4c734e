"""Credit lines: the settlement center gives a person (usually staff) a limit below zero; the
cash purse's floor becomes -limit, so payments and bills may use it (the payment engine reads
the floor) and nothing else can (a withdrawal or payout is refused below zero). A top-up lands
on the negative balance and so repays the credit first. The statement shows the credit used,
what is left, since when it is owed and when it falls due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger.money import fmt
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

MAX_LIMIT = 1_000_000  # 10,000.00 yuan
ROLES = ("settlement", "school_admin")


@dataclass(frozen=True)
class Statement:
    person_id: int
    credit_limit: str
    state: str
    balance: str
    credit_used: str
    credit_left: str
    in_debt_since: str | None
    due_at: str | None
    overdue_since: str | None
    repay_days: int


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _cash(tx: Tx | Conn | PgPool, school_id: int, person_id: int, *, lock: bool) -> Any:
    return await tx.fetchrow(
        "SELECT id, balance, held, floor FROM accounts WHERE school_id = $1 AND person_id = $2 "
        "AND kind = 'purse' AND purse = 'cash'" + (" FOR UPDATE" if lock else ""),
        school_id,
        person_id,
    )


@owns_transaction
async def do_set_credit_line(
    tx: Tx, actor: Actor, school_id: int, person_id: int, *, credit_limit: int, repay_days: int
) -> Statement:
    """Give, change or (limit 0) close a person's credit line; what is already owed stays owed."""
    actor.require(*ROLES, school_id=school_id)
    if type(credit_limit) is not int or not 0 <= credit_limit <= MAX_LIMIT:
        raise ValidationFailed("credit_limit must be 0.00 to 10000.00", field="credit_limit")
    if type(repay_days) is not int or not 1 <= repay_days <= 90:
        raise ValidationFailed("repay_days must be 1 to 90", field="repay_days")
    cash = await _cash(tx, school_id, person_id, lock=True)
    if cash is None:
        raise NotFound("no such cardholder with a purse", field="person_id")
    owed = max(-(cash["balance"] - cash["held"]), 0)
    if owed > credit_limit:
        raise Conflict(
            f"the person owes {fmt(owed)}: the limit cannot go below it",
            code="CREDIT_BELOW_OWED",
            field="credit_limit",
        )
    before = await tx.fetchrow(
        "SELECT * FROM credit_lines WHERE school_id = $1 AND person_id = $2 FOR UPDATE",
        school_id,
        person_id,
    )
    state = "closed" if credit_limit == 0 else "active"
    if before is not None and before["state"] == "overdue" and owed > 0:
        state = "overdue"  # a new limit does not lift an overdue stop
    await tx.execute(
        """INSERT INTO credit_lines(school_id, person_id, credit_limit, repay_days, state, set_by,
                                    overdue_since)
           VALUES ($1, $2, $3, $4, $5, $6, NULL)
           ON CONFLICT (school_id, person_id) DO UPDATE SET credit_limit = $3, repay_days = $4,
               state = $5, set_by = $6, updated_at = EXCLUDED.updated_at,
               overdue_since = CASE WHEN $5 = 'overdue' THEN credit_lines.overdue_since END""",
        school_id,
        person_id,
        credit_limit,
        repay_days,
        state,
        actor.name,
    )
    floor = -owed if state == "overdue" else -credit_limit
    await tx.execute(
        "UPDATE accounts SET floor = $2 WHERE school_id = $3 AND id = $1",
        cash["id"],
        floor,
        school_id,
    )
    await audit.record(
        tx,
        actor,
        "credit.set_line",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        before={"limit": fmt(before["credit_limit"])} if before is not None else None,
        after={"limit": fmt(credit_limit), "repay_days": repay_days, "state": state},
    )
    return await statement_of(tx, school_id, person_id)


async def statement_of(conn: Tx | Conn | PgPool, school_id: int, person_id: int) -> Statement:
    row = await conn.fetchrow(
        """SELECT l.*, a.balance, a.held, a.floor FROM credit_lines l
             JOIN accounts a ON a.school_id = l.school_id AND a.person_id = l.person_id
                            AND a.kind = 'purse' AND a.purse = 'cash'
            WHERE l.school_id = $1 AND l.person_id = $2""",
        school_id,
        person_id,
    )
    if row is None:
        raise NotFound("this person has no credit line", field="person_id")
    available = row["balance"] - row["held"]
    used = max(-available, 0)
    left = max(-min(row["floor"], 0) - used, 0)  # the floor is -limit, or -owed when overdue
    since = row["in_debt_since"]
    return Statement(
        person_id=person_id,
        credit_limit=fmt(row["credit_limit"]),
        state=row["state"],
        balance=fmt(row["balance"]),
        credit_used=fmt(used),
        credit_left=fmt(left),
        in_debt_since=_iso(since) if used else None,
        due_at=_iso(since + timedelta(days=row["repay_days"])) if used and since else None,
        overdue_since=_iso(row["overdue_since"]),
        repay_days=row["repay_days"],
    )


async def get_statement(
    conn: Conn | PgPool, actor: Actor, school_id: int, person_id: int
) -> Statement:
    """The holder's own credit, or any person's for the settlement center."""
    if actor.person_id != person_id and not actor.has(*ROLES, school_id=school_id):
        raise NotFound("no such person", field="person_id")
    return await statement_of(conn, school_id, person_id)


async def after_topup(tx: Tx, school_id: int, person_id: int) -> None:
    """Every top-up calls this (with the offline repayment) once the cash purse is credited: an
    overdue line's stop follows what is still owed, so a top-up repays the credit and cannot be
    spent as new credit. One statement on the row the top-up already locked."""
    await tx.execute(
        """UPDATE accounts a SET floor = least(a.balance - a.held, 0)
             FROM credit_lines l
            WHERE l.school_id = $1 AND l.person_id = $2 AND l.state = 'overdue'
              AND a.school_id = l.school_id AND a.person_id = l.person_id AND a.kind = 'purse'
              AND a.purse = 'cash' AND a.floor < least(a.balance - a.held, 0)""",
        school_id,
        person_id,
    )
