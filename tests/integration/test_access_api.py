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
