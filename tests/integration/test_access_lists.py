"""Door lists end to end through the controller protocol: grants reach readers, a lost card is
refused offline after the next sync, deltas and snapshots, signatures, exactly-once events,
zone anti-passback on the server, visitors that expire by themselves."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from campuscard.access import lists, model, visitors
from campuscard.cards import lifecycle
from campuscard.clients.door_reader import SyncFailed
from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from tests.integration.test_protocol_document import check, differences, documented
from tests.support import ROOT
from tests.support_access import controller, make_campus
from tests.support_payments import make_cardholder


async def test_grant_reaches_the_reader_and_a_lost_card_is_refused_offline_after_sync(
    conn: Conn, pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given a student allowed through the gate, and the gate synced
    campus = await make_campus(conn, settings)
    _, card = await make_cardholder(conn, campus.school_id, "S1")
    await model.create_grant(
        conn,
        ROOT,
        campus.school_id,
        subject="role",
        subject_value="student",
        group_id=campus.gates,
        schedule_id=campus.always,
    )
    gate = controller(client, campus.gate_sn, campus.gate_key)
    assert await gate.sync() == "snapshot"
    assert gate.present(card["number"], "in").granted

    # when the card is reported lost and the gate syncs once, then goes offline
    await lifecycle.report_loss(conn, ROOT, card["id"], reason="丢了")
    assert await gate.sync() == "delta"

    # then the gate refuses it from its own list, with no server to ask
    gate.client = httpx.AsyncClient(base_url="http://nowhere.invalid")
    decision = gate.present(card["number"], "out")
    assert (decision.granted, decision.reason) == (False, "not_on_list")
    await gate.client.aclose()

    # and the dorm door, in no group the student was granted, never let it in
    dorm = controller(client, campus.dorm_sn, campus.dorm_key)
    await dorm.sync()
    assert dorm.present(card["number"], "in").reason == "not_on_list"


async def test_dorm_assignment_opens_the_building_and_delta_follows_versions(
    conn: Conn, settings: Settings, client: httpx.AsyncClient
) -> None:
    campus = await make_campus(conn, settings)
    person, card = await make_cardholder(conn, campus.school_id, "S2")
    building = await model.create_building(
        conn,
        ROOT,
        campus.school_id,
        name="7号楼",
        group_id=campus.dorms,
        schedule_id=campus.always,
    )
    dorm = controller(client, campus.dorm_sn, campus.dorm_key)
    assert await dorm.sync() == "snapshot"
    assert not dorm.present(card["number"]).granted
    v1 = dorm.held.version

    await model.assign_dorm(
        conn, ROOT, campus.school_id, person_id=person, building_id=building, room="7-302"
    )
    assert await dorm.server_version() > v1
    # the answers have the shape docs/terminal-protocol.md shows
    version = await dorm._send("GET", "/api/v1/terminal/access/version")
    check("door-version", version)
    raw = await dorm._send(
        "GET", f"/api/v1/terminal/access/list?base={v1}&hash={dorm.held.content_hash}"
    )
    doc = documented()["door-list-delta"]
    doc["config"] |= {"days": None, "schedules": None}  # keyed by date and id: data
    doc["config"]["door"]["zone"] = None  # this door is in no zone (null)
    assert raw.json()["mode"] == "delta"
    assert differences(doc, raw.json()) == []
    assert await dorm.sync() == "delta"
    assert dorm.present(card["number"]).granted
    # nothing changed: the answer is "current", no entries travel
    assert await dorm.sync() == "current"

    # a controller whose copy does not match what it claims gets a snapshot
    dorm.held.content_hash = "0" * 64
    assert await dorm.sync() == "snapshot"
    assert dorm.present(card["number"]).granted


async def test_a_tampered_list_is_not_applied(
    conn: Conn, settings: Settings, client: httpx.AsyncClient
) -> None:
    campus = await make_campus(conn, settings)
    gate = controller(client, campus.gate_sn, campus.gate_key)
    gate.key = bytes(32)  # signs with the wrong key: the server refuses it outright
    with pytest.raises(SyncFailed, match="401"):
        await gate.sync()
    assert gate.held.version == 0  # nothing applied


async def test_events_are_stored_exactly_once_whatever_the_order(
    conn: Conn, settings: Settings, client: httpx.AsyncClient
) -> None:
    campus = await make_campus(conn, settings)
    _, card = await make_cardholder(conn, campus.school_id, "S3")
    await model.create_grant(
        conn,
        ROOT,
        campus.school_id,
        subject="person",
        subject_value=_,
        group_id=campus.gates,
        schedule_id=campus.always,
    )
    gate = controller(client, campus.gate_sn, campus.gate_key)
    await gate.sync()
    start = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(12):
        gate.present(card["number"], "in" if i % 2 == 0 else "out", start + timedelta(minutes=i))
    gate.alarm("held_open", start + timedelta(minutes=13))
    events = list(gate.pending)
    assert len(events) == 13

    # sent shuffled, in overlapping batches, some twice
    rng = random.Random(7)
    shuffled = events[:]
    rng.shuffle(shuffled)
    batches = [shuffled[:8], shuffled[5:], shuffled[2:6], events]
    first = await _raw_upload(gate, batches[0])
    check("door-events", first)
    stored = first.json()["stored"]
    for batch in batches[1:]:
        gate.pending = list(batch)
        stored += await gate.upload()
    assert stored == 13
    rows = await conn.fetch(
        "SELECT seq, kind, person_id FROM access_events WHERE school_id = $1 ORDER BY seq",
        campus.school_id,
    )
    assert [r["seq"] for r in rows] == list(range(1, 14))
    assert rows[0]["person_id"] == _
    assert rows[-1]["kind"] == "held_open"

    # one batch with a seq twice is refused whole, naming the field
    r = await _raw_upload(gate, [events[0], events[0]])
    assert r.status_code == 422 and r.json()["error"]["field"] == "events"
    # a denied event without its reason is refused
    bad = dict(events[0], seq=99, kind="denied")
    r = await _raw_upload(gate, [bad])
    assert r.status_code == 422


async def _raw_upload(gate: object, batch: list[dict[str, object]]) -> httpx.Response:
    from campuscard.clients.door_reader import DoorController

    assert isinstance(gate, DoorController)
    return await gate._send("POST", "/api/v1/terminal/access/events", {"events": batch})


async def test_zone_antipassback_is_flagged_across_doors(
    conn: Conn, settings: Settings, client: httpx.AsyncClient
) -> None:
    # two gates of one soft zone: each controller only knows its own passages
    campus = await make_campus(conn, settings, antipassback="soft")
    from tests.support_payments import make_device

    await make_device(conn, settings, campus.school_id, None, "GATE-0002", kind="door")
    west = await model.create_door(
        conn,
        ROOT,
        campus.school_id,
        name="西门",
        terminal_sn="GATE-0002",
        zone_id=campus.zone_id,
        exit_reader=True,
    )
    await model.set_group_doors(
        conn, ROOT, campus.school_id, campus.gates, door_ids=[campus.gate_id, west]
    )
    person, card = await make_cardholder(conn, campus.school_id, "S4")
    await model.create_grant(
        conn,
        ROOT,
        campus.school_id,
        subject="person",
        subject_value=person,
        group_id=campus.gates,
        schedule_id=campus.always,
    )
    east = controller(client, campus.gate_sn, campus.gate_key)
    key2 = bytes.fromhex(
        __import__("campuscard.payments.terminals", fromlist=["x"]).terminal_key_hex(
            settings, "GATE-0002", 1
        )
    )
    west_gate = controller(client, "GATE-0002", key2)
    await east.sync()
    await west_gate.sync()
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    assert east.present(card["number"], "in", t0).flag == ""
    # in again through the other gate: that controller lets it through unflagged
    assert west_gate.present(card["number"], "in", t0 + timedelta(minutes=1)).flag == ""
    await east.upload()
    await west_gate.upload()
    flags = await conn.fetch(
        "SELECT flag FROM access_events WHERE school_id = $1 ORDER BY occurred_at",
        campus.school_id,
    )
    assert [f["flag"] for f in flags] == ["", "antipassback_zone"]


async def test_visitor_card_works_in_its_window_and_expires_by_itself(
    conn: Conn, pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    campus = await make_campus(conn, settings)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    card = await visitors.issue_visitor_card(
        conn,
        ROOT,
        campus.school_id,
        name="访问学者王",
        number="V2026001",
        phone=None,
        card_number="990000000001",
        card_uid="04AA0001",
        host="物理学院 李老师",
        purpose="学术交流",
        valid_from=now - timedelta(hours=1),
        valid_until=now + timedelta(minutes=30),
        group_ids=[campus.gates],
        schedule_id=campus.always,
    )
    gate = controller(client, campus.gate_sn, campus.gate_key)
    dorm = controller(client, campus.dorm_sn, campus.dorm_key)
    await gate.sync()
    await dorm.sync()
    assert gate.present(card.card_number, "in", now).granted
    assert dorm.present(card.card_number, "in", now).reason == "not_on_list"  # not its group
    # offline, after the window: refused by the gate's own list
    later = now + timedelta(minutes=31)
    assert gate.present(card.card_number, "out", later).reason == "expired"

    # the window ends: the card expires by itself and leaves the lists
    await conn.execute(
        "UPDATE access_visitors SET valid_until = now() - interval '1 minute' WHERE school_id = $1",
        campus.school_id,
    )
    assert await visitors.expire_visitors(pool) == 1
    state = await conn.fetchval("SELECT state FROM cards WHERE id = $1", card.card_id)
    assert state == "expired"
    assert await gate.sync() == "delta"
    assert card.card_number not in gate.held.entries
    assert await visitors.expire_visitors(pool) == 0


async def test_admin_changes_while_readers_are_away_arrive_when_they_return(
    conn: Conn, pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # changes committed with no worker and no reader running are held in the database
    campus = await make_campus(conn, settings)
    person, card = await make_cardholder(conn, campus.school_id, "S5")
    gate = controller(client, campus.gate_sn, campus.gate_key)
    await gate.sync()
    await model.create_grant(
        conn,
        ROOT,
        campus.school_id,
        subject="person",
        subject_value=person,
        group_id=campus.gates,
        schedule_id=campus.always,
    )
    assert await lists.refresh_all(pool) == 1  # the worker's tick, whenever it runs
    assert await gate.tick() == "delta"
    assert gate.present(card["number"]).granted
