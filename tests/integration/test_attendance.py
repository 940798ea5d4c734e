"""Attendance from door swipes through the real reader protocol: the daily sheet on an ordinary
day, a public holiday and a 调休 make-up workday; leave asked by the student and approved by
the class's teacher; the teacher's correction; the month's summary and workbook; absent
students' parents told once when the period closes; another teacher sees nothing; bad input is refused by field."""

from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
from openpyxl import load_workbook

from campuscard.access import model as access_model
from campuscard.attendance import model, notices
from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.people import directory
from tests.support import ROOT, make_user
from tests.support_access import Campus, bearer, controller, make_campus
from tests.support_payments import make_cardholder

TZ = ZoneInfo("Asia/Shanghai")
BASE = "/api/v1/admin/schools/TST/attendance"


async def _class_of_four(conn: Conn, campus: Campus) -> tuple[int, list[tuple[int, str]]]:
    """A class of four students with cards, all allowed through the gate at any hour."""
    sid = campus.school_id
    class_id = await directory.create_class(conn, ROOT, sid, name="高一(3)班", grade="2025")
    students = []
    for n in range(1, 5):
        person_id, card = await make_cardholder(conn, sid, f"S{n}")
        await conn.execute("UPDATE persons SET class_id = $1 WHERE id = $2", class_id, person_id)
        students.append((person_id, card["number"]))
    await access_model.create_grant(
        conn,
        ROOT,
        sid,
        subject="role",
        subject_value="student",
        group_id=campus.gates,
        schedule_id=campus.always,
    )
    return class_id, students


def local(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=TZ)


