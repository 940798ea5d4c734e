"""The credit clock: when a purse went below zero, when its credit falls overdue (monitoring
hears of it, the holder is told, the floor is raised to what is owed so no further credit is
given), and back to normal once a top-up has repaid it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.monitoring import signals
from campuscard.platform import i18n, notifications
from campuscard.platform.tasks import periodic


@dataclass
class CreditTick:
    went_into_debt: int = 0
    fell_overdue: int = 0
    repaid: int = 0


async def check_line(tx: Tx, school_id: int, person_id: int, tick: CreditTick) -> None:
    cash = await tx.fetchrow(
        """SELECT id, balance - held AS available, floor FROM accounts
            WHERE school_id = $1 AND person_id = $2 AND kind = 'purse' AND purse = 'cash'
            FOR UPDATE""",
        school_id,
        person_id,
    )
    line = await tx.fetchrow(
        "SELECT * FROM credit_lines WHERE school_id = $1 AND person_id = $2 FOR UPDATE",
        school_id,
        person_id,
    )
    if cash is None or line is None:
        return
    now = datetime.now(UTC)
    available = int(cash["available"])
    if available >= 0:
        if line["in_debt_since"] is not None or line["state"] == "overdue":
            state = "closed" if line["credit_limit"] == 0 else "active"
            await tx.execute(
                """UPDATE credit_lines SET in_debt_since = NULL, overdue_since = NULL, state = $3,
                          updated_at = now() WHERE school_id = $1 AND person_id = $2""",
                school_id,
                person_id,
                state,
            )
            await tx.execute(
                "UPDATE accounts SET floor = $2 WHERE school_id = $3 AND id = $1",
                cash["id"],
                -line["credit_limit"],
                school_id,
            )
            tick.repaid += 1
        return
    if line["in_debt_since"] is None:
        await tx.execute(
            "UPDATE credit_lines SET in_debt_since = now() WHERE school_id = $1 AND person_id = $2",
            school_id,
            person_id,
        )
        tick.went_into_debt += 1
        return
    if line["state"] == "overdue":
        # partly repaid: the stop follows what is still owed, never gives credit back
        if available > cash["floor"]:
            await tx.execute(
                "UPDATE accounts SET floor = $2 WHERE school_id = $3 AND id = $1",
                cash["id"],
                available,
                school_id,
            )
        return
    due = line["in_debt_since"] + timedelta(days=line["repay_days"])
    if due > now:
        return
    owed = -available
    await tx.execute(
        """UPDATE credit_lines SET state = 'overdue', overdue_since = now(), updated_at = now()
            WHERE school_id = $1 AND person_id = $2""",
        school_id,
        person_id,
    )
    await tx.execute(
        "UPDATE accounts SET floor = $2 WHERE school_id = $3 AND id = $1",
        cash["id"],
        available,
        school_id,
    )
    await signals.arrears(
        tx,
        school_id,
        person_id,
        overdue_amount=owed,
        oldest_due_date=due.date(),
        reason="校园卡信用额度逾期 overdue card credit",
    )
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=person_id,
        kind="credit_overdue",
        title=i18n.message("notice.credit_overdue.title"),
        body=i18n.message("notice.credit_overdue.body", amount=i18n.money(owed)),
        dedupe_key=f"credit:{school_id}:{person_id}:overdue:{line['in_debt_since'].isoformat()}",
    )
    tick.fell_overdue += 1


async def run_credit_pass(pool: PgPool) -> CreditTick:
    tick = CreditTick()
    rows = await pool.fetch(
        """SELECT l.school_id, l.person_id FROM credit_lines l
             JOIN accounts a ON a.school_id = l.school_id AND a.person_id = l.person_id
                            AND a.kind = 'purse' AND a.purse = 'cash'
            WHERE l.in_debt_since IS NOT NULL OR l.state = 'overdue' OR a.balance - a.held < 0
            ORDER BY l.school_id, l.person_id"""
    )
    for r in rows:
        async with transaction(pool) as tx:
            await check_line(tx, r["school_id"], r["person_id"], tick)
    return tick


@periodic("credit-lines", seconds=300)
async def credit_lines(pool: PgPool, settings: Settings) -> CreditTick:
    return await run_credit_pass(pool)
