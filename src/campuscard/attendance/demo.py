"""The demo's attendance: the first class signs in for morning reading at the gates on school
days (parents told of an absence), its teacher is the demo teacher, and it has a week behind
it — mostly on time, some late, a few absent, one sick leave approved, one waiting, and one
correction by the teacher."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from campuscard.access import rules as access_rules
from campuscard.access.demo import DEMO
from campuscard.access.lists import school_days
from campuscard.attendance import leaves, model, rules, sheets
from campuscard.db.tx import Tx
from campuscard.platform.actors import Actor

GATES = ("GATE-DEMO-01", "GATE-DEMO-02")
DAYS = 7


async def ensure_demo_attendance(tx: Tx, school_id: int) -> None:
    """Once: a demo made before attendance gets it on its next load."""
    if await tx.fetchval("SELECT 1 FROM attendance_points WHERE school_id = $1", school_id):
        return
    class_id = await tx.fetchval(
        "SELECT id FROM classes WHERE school_id = $1 AND kind = 'class' ORDER BY id LIMIT 1",
        school_id,
    )
    teacher = await tx.fetchval(
        "SELECT id FROM users WHERE school_id = $1 AND username = 'teacher'", school_id
    )
    doors = await tx.fetch(
        """SELECT d.id, d.terminal_id, t.sn FROM access_doors d
             JOIN terminals t ON t.school_id = d.school_id AND t.id = d.terminal_id
            WHERE d.school_id = $1 AND t.sn = ANY($2::text[]) ORDER BY t.sn""",
        school_id,
        list(GATES),
    )
    if class_id is None or teacher is None or not doors:
        return
    await model.set_class_teachers.in_tx(tx, DEMO, school_id, class_id, user_ids=[teacher])
    point = await model.create_point.in_tx(
        tx, DEMO, school_id, name="校门 Gates", kind="gate", door_ids=[d["id"] for d in doors]
    )
    rule_id = await model.create_rule.in_tx(
        tx,
        DEMO,
        school_id,
        class_id=class_id,
        point_id=point,
        name="早读 Morning reading",
        weekdays=[1, 2, 3, 4, 5],
        opens_at=time(7, 0),
        on_time_until=time(7, 40),
        closes_at=time(8, 0),
        direction="in",
        notify_guardians=True,
    )
    tz = ZoneInfo(await tx.fetchval("SELECT timezone FROM schools WHERE id = $1", school_id))
    now = datetime.now(tz)
    today = now.date()
    await tx.execute(
        "UPDATE attendance_rules SET created_at = $3 WHERE school_id = $1 AND id = $2",
        school_id,
        rule_id,
        datetime.combine(today - timedelta(days=DAYS + 1), time(0), tzinfo=tz),
    )
    students = await tx.fetch(
        """SELECT p.id, p.number, c.number AS card FROM persons p
             JOIN cards c ON c.school_id = p.school_id AND c.person_id = p.id
                         AND c.state = 'active'
            WHERE p.school_id = $1 AND p.class_id = $2 AND p.kind = 'student'
            ORDER BY p.number""",
        school_id,
        class_id,
    )
    kinds = access_rules.day_kinds(
        today - timedelta(days=DAYS),
        DAYS + 1,
        await school_days(tx, school_id, today - timedelta(days=DAYS), DAYS + 1),
    )
    period = rules.Period(rule_id, "", point, frozenset(range(1, 6)), time(7), time(7, 40), time(8))
    seq = {
        d["terminal_id"]: int(
            await tx.fetchval(
                "SELECT coalesce(max(seq), 0) FROM access_events WHERE school_id = $1 "
                "AND terminal_id = $2",
                school_id,
                d["terminal_id"],
            )
        )
        for d in doors
    }
    school_days_seen = [
        today - timedelta(days=back)
        for back in range(DAYS, -1, -1)
        if rules.applies(period, access_rules.kind_of(today - timedelta(days=back), kinds))
    ]
    if len(school_days_seen) < 2:
        return
    sick_day = school_days_seen[-2]  # student 2 stays in bed that day
    rows = []
    for day in school_days_seen:
        back = (today - day).days
        for i, s in enumerate(students):
            if (i + back) % 17 == 5 or (i == 1 and day == sick_day):
                continue  # absent
            minute = 10 + (i * 7 + back * 3) % 28  # 07:10-07:37 on time
            if (i + back) % 11 == 3:
                minute = 42 + (i % 15)  # 07:42-07:56 late
            at = datetime.combine(day, time(7, minute), tzinfo=tz)
            if at > now:
                continue
            door = doors[i % len(doors)]
            seq[door["terminal_id"]] += 1
            rows.append(
                (
                    school_id,
                    door["terminal_id"],
                    seq[door["terminal_id"]],
                    door["id"],
                    s["card"],
                    s["id"],
                    at,
                )
            )
    await tx.executemany(
        """INSERT INTO access_events(school_id, terminal_id, seq, door_id, kind, direction,
                                     card_number, person_id, occurred_at)
           VALUES ($1, $2, $3, $4, 'granted', 'in', $5, $6, $7)""",
        rows,
    )
    if len(students) < 4:
        return
    # a sick day approved by the teacher, one request waiting, one card left at home
    sick = students[1]
    leave_id = await leaves.request_leave.in_tx(
        tx,
        Actor(name=sick["number"], school_id=school_id, person_id=sick["id"]),
        school_id,
        sick["id"],
        kind="sick",
        starts_at=datetime.combine(sick_day, time(0), tzinfo=tz),
        ends_at=datetime.combine(sick_day, time(18), tzinfo=tz),
        reason="感冒发烧，在宿舍休息 Fever, resting in the dormitory",
    )
    await leaves.decide_leave.in_tx(
        tx, DEMO, school_id, leave_id, approve=True, note="好好休息 Get well"
    )
    waiting = students[2]
    await leaves.request_leave.in_tx(
        tx,
        Actor(name=waiting["number"], school_id=school_id, person_id=waiting["id"]),
        school_id,
        waiting["id"],
        kind="personal",
        starts_at=datetime.combine(today + timedelta(days=2), time(0), tzinfo=tz),
        ends_at=datetime.combine(today + timedelta(days=3), time(0), tzinfo=tz),
        reason="回家参加姐姐婚礼 My sister's wedding at home",
    )
    forgot = students[3]
    await sheets.set_mark.in_tx(
        tx,
        DEMO,
        school_id,
        class_id,
        rule_id=rule_id,
        day=school_days_seen[0],
        person_id=forgot["id"],
        status="present",
        note="忘带卡，已到 Card left at home, was there",
    )