async def test_sheets_follow_the_readers_the_holiday_calendar_and_make_up_workdays(
    conn: Conn, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a class that signs in at the gate for morning reading on weekdays, and a dormitory
    # curfew that also runs on holidays
    campus = await make_campus(conn, settings)
    sid = campus.school_id
    class_id, students = await _class_of_four(conn, campus)
    (p1, c1), (p2, c2), (p3, c3), (p4, c4) = students
    gate_point = await model.create_point(
        conn, ROOT, sid, name="东门", kind="gate", door_ids=[campus.gate_id]
    )
    await access_model.create_grant(
        conn,
        ROOT,
        sid,
        subject="role",
        subject_value="student",
        group_id=campus.dorms,
        schedule_id=campus.always,
    )
    dorm_point = await model.create_point(
        conn, ROOT, sid, name="7号楼", kind="dorm", door_ids=[campus.dorm_id]
    )
    morning = await model.create_rule(
        conn,
        ROOT,
        sid,
        class_id=class_id,
        point_id=gate_point,
        name="早读",
        weekdays=[1, 2, 3, 4, 5],
        opens_at=time(7, 0),
        on_time_until=time(7, 40),
        closes_at=time(8, 0),
        direction="in",
    )
    curfew = await model.create_rule(
        conn,
        ROOT,
        sid,
        class_id=class_id,
        point_id=dorm_point,
        name="晚归",
        weekdays=[1, 2, 3, 4, 5, 6, 7],
        opens_at=time(18, 0),
        on_time_until=time(22, 30),
        closes_at=time(23, 59),
        on_holidays=True,
    )
    await conn.execute("UPDATE attendance_rules SET created_at = '2025-09-01' WHERE true")

    ordinary, national_day, makeup, sunday = (
        date(2025, 10, 9),  # a Thursday
        date(2025, 10, 2),  # a public holiday (a Thursday)
        date(2025, 10, 11),  # a Saturday worked as a weekday (调休)
        date(2025, 10, 12),  # an ordinary Sunday
    )
    # when the students swipe at the gate and the dormitory, and the readers upload
    gate = controller(client, campus.gate_sn, campus.gate_key)
    dorm = controller(client, campus.dorm_sn, campus.dorm_key)
    await gate.sync()
    await dorm.sync()
    assert gate.present(c1, "in", local(ordinary, 7, 25)).granted
    assert gate.present(c2, "in", local(ordinary, 7, 52)).granted  # late
    assert gate.present(c4, "out", local(ordinary, 7, 10)).granted  # leaving does not count
    assert gate.present(c4, "in", local(ordinary, 6, 40)).granted  # before the period opens
    assert gate.present(c1, "in", local(national_day, 7, 20)).granted
    assert gate.present(c1, "in", local(makeup, 7, 30)).granted
    assert gate.present(c2, "in", local(makeup, 7, 41)).granted  # late by a minute
    assert gate.present(c3, "in", local(sunday, 7, 30)).granted
    for who, at in ((c1, local(national_day, 21, 0)), (c2, local(national_day, 22, 45))):
        assert dorm.present(who, "in", at).granted
    assert await gate.upload() == 8
    assert await dorm.upload() == 2
    headers = await _admin(conn, client, sid)

    # then the ordinary day: present, late, absent, and an exit or an early swipe is no sign-in
    sheet = await _sheet(client, headers, class_id, ordinary)
    assert [p["name"] for p in sheet["periods"]] == ["早读", "晚归"]
    assert _column(sheet, morning) == {p1: "present", p2: "late", p3: "absent", p4: "absent"}
    assert sheet["counts"]["present"] == 1
    # the public holiday runs no morning reading, but the curfew is kept
    sheet = await _sheet(client, headers, class_id, national_day)
    assert sheet["day_kind"] == 0
    assert [p["id"] for p in sheet["periods"]] == [curfew]
    assert _column(sheet, curfew) == {p1: "present", p2: "late", p3: "absent", p4: "absent"}
    # the make-up Saturday is a school day; the Sunday after it is not
    sheet = await _sheet(client, headers, class_id, makeup)
    assert sheet["day_kind"] == 1
    assert _column(sheet, morning) == {p1: "present", p2: "late", p3: "absent", p4: "absent"}
    sheet = await _sheet(client, headers, class_id, sunday)
    assert [p["id"] for p in sheet["periods"]] == [curfew]

    # and the month adds them up, in the summary and in the workbook
    r = await client.get(
        f"{BASE}/classes/{class_id}/summary", params={"month": "2025-10"}, headers=headers
    )
    assert r.status_code == 200, r.text
    summary = {row["person_id"]: row for row in r.json()["rows"]}
    # morning reading on 17 weekdays outside the holiday and the make-up Saturday, the
    # curfew on all 31 days
    assert len(r.json()["days"]) == 31
    assert summary[p1]["present"] == 3 and summary[p1]["late"] == 0
    assert summary[p2]["late"] == 3
    assert summary[p3]["absent"] == 18 + 31
    r = await client.get(
        f"{BASE}/classes/{class_id}/export", params={"month": "2025-10"}, headers=headers
    )
    assert r.status_code == 200
    book = load_workbook(io.BytesIO(r.content))
    rows = list(book["汇总"].iter_rows(values_only=True))  # the reader's own language
    assert rows[0] == ("学号", "姓名", "出勤", "迟到", "缺勤", "请假")
    assert rows[1][:6] == ("S1", "张三", 3, 0, 46, 0)
    detail = list(book["明细"].iter_rows(values_only=True))
    assert ("2025-10-09", "早读", "S2", "张三", "迟到", "07:52") in detail
    assert len(detail) == 1 + 4 * (18 + 31)
    r = await client.get(
        f"{BASE}/classes/{class_id}/export",
        params={"month": "2025-10", "lang": "en"},
        headers=headers,
    )
    book = load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == ["Summary", "Detail"]
    detail = list(book["Detail"].iter_rows(values_only=True))
    assert detail[0] == ("Date", "Period", "No.", "Name", "Status", "Signed in")
    assert ("2025-10-09", "早读", "S2", "张三", "Late", "07:52") in detail


async def test_leave_marks_parent_notice_and_a_teacher_sees_only_their_class(
    conn: Conn, pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a class with its teacher, a period every day that tells parents of an absence,
    # and a parent with a sign-in and a phone on record for student 2
    campus = await make_campus(conn, settings)
    sid = campus.school_id
    class_id, students = await _class_of_four(conn, campus)
    (p1, c1), (p2, _), (p3, _), (p4, _) = students
    teacher = await make_user(conn, "teacher", "teacher", sid)
    teacher2 = await make_user(conn, "teacher2", "teacher", sid)
    student3 = await make_user(conn, "s3", "cardholder", sid, person_id=p3)
    parent = await make_user(conn, "parent", "guardian", sid)
    await conn.execute(
        "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
        parent,
        p2,
        sid,
    )
    await conn.execute(
        "INSERT INTO guardians(school_id, person_id, name, phone) VALUES ($1, $2, '李四', "
        "'13800000002')",
        sid,
        p2,
    )
    await model.set_class_teachers(conn, ROOT, sid, class_id, user_ids=[teacher])
    point = await model.create_point(
        conn, ROOT, sid, name="东门", kind="gate", door_ids=[campus.gate_id]
    )
    rule = await model.create_rule(
        conn,
        ROOT,
        sid,
        class_id=class_id,
        point_id=point,
        name="早读",
        weekdays=[1, 2, 3, 4, 5, 6, 7],
        opens_at=time(7, 0),
        on_time_until=time(7, 40),
        closes_at=time(8, 0),
        on_holidays=True,
        notify_guardians=True,
    )
    await conn.execute("UPDATE attendance_rules SET created_at = now() - interval '3 days'")
    yesterday = datetime.now(TZ).date() - timedelta(days=1)
    gate = controller(client, campus.gate_sn, campus.gate_key)
    await gate.sync()
    assert gate.present(c1, "in", local(yesterday, 7, 35)).granted
    await gate.upload()
    as_teacher = await bearer(conn, teacher)
    as_student = await bearer(conn, student3)

    # when student 3 asks for sick leave for yesterday, and the teacher approves it
    r = await client.post(
        f"/api/v1/persons/{p3}/leaves",
        json={
            "kind": "sick",
            "starts_at": local(yesterday, 0, 0).isoformat(),
            "ends_at": local(yesterday, 18, 0).isoformat(),
            "reason": "发烧，在家休息",
        },
        headers=as_student,
    )
    assert r.status_code == 201, r.text
    leave_id = r.json()["id"]
    r = await client.get(f"{BASE}/leaves", headers=as_teacher)
    assert [lv["id"] for lv in r.json()] == [leave_id]
    as_other = await bearer(conn, teacher2)
    r = await client.post(
        f"{BASE}/leaves/{leave_id}/decide", json={"approve": True}, headers=as_other
    )
    assert r.status_code == 404  # not their class
    r = await client.post(
        f"{BASE}/leaves/{leave_id}/decide",
        json={"approve": True, "note": "注意休息"},
        headers=as_teacher,
    )
    assert r.json() == {"state": "approved"}
    r = await client.post(
        f"{BASE}/leaves/{leave_id}/decide", json={"approve": False}, headers=as_teacher
    )
    assert r.status_code == 409
    # and the teacher marks student 4, whose card was at home, present
    r = await client.put(
        f"{BASE}/classes/{class_id}/marks",
        json={
            "rule_id": rule,
            "day": yesterday.isoformat(),
            "person_id": p4,
            "status": "present",
            "note": "忘带卡",
        },
        headers=as_teacher,
    )
    assert r.status_code == 200, r.text

    # then the sheet says so, and only the class's teacher may read it
    sheet = await _sheet(client, as_teacher, class_id, yesterday)
    assert _column(sheet, rule) == {p1: "present", p2: "absent", p3: "leave", p4: "present"}
    marked = next(r for r in sheet["rows"] if r["person_id"] == p4)["cells"][0]
    assert (marked["marked"], marked["note"]) == (True, "忘带卡")
    r = await client.get(f"{BASE}/classes/{class_id}/sheet", headers=as_other)
    assert r.status_code == 404
    r = await client.get(f"{BASE}/classes", headers=as_other)
    assert r.json() == []

    # and closing the period tells student 2's parent once, in the app and by SMS
    # (as of today's midnight at the school: later today, today's period would be due too)
    midnight = datetime.combine(yesterday + timedelta(days=1), datetime.min.time(), TZ)
    closed = await notices.close_due_periods(pool, now=midnight)
    assert closed >= 1
    assert await notices.close_due_periods(pool, now=midnight) == 0
    row = await conn.fetchrow(
        "SELECT absent, notified FROM attendance_closed WHERE rule_id = $1 AND day = $2",
        rule,
        yesterday,
    )
    assert (row["absent"], row["notified"]) == (1, 2)
    inbox = await conn.fetch(
        "SELECT data FROM notifications WHERE user_id = $1 AND kind = 'attendance.absent'", parent
    )
    assert [n["data"]["day"] for n in inbox] == [yesterday.isoformat()]
    sms = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE topic = 'sms' AND payload->>'phone' = '13800000002'"
    )
    assert sms == 1
    told = await conn.fetchval(
        "SELECT count(*) FROM notifications WHERE person_id = $1 AND kind = 'attendance.absent'",
        p3,
    )
    assert told == 0  # on leave

    # and bad input names the field and changes nothing
    headers = await _admin(conn, client, sid)
    period = {
        "class_id": class_id,
        "point_id": point,
        "name": "早读",
        "weekdays": [1, 2, 3, 4, 5],
        "opens_at": "07:00",
        "on_time_until": "08:10",
        "closes_at": "08:00",
    }
    cases = [
        (f"{BASE}/rules", period, "closes_at"),
        (f"{BASE}/rules", period | {"on_time_until": "07:40", "weekdays": [0]}, "weekdays"),
        (f"{BASE}/rules", period | {"on_time_until": "07:40", "point_id": 999}, "point_id"),
        (f"{BASE}/points", {"name": "西门", "kind": "gate", "door_ids": [999]}, "door_ids"),
        (
            f"/api/v1/persons/{p1}/leaves",
            {
                "kind": "sick",
                "starts_at": "2026-12-01T08:00:00+08:00",
                "ends_at": "2026-12-01T07:00:00+08:00",
                "reason": "x",
            },
            "ends_at",
        ),
    ]
    for url, body, field in cases:
        r = await client.post(url, json=body, headers=headers)
        assert r.status_code in (404, 422), (url, r.text)
        assert r.json()["error"]["field"] == field, r.text
    r = await client.get(
        f"{BASE}/classes/{class_id}/summary", params={"month": "2025-13"}, headers=headers
    )
    assert r.status_code == 422
    assert await conn.fetchval("SELECT count(*) FROM attendance_rules") == 1
    assert await conn.fetchval("SELECT count(*) FROM attendance_leaves") == 1


async def _admin(conn: Conn, client: httpx.AsyncClient, school_id: int) -> dict[str, str]:
    return await bearer(conn, await make_user(conn, "admin", "school_admin", school_id))


async def _sheet(
    client: httpx.AsyncClient, headers: dict[str, str], class_id: int, day: date
) -> dict[str, object]:
    r = await client.get(
        f"{BASE}/classes/{class_id}/sheet", params={"day": day.isoformat()}, headers=headers
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def _column(sheet: dict[str, object], rule_id: int) -> dict[int, str]:
    rows = sheet["rows"]
    assert isinstance(rows, list)
    return {
        r["person_id"]: next(c["status"] for c in r["cells"] if c["rule_id"] == rule_id)
        for r in rows
    }
