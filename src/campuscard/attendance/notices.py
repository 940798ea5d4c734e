"""Closing a period: once its closing time (and a grace for readers that upload late) has
passed, the period's absences are counted and, when the rule says so, the parents of each
absent student are told — once per rule and day, whichever process gets there first."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from campuscard.access import rules as access_rules
from campuscard.access.lists import school_days
from campuscard.attendance import rules, sheets
from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.platform import i18n, notifications

# readers upload what they saw within seconds when online; this covers a short outage
CLOSE_GRACE = timedelta(minutes=10)
# a period missed while no worker ran is closed up to this many days later, never older
CATCH_UP_DAYS = 1


async def close_due_periods(pool: PgPool, *, now: datetime | None = None) -> int:
    """Close every period due in every school; returns how many were closed."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        due = await conn.fetch(
            """SELECT r.school_id, r.id, r.class_id, r.weekdays, r.opens_at, r.on_time_until,
                      r.closes_at, r.on_holidays, r.point_id, r.name, r.created_at, s.timezone
                 FROM attendance_rules r JOIN schools s ON s.id = r.school_id
                WHERE r.active ORDER BY r.school_id, r.id"""
        )
    closed = 0
    kinds_of: dict[int, dict[str, int]] = {}
    for r in due:
        tz = ZoneInfo(r["timezone"])
        today = now.astimezone(tz).date()
        if r["school_id"] not in kinds_of:
            start = today - timedelta(days=CATCH_UP_DAYS)
            async with pool.acquire() as conn:
                own = await school_days(conn, r["school_id"], start, CATCH_UP_DAYS + 1)
            kinds_of[r["school_id"]] = access_rules.day_kinds(start, CATCH_UP_DAYS + 1, own)
        period = rules.Period(
            id=r["id"],
            name=r["name"],
            point_id=r["point_id"],
            weekdays=frozenset(r["weekdays"]),
            opens_at=r["opens_at"],
            on_time_until=r["on_time_until"],
            closes_at=r["closes_at"],
            on_holidays=r["on_holidays"],
        )
        for back in range(CATCH_UP_DAYS, -1, -1):
            day = today - timedelta(days=back)
            if not rules.applies(period, access_rules.kind_of(day, kinds_of[r["school_id"]])):
                continue
            win = rules.window(period, day, tz)
            if win.closes + CLOSE_GRACE > now or win.opens < r["created_at"]:
                continue  # not over yet, or it began before the rule existed
            if await close_period(pool, r["school_id"], r["class_id"], r["id"], day, now=now):
                closed += 1
    return closed


@owns_transaction
async def close_period(
    tx: Tx, school_id: int, class_id: int, rule_id: int, day: date, *, now: datetime
) -> bool:
    """Count one period's absences and tell the parents; False if it was closed before."""
    first = await tx.fetchval(
        """INSERT INTO attendance_closed(school_id, rule_id, day, absent, notified)
           VALUES ($1, $2, $3, 0, 0) ON CONFLICT DO NOTHING RETURNING true""",
        school_id,
        rule_id,
        day,
    )
    if not first:
        return False
    rule = await tx.fetchrow(
        """SELECT name, notify_guardians FROM attendance_rules
            WHERE school_id = $1 AND id = $2""",
        school_id,
        rule_id,
    )
    assert rule is not None  # attendance_closed refers to it
    absent = [
        s
        for s, c in await sheets.period_statuses(tx, school_id, class_id, rule_id, day, now)
        if c.status == "absent"
    ]
    notified = 0
    if rule["notify_guardians"]:
        for s in absent:
            notified += await _tell_parents(tx, school_id, s, rule["name"], rule_id, day)
    await tx.execute(
        """UPDATE attendance_closed SET absent = $4, notified = $5
            WHERE school_id = $1 AND rule_id = $2 AND day = $3""",
        school_id,
        rule_id,
        day,
        len(absent),
        notified,
    )
    return True


async def _tell_parents(
    tx: Tx, school_id: int, student: sheets.Row, period: str, rule_id: int, day: date
) -> int:
    title = i18n.message("notice.attendance_absent.title")
    body = i18n.message(
        "notice.attendance_absent.body",
        name=student.name,
        number=student.number,
        day=i18n.day(day),
        period=period,
    )
    data = {"person_id": student.person_id, "rule_id": rule_id, "day": day.isoformat()}
    key = f"attendance_absent:{school_id}:{rule_id}:{day.isoformat()}:{student.person_id}"
    told = 0
    for g in await tx.fetch(
        "SELECT user_id FROM guardian_links WHERE person_id = $1 ORDER BY user_id",
        student.person_id,
    ):
        if await notifications.notify(
            tx,
            school_id=school_id,
            kind="attendance.absent",
            title=title,
            body=body,
            user_id=g["user_id"],
            data=data,
            dedupe_key=f"{key}:parent:{g['user_id']}",
        ):
            told += 1
    # a parent without a sign-in hears by SMS at the phone the school has on record
    for i, g in enumerate(
        await tx.fetch(
            "SELECT DISTINCT phone FROM guardians WHERE person_id = $1 ORDER BY phone",
            student.person_id,
        )
    ):
        if await notifications.notify(
            tx,
            school_id=school_id,
            kind="attendance.absent",
            title=title,
            body=body,
            person_id=student.person_id,
            data=data,
            sms_phone=g["phone"],
            dedupe_key=f"{key}:sms:{i}",
        ):
            told += 1
    return told
