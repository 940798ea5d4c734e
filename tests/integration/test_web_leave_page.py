"""The phone's leave page over HTTP: whole days, one of the class's periods and times of one's
own become the request's times in the school's zone; an overlap or a bad day is refused beside
its field with nothing stored; withdrawing while pending; a parent asks for the chosen child;
staff are told leave is for students."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from campuscard.attendance import model
from campuscard.people import directory
from campuscard.web.student.leave import leave_times
from tests.support import ROOT, make_school, make_student, make_user
from tests.support_web import csrf_from, web_login

TZ = ZoneInfo("Asia/Shanghai")


def test_the_chosen_days_and_periods_become_one_stretch_of_time() -> None:
    first, last = date(2026, 12, 7), date(2026, 12, 8)
    periods = [{"id": 5, "opens_at": time(7, 0), "closes_at": time(8, 0)}]
    common: dict[str, Any] = {"start_time": "", "end_time": "", "periods": periods, "tz": TZ}
    assert leave_times(start_date=first, end_date=last, span="", **common) == (
        datetime(2026, 12, 7, tzinfo=TZ),
        datetime(2026, 12, 9, tzinfo=TZ),
    )
    assert leave_times(start_date=first, end_date=None, span="5", **common) == (
        datetime(2026, 12, 7, 7, 0, tzinfo=TZ),
        datetime(2026, 12, 7, 8, 0, tzinfo=TZ),
    )
    own = common | {"start_time": "13:30", "end_time": "17:00"}
    assert leave_times(start_date=first, end_date=first, span="custom", **own)[1] == datetime(
        2026, 12, 7, 17, 0, tzinfo=TZ
    )
    with pytest.raises(Exception, match="end_date"):
        leave_times(start_date=last, end_date=first, span="", **common)
    with pytest.raises(Exception, match="span"):
        leave_times(start_date=first, end_date=first, span="99", **common)


def _error_beside(html: str, field: str) -> str:
    match = re.search(rf'data-testid="err-{field}">([^<]*)<', html)
    assert match, f"no error beside {field}"
    return match.group(1)


async def test_a_student_and_a_parent_ask_for_leave_on_the_phone(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn, "TST")
    sid = school.id
    class_id = await directory.create_class(conn, ROOT, sid, name="高一(3)班")
    student = await make_student(conn, sid, "S1", name="小明")
    await conn.execute("UPDATE persons SET class_id = $1 WHERE id = $2", class_id, student)
    staff = await make_student(conn, sid, "T1", name="王老师")
    await conn.execute("UPDATE persons SET kind = 'staff' WHERE id = $1", staff)
    await make_user(conn, "S1", "cardholder", sid, person_id=student)
    await make_user(conn, "T1", "cardholder", sid, person_id=staff)
    parent = await make_user(conn, "parent", "guardian", sid)
    await conn.execute(
        "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
        parent,
        student,
        sid,
    )
    point = await conn.fetchval(
        "INSERT INTO attendance_points(school_id, name, kind) VALUES ($1, '教室', 'classroom') "
        "RETURNING id",
        sid,
    )
    rule = await model.create_rule(
        conn,
        ROOT,
        sid,
        class_id=class_id,
        point_id=point,
        name="第一节",
        weekdays=[1, 2, 3, 4, 5],
        opens_at=time(8, 0),
        on_time_until=time(8, 5),
        closes_at=time(8, 45),
    )
    tomorrow = datetime.now(TZ).date() + timedelta(days=1)

    # when the student opens the page, the class's periods are offered
    await web_login(client, "S1", "TST")
    page = await client.get("/m/leave")
    assert page.status_code == 200 and "第一节 08:00–08:45" in page.text
    csrf = csrf_from(page.text)
    ask = {
        "csrf_token": csrf,
        "person": str(student),
        "kind": "sick",
        "start_date": tomorrow.isoformat(),
        "end_date": tomorrow.isoformat(),
        "span": str(rule),
        "reason": "发烧，去医院",
    }
    r = await client.post("/m/leave", data=ask)
    assert r.status_code == 303
    row = await conn.fetchrow("SELECT id, starts_at, ends_at, state FROM attendance_leaves")
    assert row["state"] == "pending"
    assert row["starts_at"] == datetime.combine(tomorrow, time(8, 0), tzinfo=TZ)
    assert row["ends_at"] == datetime.combine(tomorrow, time(8, 45), tzinfo=TZ)
    page = await client.get(r.headers["location"])
    assert "已提交，等待班主任审批。" in page.text
    assert f'data-testid="leave-state-{row["id"]}">待审批<' in page.text

    # when the same morning is asked again (whole day), the overlap is refused beside the day
    r = await client.post("/m/leave", data=ask | {"span": ""})
    assert r.status_code == 409
    assert "重叠" in _error_beside(r.text, "start_date")
    assert 'value="发烧，去医院"' not in r.text and "发烧，去医院</textarea>" in r.text
    # and a last day before the first, and no reason, are named too
    r = await client.post(
        "/m/leave", data=ask | {"end_date": (tomorrow - timedelta(days=2)).isoformat()}
    )
    assert r.status_code == 422 and "最后一天不能早于第一天" in _error_beside(r.text, "end_date")
    r = await client.post("/m/leave", data=ask | {"reason": "  ", "span": "custom"})
    assert r.status_code == 422
    assert await conn.fetchval("SELECT count(*) FROM attendance_leaves") == 1

    # when the student withdraws it while pending
    r = await client.post(
        f"/m/leave/{row['id']}/cancel", data={"csrf_token": csrf, "person": str(student)}
    )
    assert r.status_code == 303
    assert await conn.fetchval("SELECT state FROM attendance_leaves") == "cancelled"
    page = await client.get("/m/leave")
    assert "已撤回" in page.text and f"leave-cancel-{row['id']}" not in page.text

    # a parent asks for the child (own times), in English
    await web_login(client, "parent", "TST")
    client.cookies.set("cc_lang", "en")
    page = await client.get(f"/m/leave?person={student}")
    assert page.status_code == 200 and "小明" in page.text
    r = await client.post(
        "/m/leave",
        data=ask
        | {
            "csrf_token": csrf_from(page.text),
            "kind": "personal",
            "span": "custom",
            "start_time": "13:30",
            "end_time": "17:00",
            "reason": "家中有事",
        },
    )
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert "Waiting for the teacher" in page.text and "家中有事" in page.text
    # the console's list says who asked: the student, or the parent by name
    await make_user(conn, "head", "school_admin", sid)
    await web_login(client, "head", "TST")
    client.cookies.delete("cc_lang")
    sheet = await client.get("/admin/s/TST/attendance")
    asked = {
        r["id"]: r["self"]
        for r in await conn.fetch(
            """SELECT l.id, coalesce(u.person_id = l.person_id, false) AS self
                 FROM attendance_leaves l
                 JOIN users u ON u.id = l.requested_by_user WHERE l.state = 'pending'"""
        )
    }
    assert False in asked.values(), asked  # the parent's request is waiting
    for leave_id, by_self in asked.items():
        cell = sheet.text.split(f'data-testid="leave-asked-by-{leave_id}">')[1].split("<")[0]
        assert cell == ("本人" if by_self else "parent"), cell
    await web_login(client, "parent", "TST")
    client.cookies.set("cc_lang", "en")
    # another child's page is not the parent's
    stranger = await make_student(conn, sid, "S9")
    assert (await client.get(f"/m/leave?person={stranger}")).status_code == 404

    # staff are told leave is for students
    client.cookies.delete("cc_lang")
    await web_login(client, "T1", "TST")
    page = await client.get("/m/leave")
    assert page.status_code == 200 and "请假只适用于学生。" in page.text
