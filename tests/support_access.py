"""Builders for access tests: a campus with a gate (in/out, an anti-passback zone), a dorm
door, door groups, schedules, door controllers that speak the real protocol."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from campuscard.access import model
from campuscard.clients.door_reader import DoorController
from campuscard.config import Settings
from campuscard.db.pool import Conn
from campuscard.platform import auth
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


async def bearer(conn: Conn, user_id: int) -> dict[str, str]:
    """A signed-in API session for ``user_id`` without the password hash's cost."""
    token = secrets.token_urlsafe(24)
    await conn.execute(
        """INSERT INTO auth_sessions(token_hash, user_id, kind, csrf_token, expires_at)
           VALUES ($1, $2, 'api', 'x', now() + interval '1 hour')""",
        auth.token_digest(token),
        user_id,
    )
    return {"Authorization": f"Bearer {token}"}
