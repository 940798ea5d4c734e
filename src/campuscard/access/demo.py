"""The demo campus's doors: two gates in a soft anti-passback zone, dormitory building 7 with
its residents, the library; schedules with a night across midnight and holiday hours, grants,
a visiting scholar's temporary card, the National Day closure of the library, and a week of
door events at the gates and the dormitory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campuscard.access import model, visitors
from campuscard.db.tx import Tx
from campuscard.platform.actors import Actor, Grant

DEMO = Actor(name="demo", grants=frozenset({Grant("platform_admin", None)}))
DOORS = {
    # sn: (door name, location, exit reader, in the campus zone)
    "GATE-DEMO-01": ("东门 East gate", "东门岗亭 East gate lodge", True, True),
    "GATE-DEMO-02": ("西门 West gate", "西门岗亭 West gate lodge", True, True),
    "DORM-DEMO-07": ("7号楼 Building 7", "7号楼大厅 Building 7 hall", True, False),
    "LIB-DEMO-01": ("图书馆 Library", "图书馆一楼闸机 Library ground floor", True, False),
}
WEEK = {str(d): [["05:30", "23:30"]] for d in range(1, 8)}
# dormitory: 06:00-23:00 on weekdays, Friday and Saturday nights until 00:30
DORM_WEEK = {str(d): [["06:00", "23:00"]] for d in range(1, 5)} | {
    "5": [["06:00", "00:30"]],
    "6": [["06:00", "00:30"]],
    "7": [["06:00", "23:00"]],
}
LIBRARY_WEEK = {str(d): [["08:00", "22:00"]] for d in range(1, 8)}
RESIDENTS = 20  # students 1-20 live in building 7


async def ensure_demo_access(tx: Tx, school_id: int, student_numbers: list[str]) -> None:
    """Create the doors once; a demo database made before them gets them too."""
    if await tx.fetchval("SELECT 1 FROM terminals WHERE sn = 'GATE-DEMO-01'"):
        return
    for sn, (_name, location, _exit, _zone) in DOORS.items():
        await tx.execute(
            "INSERT INTO terminals(school_id, sn, kind, location) VALUES ($1, $2, 'door', $3)",
            school_id,
            sn,
            location,
        )
    zone = await model.create_zone.in_tx(
        tx, DEMO, school_id, name="校园 Campus", antipassback="soft", reset_hour=4
    )
    door: dict[str, int] = {}
    for sn, (name, _loc, exit_reader, in_zone) in DOORS.items():
        door[sn] = await model.create_door.in_tx(
            tx,
            DEMO,
            school_id,
            name=name,
            terminal_sn=sn,
            zone_id=zone if in_zone else None,
            exit_reader=exit_reader,
            apb_seconds=0,
        )
    gates = await model.create_group.in_tx(
        tx,
        DEMO,
        school_id,
        name="校门 Gates",
        door_ids=[door["GATE-DEMO-01"], door["GATE-DEMO-02"]],
    )
    dorm = await model.create_group.in_tx(
        tx, DEMO, school_id, name="7号楼 Building 7", door_ids=[door["DORM-DEMO-07"]]
    )
    library = await model.create_group.in_tx(
        tx, DEMO, school_id, name="图书馆 Library", door_ids=[door["LIB-DEMO-01"]]
    )
    daily = await model.save_schedule.in_tx(
        tx, DEMO, school_id, name="日常 Daily", week=WEEK, holiday=[["07:00", "22:00"]]
    )
    night = await model.save_schedule.in_tx(
        tx, DEMO, school_id, name="宿舍 Dormitory", week=DORM_WEEK, holiday=[["06:00", "23:30"]]
    )
    reading = await model.save_schedule.in_tx(
        tx,
        DEMO,
        school_id,
        name="图书馆 Library hours",
        week=LIBRARY_WEEK,
        holiday=[["09:00", "17:00"]],
    )
    for role in ("student", "staff"):
        await model.grant_in_tx(
            tx,
            DEMO,
            school_id,
            subject="role",
            subject_value=role,
            group_id=gates,
            schedule_id=daily,
            valid_from=None,
            valid_until=None,
        )
        await model.grant_in_tx(
            tx,
            DEMO,
            school_id,
            subject="role",
            subject_value=role,
            group_id=library,
            schedule_id=reading,
            valid_from=None,
            valid_until=None,
        )
    building = await model.create_building.in_tx(
        tx, DEMO, school_id, name="7号楼 Building 7", group_id=dorm, schedule_id=night
    )
    people = await tx.fetch(
        "SELECT id, number FROM persons WHERE school_id = $1 AND number = ANY($2::text[])",
        school_id,
        student_numbers[:RESIDENTS],
    )
    for i, p in enumerate(sorted(people, key=lambda r: r["number"])):
        await model.assign_dorm.in_tx(
            tx,
            DEMO,
            school_id,
            person_id=p["id"],
            building_id=building,
            room=f"7-{301 + i // 4}",
        )
    today = await tx.fetchval("SELECT cc_business_date($1)", school_id)
    await model.set_calendar_day.in_tx(
        tx,
        DEMO,
        school_id,
        day=today + timedelta(days=14),
        kind="holiday",
        as_weekday=None,
        name="图书馆盘点闭馆 Library stocktaking",
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    await visitors.issue_visitor_card.in_tx(
        tx,
        DEMO,
        school_id,
        name="王访问 Wang (visiting scholar)",
        number="V2026001",
        phone=None,
        card_number="990000000001",
        card_uid="04AA0001",
        host="物理学院 李老师",
        purpose="学术交流 Academic visit",
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=6),
        group_ids=[gates, library],
        schedule_id=daily,
    )
    await _a_week_of_events(tx, school_id, door, student_numbers[:RESIDENTS])


async def _a_week_of_events(
    tx: Tx, school_id: int, door: dict[str, int], numbers: list[str]
) -> None:
    """Residents out through the east gate in the morning, back through the dormitory door in
    the evening, for the last seven days; a lost card refused; a door held open."""
    cards = await tx.fetch(
        """SELECT c.number, c.person_id FROM cards c JOIN persons p ON p.id = c.person_id
            WHERE c.school_id = $1 AND p.number = ANY($2::text[]) AND c.state = 'active'
            ORDER BY p.number""",
        school_id,
        numbers,
    )
    terminals = dict(
        await tx.fetch(
            "SELECT sn, id FROM terminals WHERE school_id = $1 AND kind = 'door'", school_id
        )
    )
    rows: list[tuple[object, ...]] = []
    seq = {"GATE-DEMO-01": 0, "DORM-DEMO-07": 0}
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(7, 0, -1):
        base = start - timedelta(days=day)
        for i, c in enumerate(cards):
            for sn, direction, hour in (("GATE-DEMO-01", "out", 0), ("DORM-DEMO-07", "in", 13)):
                seq[sn] += 1
                at = base + timedelta(hours=hour, minutes=(i * 3) % 50)  # 08:xx / 21:xx local
                rows.append(
                    (
                        school_id,
                        terminals[sn],
                        seq[sn],
                        door[sn],
                        "granted",
                        direction,
                        c["number"],
                        c["person_id"],
                        "",
                        "",
                        at,
                    )
                )
    seq["GATE-DEMO-01"] += 1
    rows.append(
        (
            school_id,
            terminals["GATE-DEMO-01"],
            seq["GATE-DEMO-01"],
            door["GATE-DEMO-01"],
            "denied",
            "in",
            "880000009999",
            None,
            "not_on_list",
            "",
            start - timedelta(hours=2),
        )
    )
    seq["DORM-DEMO-07"] += 1
    rows.append(
        (
            school_id,
            terminals["DORM-DEMO-07"],
            seq["DORM-DEMO-07"],
            door["DORM-DEMO-07"],
            "held_open",
            None,
            None,
            None,
            "",
            "",
            start - timedelta(hours=3),
        )
    )
    await tx.executemany(
        """INSERT INTO access_events(school_id, terminal_id, seq, door_id, kind, direction,
                                     card_number, person_id, reason, flag, occurred_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        rows,
    )
