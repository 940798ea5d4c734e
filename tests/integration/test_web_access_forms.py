"""The console's access and attendance forms over HTTP: each kind created and edited through
the same use cases as the API, a refusal shown beside the field it names (in Chinese and in
English) with nothing changed, the schedule editor's several intervals and midnight crossing,
who may use the forms, and another school's rows hidden."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from campuscard.access import model
from campuscard.people import directory
from tests.integration.test_web_roles_crawl import _campus as crawl_campus
from tests.support import ROOT, make_school, make_user
from tests.support_access import make_campus
from tests.support_payments import make_cardholder
from tests.support_web import csrf_from, web_login

TZ = ZoneInfo("Asia/Shanghai")


def _field_error(html: str, field: str) -> str:
    match = re.search(rf'data-testid="err-{re.escape(field)}">([^<]*)<', html)
    assert match, f"no error beside {field}"
    return match.group(1)


async def test_an_administrator_keeps_the_model_with_the_forms(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Any
) -> None:
    # given a campus (a gate and a dormitory door, two groups, an all-day schedule)
    campus = await make_campus(conn, settings)
    sid = campus.school_id
    class_id = await directory.create_class(conn, ROOT, sid, name="高一(3)班")
    await make_user(conn, "admin", "school_admin", sid)
    teacher = await make_user(conn, "teacher", "teacher", sid)
    await web_login(client, "admin", "TST")
    base = "/admin/s/TST/access"
    overview = await client.get(base)
    assert overview.status_code == 200
    assert (
        f'{base}/zone/new"' in overview.text
        and f"{base}/door/{campus.gate_id}/edit" in overview.text
    )
    # the public calendar the readers follow is shown, with how far it is known
    assert 'data-testid="public-days"' in overview.text and "chinese-calendar" in overview.text
    csrf = csrf_from(overview.text)

    # when a zone is sent with an hour out of range
    r = await client.post(
        f"{base}/zone/new",
        data={"csrf_token": csrf, "name": "图书馆", "antipassback": "hard", "reset_hour": "25"},
    )
    # then the form comes back with the reason beside the field, and nothing was created
    assert r.status_code == 422
    assert _field_error(r.text, "reset_hour") == "重置时刻为 0 到 23 点的整数。"
    assert 'value="图书馆"' in r.text
    assert await conn.fetchval("SELECT count(*) FROM access_zones WHERE school_id = $1", sid) == 1
    # and a taken name says so
    r = await client.post(
        f"{base}/zone/new",
        data={"csrf_token": csrf, "name": "校园", "antipassback": "off", "reset_hour": "4"},
    )
    assert r.status_code == 409 and _field_error(r.text, "name") == "这个名称已被使用，请换一个。"
    # when it is right, the zone is made and the overview lists it
    r = await client.post(
        f"{base}/zone/new",
        data={"csrf_token": csrf, "name": "图书馆", "antipassback": "soft", "reset_hour": "3"},
    )
    assert r.status_code == 303 and r.headers["location"] == f"{base}#zones"
    zone = await conn.fetchrow(
        "SELECT id, antipassback, reset_hour FROM access_zones WHERE name = '图书馆'"
    )
    assert (zone["antipassback"], zone["reset_hour"]) == ("soft", 3)
    # and editing it shows what it holds, and saves a change
    form = await client.get(f"{base}/zone/{zone['id']}/edit")
    assert 'value="3"' in form.text and '<option value="soft" selected>' in form.text
    r = await client.post(
        f"{base}/zone/{zone['id']}/edit",
        data={"csrf_token": csrf, "name": "图书馆", "antipassback": "hard", "reset_hour": "3"},
    )
    assert r.status_code == 303
    assert (
        await conn.fetchval("SELECT antipassback FROM access_zones WHERE id = $1", zone["id"])
        == "hard"
    )

    # when the dormitory door is moved into the zone with an exit reader, then refused a
    # controller that already controls the gate
    door = {
        "csrf_token": csrf,
        "name": "7号楼",
        "terminal_sn": "GATE-0001",
        "zone_id": str(zone["id"]),
        "exit_reader": "on",
        "apb_seconds": "60",
        "held_open_seconds": "30",
    }
    r = await client.post(f"{base}/door/{campus.dorm_id}/edit", data=door)
    assert r.status_code == 409
    assert _field_error(r.text, "terminal_sn") == "这个控制器已经绑定在另一扇门上。"
    r = await client.post(
        f"{base}/door/{campus.dorm_id}/edit", data=door | {"terminal_sn": "DORM-0001"}
    )
    assert r.status_code == 303
    row = await conn.fetchrow(
        "SELECT zone_id, exit_reader, apb_seconds FROM access_doors WHERE id = $1", campus.dorm_id
    )
    assert tuple(row) == (zone["id"], True, 60)

    # when a schedule is written with two intervals on Monday and one across midnight on Friday
    sched = {
        "csrf_token": csrf,
        "name": "宿舍作息",
        "d1_from": ["06:00", "13:00", ""],
        "d1_to": ["12:00", "23:00", ""],
        "d5_from": ["22:00", "", ""],
        "d5_to": ["06:00", "", ""],
        "h_from": ["00:00", "", ""],
        "h_to": ["24:00", "", ""],
    }
    # a half-filled row is named by its day
    r = await client.post(
        f"{base}/schedule/new", data=sched | {"d3_from": ["08:00"], "d3_to": [""]}
    )
    assert r.status_code == 422
    assert "周三" in _field_error(r.text, "week.3") or "这一天" in _field_error(r.text, "week.3")
    r = await client.post(f"{base}/schedule/new", data=sched)
    assert r.status_code == 303
    stored = await conn.fetchrow(
        "SELECT id, week, holiday FROM access_schedules WHERE name = '宿舍作息'"
    )
    assert json.loads(stored["week"]) == {
        "1": [["06:00", "12:00"], ["13:00", "23:00"]],
        "5": [["22:00", "06:00"]],
    }
    assert json.loads(stored["holiday"]) == [["00:00", "24:00"]]
    # and the overview says Friday's runs into the next day
    overview = await client.get(base)
    row_html = overview.text.split(f'data-testid="schedule-{stored["id"]}"', 1)[1].split(
        "</tr>", 1
    )[0]
    assert "22:00–06:00 （次日）" in row_html
    # and the editor shows every interval, with a free row to add one
    form = await client.get(f"{base}/schedule/{stored['id']}/edit")
    assert form.text.count('name="d1_from"') == 3 and 'value="13:00"' in form.text

    # when a door group, a building, an attendance point, a period and the class's teacher are
    # set through their forms
    r = await client.post(
        f"{base}/group/new",
        data={
            "csrf_token": csrf,
            "name": "图书馆门",
            "door_ids": [str(campus.gate_id), str(campus.dorm_id)],
        },
    )
    assert r.status_code == 303
    group = await conn.fetchval("SELECT id FROM access_door_groups WHERE name = '图书馆门'")
    r = await client.post(
        f"{base}/group/{group}/edit",
        data={"csrf_token": csrf, "name": "图书馆大门", "door_ids": [str(campus.gate_id)]},
    )
    assert r.status_code == 303
    assert await conn.fetchval(
        "SELECT array_agg(door_id) FROM access_group_doors WHERE group_id = $1", group
    ) == [campus.gate_id]
    building = {
        "csrf_token": csrf,
        "name": "8号楼",
        "group_id": str(group),
        "schedule_id": str(stored["id"]),
    }
    assert (await client.post(f"{base}/building/new", data=building)).status_code == 303
    point = {"csrf_token": csrf, "name": "东门考勤", "kind": "gate"}
    r = await client.post(f"{base}/point/new", data=point)
    assert r.status_code == 422 and _field_error(r.text, "door_ids") == "考勤点至少要有一扇门。"
    r = await client.post(f"{base}/point/new", data=point | {"door_ids": str(campus.gate_id)})
    assert r.status_code == 303
    point_id = await conn.fetchval("SELECT id FROM attendance_points WHERE name = '东门考勤'")
    period = {
        "csrf_token": csrf,
        "class_id": str(class_id),
        "point_id": str(point_id),
        "name": "早读",
        "weekdays": ["1", "2", "3", "4", "5"],
        "opens_at": "07:00",
        "on_time_until": "07:40",
        "closes_at": "07:30",
        "direction": "in",
    }
    r = await client.post(f"{base}/period/new", data=period)
    assert r.status_code == 422 and "截止时间须晚于准时截止时间" in _field_error(
        r.text, "closes_at"
    )
    r = await client.post(f"{base}/period/new", data=period | {"closes_at": "08:00"})
    assert r.status_code == 303
    rule = await conn.fetchrow(
        "SELECT id, direction, weekdays FROM attendance_rules WHERE name = '早读'"
    )
    assert rule["direction"] == "in" and list(rule["weekdays"]) == [1, 2, 3, 4, 5]
    r = await client.post(
        f"{base}/teachers/{class_id}/edit", data={"csrf_token": csrf, "user_ids": str(teacher)}
    )
    assert r.status_code == 303
    overview = await client.get(base)
    assert "8号楼" in overview.text and "东门考勤" in overview.text
    assert (
        "teacher"
        in overview.text.split('data-testid="class-teachers"', 1)[1].split("</table>", 1)[0]
    )
    # and ending the period takes it off the list
    r = await client.post(f"{base}/period/{rule['id']}/end", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert not await conn.fetchval("SELECT active FROM attendance_rules WHERE id = $1", rule["id"])
    # and a period of the same name can then be added at other times (a timetable change)
    r = await client.post(
        f"{base}/period/new", data=period | {"opens_at": "07:10", "closes_at": "08:10"}
    )
    assert r.status_code == 303
    r = await client.post(
        f"{base}/period/new", data=period | {"opens_at": "07:10", "closes_at": "08:10"}
    )
    assert r.status_code == 409 and _field_error(r.text, "name") == "这个名称已被使用，请换一个。"

    # and the English page gives the server's own words beside the field
    client.cookies.set("cc_lang", "en")
    r = await client.post(
        f"{base}/zone/new",
        data={"csrf_token": csrf, "name": "Lab", "antipassback": "off", "reset_hour": "x"},
    )
    assert (
        r.status_code == 422
        and _field_error(r.text, "reset_hour") == "reset_hour must be a whole number"
    )
    # the library system gets its token once, on the campus systems page, and loses it
    r = await client.post(
        "/admin/s/TST/access/systems",
        data={"csrf_token": csrf, "name": "Library", "kind": "library", "per_minute": "0"},
    )
    assert r.status_code == 422
    assert _field_error(r.text, "per_minute") == "per_minute is 1 to 6000"
    r = await client.post(
        "/admin/s/TST/access/systems",
        data={"csrf_token": csrf, "name": "Library", "kind": "library", "per_minute": "60"},
    )
    assert r.status_code == 201
    token = re.search(r'data-testid="token">(ccsys_[^<]+)<', r.text)
    assert token is not None
    listed = await client.get("/admin/s/TST/access/systems")
    assert "Library" in listed.text and token.group(1) not in listed.text
    system = await conn.fetchval("SELECT id FROM campus_systems WHERE name = 'Library'")
    asked = await client.get(
        "/api/v1/campus/TST/cards/880000000077",
        headers={"Authorization": f"Bearer {token.group(1)}"},
    )
    assert asked.status_code == 404, asked.text  # past the token: no such card
    r = await client.post(f"/admin/s/TST/access/systems/{system}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert not await conn.fetchval("SELECT active FROM campus_systems WHERE id = $1", system)
    # every change is in the audit log
    actions = {
        r["action"]
        for r in await conn.fetch("SELECT action FROM audit_log WHERE school_id = $1", sid)
    }
    assert {
        "access.zone.update",
        "access.door.update",
        "access.group.rename",
        "attendance.rule.end",
    } <= actions


async def test_only_the_model_keepers_get_the_forms(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Any
) -> None:
    campus = await make_campus(conn, settings)
    other = await make_school(conn, "OTH")
    foreign = await model.create_zone(
        conn, ROOT, other.id, name="外校", antipassback="off", reset_hour=4
    )
    await make_user(conn, "cc", "card_center", campus.school_id)
    await make_user(conn, "admin", "school_admin", campus.school_id)
    # the card center reads the doors page but keeps no model: no links, the forms refuse
    await web_login(client, "cc", "TST")
    page = await client.get("/admin/s/TST/access")
    assert page.status_code == 200 and "/access/zone/new" not in page.text
    assert (await client.get("/admin/s/TST/access/zone/new")).status_code == 403
    csrf = csrf_from(page.text)
    r = await client.post(
        "/admin/s/TST/access/zone/new",
        data={"csrf_token": csrf, "name": "x", "antipassback": "off", "reset_hour": "4"},
    )
    assert r.status_code == 403
    # but issues visitor cards and moves people into buildings, on their forms
    assert 'href="/admin/s/TST/access/visitor/new"' in page.text
    tomorrow = (datetime.now(TZ) + timedelta(days=1)).date().isoformat()
    visitor = {
        "csrf_token": csrf,
        "name": "李教授",
        "number": "V2026001",
        "phone": "13800000000",
        "card_number": "12AB",
        "card_uid": "04AA0001",
        "host": "物理系",
        "purpose": "学术访问",
        "valid_from": f"{tomorrow}T08:00",
        "valid_until": f"{tomorrow}T18:00",
        "group_ids": str(campus.gates),
        "schedule_id": str(campus.always),
    }
    form = await client.get("/admin/s/TST/access/visitor/new")
    assert form.status_code == 200 and 'name="group_ids"' in form.text
    r = await client.post("/admin/s/TST/access/visitor/new", data=visitor)
    assert r.status_code == 422, r.text[-3000:]
    assert re.search(r'data-testid="err-card_number">[^<]+<', r.text)
    assert await conn.fetchval("SELECT count(*) FROM persons WHERE number = 'V2026001'") == 0
    r = await client.post(
        "/admin/s/TST/access/visitor/new", data=visitor | {"card_number": "990000000001"}
    )
    assert r.status_code == 303, r.text
    page = await client.get("/admin/s/TST/access")
    assert "李教授" in page.text and f"{tomorrow} 18:00" in page.text
    until = await conn.fetchval("SELECT valid_until FROM access_visitors")
    assert until == datetime.fromisoformat(f"{tomorrow}T18:00").replace(tzinfo=TZ)
    student, _ = await make_cardholder(conn, campus.school_id, "S1")
    building = await model.create_building(
        conn, ROOT, campus.school_id, name="7号楼", group_id=campus.dorms, schedule_id=campus.always
    )
    move = {
        "csrf_token": csrf,
        "person_number": "S404",
        "building_id": str(building),
        "room": "301",
    }
    r = await client.post("/admin/s/TST/access/dorm/new", data=move)
    assert r.status_code == 404 and "本校没有这个学号或工号" in r.text
    r = await client.post("/admin/s/TST/access/dorm/new", data=move | {"person_number": "S1"})
    assert r.status_code == 303
    assert (
        await conn.fetchval(
            "SELECT building_id FROM access_dorm_assignments WHERE person_id = $1", student
        )
        == building
    )
    # an administrator does not reach another school's rows, nor posts without the token
    await web_login(client, "admin", "TST")
    assert (await client.get(f"/admin/s/TST/access/zone/{foreign}/edit")).status_code == 404
    assert (await client.get(f"/admin/s/OTH/access/zone/{foreign}/edit")).status_code in (403, 404)
    r = await client.post(
        f"/admin/s/TST/access/zone/{campus.zone_id}/edit",
        data={"name": "x", "antipassback": "off", "reset_hour": "4"},
    )
    assert r.status_code == 403
    assert (
        await conn.fetchval("SELECT name FROM access_zones WHERE id = $1", campus.zone_id) == "校园"
    )
    # a row that is gone answers the error page, not an empty form
    csrf = csrf_from((await client.get("/admin/s/TST/access")).text)
    r = await client.post(
        "/admin/s/TST/access/zone/999999/edit",
        data={"csrf_token": csrf, "name": "x", "antipassback": "off", "reset_hour": "4"},
    )
    assert r.status_code == 404 and 'data-testid="error-page"' in r.text


# the pages of this change by role (the API's routes are in docs/authorization.md)
PAGES = (
    "/admin/s/AAA/access/zone/new",
    "/admin/s/AAA/access/visitor/new",
    "/admin/s/AAA/access/period/new",
    "/admin/s/AAA/access/systems",
    "/m/leave",
)
EXPECTED = {
    "platform_admin": (200, 200, 200, 200, 403),
    "school_admin": (200, 200, 200, 200, 403),
    "card_center": (403, 200, 403, 403, 403),
    "settlement": (403, 403, 403, 403, 403),
    "teacher": (403, 403, 403, 403, 403),
    "merchant_manager": (403, 403, 403, 403, 403),
    "merchant_staff": (403, 403, 403, 403, 403),
    "cardholder": (403, 403, 403, 403, 200),
    "guardian": (403, 403, 403, 403, 200),
}


async def test_each_role_gets_the_pages_it_should(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    campus = await crawl_campus(conn)
    got = {}
    for role, (username, school) in campus["users"].items():
        await web_login(client, username, school)
        got[role] = tuple([(await client.get(url)).status_code for url in PAGES])
    assert got == EXPECTED
