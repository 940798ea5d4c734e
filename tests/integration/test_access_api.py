"""The access model over the API: a zone, a door and a building created and changed whole (the
same body for both), each change audited before → after, a taken name or controller refused
on the field it names, an unknown row refused on its id, and nothing changed by a refusal."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.support import login, make_user
from tests.support_access import make_campus
from tests.support_payments import make_device
from tests.support_web import csrf_from, web_login

BASE = "/api/v1/admin/schools/TST/access"


async def _audit(conn: asyncpg.Connection[Any], action: str, target: int) -> list[dict[str, Any]]:
    """The audit rows of one action on one row, oldest first."""
    rows = await conn.fetch(
        """SELECT target_id, before, after FROM audit_log
            WHERE action = $1 AND target_id = $2::text ORDER BY id""",
        action,
        str(target),
    )
    return [dict(r) for r in rows]


async def test_zones_doors_and_buildings_are_created_and_changed_whole(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Any
) -> None:
    # given a campus and its administrator
    campus = await make_campus(conn, settings)
    sid = campus.school_id
    await make_user(conn, "admin", "school_admin", sid)
    h = await login(client, "admin", "TST")

    # a zone: created, then changed with the same body shape, audited before → after
    r = await client.post(
        f"{BASE}/zones", json={"name": "图书馆", "antipassback": "hard"}, headers=h
    )
    assert r.status_code == 201, r.text
    zone = r.json()["id"]
    r = await client.put(
        f"{BASE}/zones/{zone}",
        json={"name": "图书馆", "antipassback": "soft", "reset_hour": 5},
        headers=h,
    )
    assert r.status_code == 200, r.text
    row = await conn.fetchrow(
        "SELECT antipassback, reset_hour FROM access_zones WHERE id = $1", zone
    )
    assert dict(row) == {"antipassback": "soft", "reset_hour": 5}
    [created] = await _audit(conn, "access.zone.create", zone)
    assert created["after"] == {"name": "图书馆", "antipassback": "hard", "reset_hour": 4}
    [changed] = await _audit(conn, "access.zone.update", zone)
    assert changed["before"] == {"name": "图书馆", "antipassback": "hard", "reset_hour": 4}
    assert changed["after"] == {"name": "图书馆", "antipassback": "soft", "reset_hour": 5}

    # a name taken by another zone is refused on "name", and the zone keeps its own
    r = await client.put(f"{BASE}/zones/{zone}", json={"name": "校园"}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["field"] == "name", r.text
    assert await conn.fetchval("SELECT name FROM access_zones WHERE id = $1", zone) == "图书馆"
    # an unknown zone is refused on its id
    r = await client.put(f"{BASE}/zones/999999", json={"name": "X"}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["field"] == "zone_id", r.text

    # a door: its controller by serial; one controller cannot serve two doors
    await make_device(conn, settings, sid, None, "LIB-0001", kind="door")
    door_body = {"name": "图书馆正门", "terminal_sn": "LIB-0001", "zone_id": zone}
    r = await client.post(f"{BASE}/doors", json=door_body, headers=h)
    assert r.status_code == 201, r.text
    door = r.json()["id"]
    r = await client.post(
        f"{BASE}/doors", json={"name": "侧门", "terminal_sn": "LIB-0001"}, headers=h
    )
    assert r.status_code == 409 and r.json()["error"]["field"] == "terminal_sn", r.text
    r = await client.put(
        f"{BASE}/doors/{door}", json={**door_body, "held_open_seconds": 60}, headers=h
    )
    assert r.status_code == 200, r.text
    [changed] = await _audit(conn, "access.door.update", door)
    assert changed["before"]["terminal_sn"] == "LIB-0001"
    assert changed["before"]["held_open_seconds"] == 30
    assert changed["after"]["held_open_seconds"] == 60
    assert "terminal_id" not in changed["after"]
    [created] = await _audit(conn, "access.door.create", door)
    assert created["after"]["terminal_sn"] == "LIB-0001" and created["after"]["zone_id"] == zone

    # a building: a group or schedule of no such id is refused on that field, nothing changes
    body = {"name": "8号楼", "group_id": campus.dorms, "schedule_id": campus.always}
    r = await client.post(f"{BASE}/buildings", json=body, headers=h)
    assert r.status_code == 201, r.text
    building = r.json()["id"]
    r = await client.put(
        f"{BASE}/buildings/{building}", json={**body, "schedule_id": 999999}, headers=h
    )
    assert r.status_code == 404 and r.json()["error"]["field"] == "schedule_id", r.text
    r = await client.put(
        f"{BASE}/buildings/{building}", json={**body, "group_id": campus.gates}, headers=h
    )
    assert r.status_code == 200, r.text
    group = await conn.fetchval("SELECT group_id FROM access_buildings WHERE id = $1", building)
    assert group == campus.gates
    assert [
        a["before"]["group_id"] for a in await _audit(conn, "access.building.update", building)
    ] == [campus.dorms]


async def test_a_row_nothing_uses_is_deleted_and_one_in_use_is_refused_saying_by_what(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Any
) -> None:
    # given a campus (the gate is in the zone; both door groups hold a door) and a grant
    campus = await make_campus(conn, settings)
    sid = campus.school_id
    await make_user(conn, "admin", "school_admin", sid)
    h = await login(client, "admin", "TST")
    r = await client.post(
        f"{BASE}/grants",
        json={
            "subject": "role",
            "role": "student",
            "group_id": campus.gates,
            "schedule_id": campus.always,
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    seq = await conn.fetchval("SELECT seq FROM access_heads WHERE school_id = $1", sid)

    # a zone with doors, a group and a schedule with grants: refused, named, nothing changes
    for path, used_by in (
        (f"zones/{campus.zone_id}", "access_doors"),
        (f"groups/{campus.gates}", "access_grants"),
        (f"schedules/{campus.always}", "access_grants"),
    ):
        r = await client.delete(f"{BASE}/{path}", headers=h)
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "IN_USE" and error["details"]["used_by"] == used_by
    assert await conn.fetchval("SELECT count(*) FROM access_zones WHERE school_id = $1", sid) == 1

    # a door with recorded passages stays (its history keeps its name)
    await conn.execute(
        """INSERT INTO access_events(school_id, terminal_id, seq, door_id, kind, occurred_at)
           SELECT $1, terminal_id, 1, id, 'granted', now() FROM access_doors WHERE id = $2""",
        sid,
        campus.gate_id,
    )
    r = await client.delete(f"{BASE}/doors/{campus.gate_id}", headers=h)
    assert r.status_code == 409 and r.json()["error"]["details"]["used_by"] == "access_events"

    # the dormitory door, never passed: deleted, taken out of its group, the readers told
    r = await client.delete(f"{BASE}/doors/{campus.dorm_id}", headers=h)
    assert r.status_code == 200, r.text
    assert (
        await conn.fetchval("SELECT count(*) FROM access_doors WHERE id = $1", campus.dorm_id) == 0
    )
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM access_group_doors WHERE door_id = $1", campus.dorm_id
        )
        == 0
    )
    assert await conn.fetchval("SELECT seq FROM access_heads WHERE school_id = $1", sid) > seq
    [audited] = await _audit(conn, "access.door.delete", campus.dorm_id)
    assert audited["before"] == {"name": "7号楼"}
    # then the emptied group goes too; again is 404 on its id
    r = await client.delete(f"{BASE}/groups/{campus.dorms}", headers=h)
    assert r.status_code == 200, r.text
    r = await client.delete(f"{BASE}/groups/{campus.dorms}", headers=h)
    assert r.status_code == 404 and r.json()["error"]["field"] == "group_id", r.text


async def test_the_edit_form_deletes_and_says_in_the_pages_language_what_still_uses_a_row(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Any
) -> None:
    campus = await make_campus(conn, settings)
    await make_user(conn, "admin", "school_admin", campus.school_id)
    await web_login(client, "admin", "TST")
    base = "/admin/s/TST/access"
    form = await client.get(f"{base}/zone/{campus.zone_id}/edit")
    assert 'data-testid="f-delete"' in form.text
    csrf = csrf_from(form.text)
    # the zone still has the gate: the form comes back saying so, in Chinese
    r = await client.post(f"{base}/zone/{campus.zone_id}/delete", data={"csrf_token": csrf})
    assert r.status_code == 409
    assert "还有门属于这个区域" in r.text and 'data-testid="form-error"' in r.text
    # a new zone nobody uses: deleted, back to the zones
    new = await client.post(
        f"{base}/zone/new",
        data={"csrf_token": csrf, "name": "临时", "antipassback": "off", "reset_hour": "4"},
    )
    assert new.status_code == 303
    zone = await conn.fetchval("SELECT id FROM access_zones WHERE name = '临时'")
    r = await client.post(f"{base}/zone/{zone}/delete", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == f"{base}#zones"
    assert await conn.fetchval("SELECT count(*) FROM access_zones WHERE id = $1", zone) == 0
    # a new form has nothing to delete, and a form without its token is refused
    assert 'data-testid="f-delete"' not in (await client.get(f"{base}/zone/new")).text
    forged = await client.post(f"{base}/door/{campus.dorm_id}/delete", data={})
    assert forged.status_code == 403
    assert await conn.fetchval("SELECT count(*) FROM access_doors WHERE id = $1", campus.dorm_id)
