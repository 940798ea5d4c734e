"""Builders for access tests: a campus with a gate (in/out, an anti-passback zone), a dorm
door, door groups, schedules, door controllers that speak the real protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from campuscard.access import model
from campuscard.clients.door_reader import DoorController
from campuscard.config import Settings
from campuscard.db.pool import Conn
from tests.support import ROOT, make_school
from tests.support_payments import make_device

ALWAYS = {str(d): [["00:00", "24:00"]] for d in range(1, 8)}


@dataclass
class Campus:
    school_id: int
    zone_id: int
    gate_id: int
    gate_sn: str
    gate_key: bytes
    dorm_id: int
    dorm_sn: str
    dorm_key: bytes
    gates: int  # door group
    dorms: int  # door group
    always: int  # schedule


async def make_campus(
    conn: Conn, settings: Settings, *, antipassback: str = "off", apb_seconds: int = 0
) -> Campus:
    school = await make_school(conn)
    sid = school.id
    gate_dev = await make_device(conn, settings, sid, None, "GATE-0001", kind="door")
    dorm_dev = await make_device(conn, settings, sid, None, "DORM-0001", kind="door")
    zone = await model.create_zone(
        conn, ROOT, sid, name="校园", antipassback=antipassback, reset_hour=4
    )
    gate = await model.create_door(
        conn,
        ROOT,
        sid,
        name="东门",
        terminal_sn="GATE-0001",
        zone_id=zone,
        exit_reader=True,
        apb_seconds=apb_seconds,
    )
    dorm = await model.create_door(conn, ROOT, sid, name="7号楼", terminal_sn="DORM-0001")
    gates = await model.create_group(conn, ROOT, sid, name="校门", door_ids=[gate])
    dorms = await model.create_group(conn, ROOT, sid, name="7号楼", door_ids=[dorm])
    always = await model.save_schedule(conn, ROOT, sid, name="全天", week=ALWAYS, holiday=[])
    return Campus(
        sid,
        zone,
        gate,
        "GATE-0001",
        gate_dev.key,
        dorm,
        "DORM-0001",
        dorm_dev.key,
        gates,
        dorms,
        always,
    )


def controller(client: httpx.AsyncClient, sn: str, key: bytes, **extra: Any) -> DoorController:
    return DoorController(base_url=str(client.base_url), sn=sn, key=key, client=client, **extra)
