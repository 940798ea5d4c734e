"""The pace reminder: once a day, each cardholder who asked for it is told (at most once a month)
when the month's spending runs ahead of their usual pace."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.ledger.money import Money
from campuscard.platform import notifications
from campuscard.platform.tasks import periodic
from campuscard.spending import analysis, rules


async def run_pace_reminders(pool: PgPool) -> int:
    """Remind everyone due; how many were reminded."""
    sent = 0
    people = await pool.fetch(
        "SELECT school_id, person_id FROM spending_prefs WHERE pace_reminder ORDER BY 1, 2"
    )
    for r in people:
        async with transaction(pool) as tx:
            pref = await tx.fetchrow(
                """SELECT pace_reminder, last_reminded_month FROM spending_prefs
                    WHERE school_id = $1 AND person_id = $2 FOR UPDATE""",
                r["school_id"],
                r["person_id"],
            )
            if pref is None or not pref["pace_reminder"]:
                continue
            a = await analysis.analyse(tx, r["school_id"], r["person_id"])
            if not rules.should_remind(a.today, a.pace, pref["last_reminded_month"]):
                continue
            month = a.today.replace(day=1)
            await tx.execute(
                """UPDATE spending_prefs SET last_reminded_month = $3
                    WHERE school_id = $1 AND person_id = $2""",
                r["school_id"],
                r["person_id"],
                month,
            )
            spent, usual = Money(a.pace.spent), Money(a.pace.expected)
            await notifications.notify(
                tx,
                school_id=r["school_id"],
                person_id=r["person_id"],
                kind="spending_pace",
                title={"zh-CN": "本月消费偏快", "en": "Spending ahead of your usual pace"},
                body={
                    "zh-CN": f"本月到今天已消费 {spent} 元，按往月的节奏此时约为 {usual} 元。",
                    "en": f"You have spent {spent} yuan this month so far; at your usual pace "
                    f"it would be about {usual} yuan by now.",
                },
                data={"month": month.isoformat()},
                dedupe_key=f"spending-pace:{r['school_id']}:{r['person_id']}:{month.isoformat()}",
            )
            sent += 1
    return sent


@periodic("spending-pace", seconds=3600)
async def pace_reminders(pool: PgPool, settings: Settings) -> int:
    return await run_pace_reminders(pool)
