"""Monthly analysis of a cardholder's purse: three months of canteen meals at 300.00 and 400.00
already this month read as income against spending by month and category, a month running
ahead of the usual pace; the pace reminder switched on goes out once a month (from its 5th)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from campuscard.db.pool import Conn, PgPool
from campuscard.demo_history import set_clock
from campuscard.ledger import postings
from campuscard.platform.actors import Actor
from campuscard.spending import analysis, jobs, rules
from tests.support import fund, make_school, make_student
from tests.support_payments import make_merchant


def _months_back(today: date, n: int) -> date:
    y, m = today.year, today.month - n
    while m < 1:
        y, m = y - 1, m + 12
    return date(y, m, 15)


async def _spend(conn: Conn, school: int, purse: int, shop: int, fen: int, at: datetime) -> None:
    async with conn.transaction():
        await set_clock(conn, at)
        await postings.post(
            conn, school_id=school, kind="payment", legs=postings.legs_move(purse, shop, fen)
        )


async def test_months_by_category_the_pace_and_one_reminder_a_month(
    pool: PgPool, conn: Conn
) -> None:
    school = await make_school(conn)
    merchant, _ = await make_merchant(conn, school.id)
    shop = await conn.fetchval(
        "SELECT id FROM accounts WHERE school_id = $1 AND merchant_id = $2 ORDER BY id LIMIT 1",
        school.id,
        merchant,
    )
    person = await make_student(conn, school.id, "S001")
    tz = ZoneInfo("Asia/Shanghai")
    today = await conn.fetchval("SELECT cc_business_date($1)", school.id)
    purse = (await postings.open_purses(conn, school.id, person))["cash"]
    await fund(conn, school.id, person, cash=200_000)
    for n in (3, 2, 1):
        day = _months_back(today, n)
        await _spend(conn, school.id, purse, shop, 30_000, datetime.combine(day, time(12), tz))
    await _spend(conn, school.id, purse, shop, 40_000, datetime.now(tz) - timedelta(minutes=1))

    seen = await analysis.analyse(conn, school.id, person)
    assert [m.spending for m in seen.months[-4:]] == [
        {"canteen": 30_000},
        {"canteen": 30_000},
        {"canteen": 30_000},
        {"canteen": 40_000},
    ]
    assert seen.months[-1].income_total == 200_000 and seen.months[0].spending_total == 0
    # 400.00 against a usual 300.00 a month is ahead on any day of the month
    assert (seen.pace.spent, seen.pace.usual_month, seen.pace.ahead) == (40_000, 30_000, True)
    assert not seen.reminder_on

    me = Actor("S001", person_id=person, school_id=school.id)
    assert await analysis.do_set_pace_reminder(pool, me, enabled=True) is True
    assert (await analysis.analyse(conn, school.id, person)).reminder_on
    expected = 1 if today.day >= rules.FIRST_DAY else 0
    assert await jobs.run_pace_reminders(pool) == expected
    assert await jobs.run_pace_reminders(pool) == 0
    sent = await conn.fetchval(
        """SELECT count(*) FROM notifications
            WHERE school_id = $1 AND person_id = $2 AND kind = 'spending_pace'""",
        school.id,
        person,
    )
    assert sent == expected
