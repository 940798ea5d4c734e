"""The demo campus has gates, a dormitory and a library with grants, residents, a visitor, a
week of door events, and lists its door controllers can fetch; loading it twice changes
nothing; its first class has a week of attendance kept by the demo teacher."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from campuscard import demo
from campuscard.access import lists
from campuscard.attendance import leaves, sheets
from campuscard.db.pool import Conn, PgPool
from campuscard.platform import auth


async def test_demo_doors_residents_visitor_and_a_week_of_events(conn: Conn, pool: PgPool) -> None:
    campus = await demo.load_demo(conn)
    await demo.load_demo(conn)  # idempotent
    doors = await conn.fetchval(
        "SELECT count(*) FROM access_doors WHERE school_id = $1", campus.school_id
    )
    assert doors == 4
    residents = await conn.fetchval("SELECT count(*) FROM access_dorm_assignments")
    assert residents == 20
    days = await conn.fetchval(
        "SELECT count(DISTINCT occurred_at::date) FROM access_events WHERE kind = 'granted'"
    )
    assert days >= 7
    await lists.do_refresh(pool, campus.school_id)
    # every resident is on the dormitory list; the visitor is on the gates' list
    per_group = dict(
        await conn.fetch(
            """SELECT g.name, count(*) FROM access_entries e
                 JOIN access_door_groups g ON g.school_id = e.school_id AND g.id = e.group_id
                GROUP BY g.name"""
        )
    )
    assert per_group["7号楼 Building 7"] == 20
    assert await conn.fetchval("SELECT 1 FROM access_entries WHERE card_number = '990000000001'")

    # the first class's week of attendance, as its teacher sees it
    class_id = await conn.fetchval(
        "SELECT class_id FROM attendance_rules WHERE school_id = $1", campus.school_id
    )
    teacher = await auth.load_actor(
        conn, await conn.fetchval("SELECT id FROM users WHERE username = 'teacher'")
    )
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    seen: set[str] = set()
    for back in range(1, 8):
        sheet = await sheets.daily_sheet(
            conn, teacher, campus.school_id, class_id, today - timedelta(days=back)
        )
        seen |= {c.status for r in sheet.rows for c in r.cells}
    assert {"present", "late", "absent", "leave"} <= seen
    pending = await leaves.leaves_to_decide(conn, teacher, campus.school_id)
    assert len(pending) == 1
