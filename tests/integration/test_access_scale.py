"""The list's size bound (50,000 cards in one snapshot ≤ 1 MB) and a change reaching every
polling controller over real HTTP within 10 s, with no worker running."""

from __future__ import annotations

import asyncio
import time

import httpx

from campuscard.access import lists, model
from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.payments.terminals import terminal_key_hex
from tests.servers import serve_in_thread
from tests.support import ROOT
from tests.support_access import controller, make_campus
from tests.support_payments import make_cardholder, make_device

CARDS = 50_000


async def add_students(conn: Conn, school_id: int, n: int) -> None:
    """n students with active 12-digit cards, in two statements, without the per-row card
    triggers (the device blacklist has nothing to say about new active cards); the caller
    refreshes with force."""
    await conn.execute("SET session_replication_role = replica")
    await conn.execute(
        """INSERT INTO persons(school_id, kind, number, name)
           SELECT $1, 'student', 'B' || g, '学生' || g FROM generate_series(1, $2) g""",
        school_id,
        n,
    )
    await conn.execute(
        """INSERT INTO cards(school_id, person_id, number, kind, state)
           SELECT p.school_id, p.id, '2026' || lpad(substr(p.number, 2), 8, '0'), 'student',
                  'active'
             FROM persons p WHERE p.school_id = $1 AND p.number LIKE 'B%'""",
        school_id,
    )
    await conn.execute("SET session_replication_role = DEFAULT")


async def test_a_50000_card_snapshot_is_at_most_one_megabyte(
    conn: Conn, pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    campus = await make_campus(conn, settings)
    await add_students(conn, campus.school_id, CARDS)
    await model.create_grant(
        conn,
        ROOT,
        campus.school_id,
        subject="role",
        subject_value="student",
        group_id=campus.gates,
        schedule_id=campus.always,
    )
    refreshed = await lists.do_refresh(pool, campus.school_id, force=True)
    assert refreshed.changed_entries == CARDS
    gate = controller(client, campus.gate_sn, campus.gate_key)
    r = await gate._send("GET", "/api/v1/terminal/access/list")
    assert r.status_code == 200
    assert len(r.content) <= 1_000_000, len(r.content)
    assert await gate.sync() == "snapshot"
    assert len(gate.held.entries) == CARDS
    assert gate.present("202600000001").granted


async def test_a_change_reaches_every_polling_controller_within_ten_seconds(
    conn: Conn, pool: PgPool, settings: Settings
) -> None:
    # given 20 door controllers polling a served app (no worker), all holding the list
    campus = await make_campus(conn, settings)
    person, card = await make_cardholder(conn, campus.school_id, "S1")
    sns = [f"GATE-{i:04d}" for i in range(2, 22)]
    door_ids = [campus.gate_id]
    for sn in sns:
        await make_device(conn, settings, campus.school_id, None, sn, kind="door")
        door_ids.append(
            await model.create_door(conn, ROOT, campus.school_id, name=sn, terminal_sn=sn)
        )
    await model.set_group_doors(conn, ROOT, campus.school_id, campus.gates, door_ids=door_ids)
    with serve_in_thread(create_app(settings)) as base_url:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as http:
            readers = [
                controller(http, sn, bytes.fromhex(terminal_key_hex(settings, sn, 1))) for sn in sns
            ]
            for r in readers:
                await r.sync()
            assert not any(r.present(card["number"]).granted for r in readers)

            # when the card center grants the student the gates
            await model.create_grant(
                conn,
                ROOT,
                campus.school_id,
                subject="person",
                subject_value=person,
                group_id=campus.gates,
                schedule_id=campus.always,
            )
            changed = time.monotonic()

            # then every controller, polling its version, holds the grant within 10 s
            async def follow(r: object) -> float:
                from campuscard.clients.door_reader import DoorController

                assert isinstance(r, DoorController)
                while card["number"] not in r.held.entries:
                    await r.tick()
                    if card["number"] not in r.held.entries:
                        await asyncio.sleep(0.2)  # the poll interval of this test
                return time.monotonic() - changed

            took = await asyncio.wait_for(asyncio.gather(*(follow(r) for r in readers)), 30)
    assert max(took) < 10, took
    assert all(r.present(card["number"]).granted for r in readers)
