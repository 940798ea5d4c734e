"""The pace reminder: once a day, each cardholder who asked for it is told (at most once a month)
when the month's spending runs ahead of their usual pace."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.platform import i18n, notifications
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
            await notifications.notify(
                tx,
                school_id=r["school_id"],
                person_id=r["person_id"],
                kind="spending_pace",
                title=i18n.message("notice.spending_pace.title"),
                body=i18n.message(
                    "notice.spending_pace.body",
                    spent=i18n.money(a.pace.spent),
                    usual=i18n.money(a.pace.expected),
                ),
                data={"month": month.isoformat()},
                dedupe_key=f"spending-pace:{r['school_id']}:{r['person_id']}:{month.isoformat()}",
            )
            sent += 1
    return sent


@periodic("spending-pace", seconds=3600)
async def pace_reminders(pool: PgPool, settings: Settings) -> int:
    return await run_pace_reminders(pool)
