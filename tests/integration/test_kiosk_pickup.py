"""Self-service pickup end to end: the kiosk agent (signed requests) against the platform, with
the card-dispenser simulator on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from campuscard.adapters.dispenser.serial import SerialDispenser
from campuscard.adapters.dispenser.simulator import DispenserSimulator
from campuscard.clients.kiosk_agent import EXPIRED, INVALID, ISSUED, KioskAgent
from campuscard.config import Settings
from campuscard.issuing import applications as apps
from campuscard.platform.signing import derive_terminal_key
from tests.support_issuing import Campus, make_campus, make_kiosk, make_parent


@pytest.fixture
async def dispensers() -> AsyncIterator[list[DispenserSimulator]]:
    sims: list[DispenserSimulator] = []
    yield sims
    for sim in sims:
        await sim.stop()


async def agent(
    client: httpx.AsyncClient,
    settings: Settings,
    pool: Any,
    campus: Campus,
    sn: str,
    sims: list[DispenserSimulator],
    **sim_args: Any,
) -> tuple[KioskAgent, DispenserSimulator]:
    async with pool.acquire() as conn:
        await make_kiosk(conn, campus, sn)
    sim = DispenserSimulator(first_number=31000001 + 1000 * len(sims), **sim_args)
    sims.append(sim)
    port = await sim.start()
    key = derive_terminal_key(settings.master_key.get_secret_value(), sn, 1)
    kiosk = KioskAgent(
        client, sn=sn, terminal_key=key, dispenser=SerialDispenser("127.0.0.1", port)
    )
    return kiosk, sim


async def parent_applies(pool: Any, settings: Settings, campus: Campus, i: int = 1) -> str:
    number = f"2026{i:06d}"
    async with pool.acquire() as conn:
        parent = await make_parent(conn, campus, f"parent{i}", f"139{i:08d}", guardian_of=number)
        await conn.execute(  # a parent who already has a sign-in linked to the child
            "INSERT INTO guardian_links(user_id, person_id, school_id) "
            "SELECT $1, id, school_id FROM persons WHERE number = $2",
            parent.user_id,
            number,
        )
        outcome, code = await apps.do_apply(
            conn,
            settings,
            parent,
            apps.ApplicationInput(
                province="32",
                school=campus.code,
                class_name=("一年级1班", "一年级2班")[i % 2],
                name=f"学生{i}",
                number=number,
            ),
            client_id=f"apply-{number}",
        )
    assert outcome.status == 201 and code
    return code


async def test_a_code_issues_one_card_binds_it_and_tells_teacher_and_parent(
    client: httpx.AsyncClient, pool: Any, settings: Settings, dispensers: Any
) -> None:
    # given two kiosks of the school and a parent's code
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
    k1, sim1 = await agent(client, settings, pool, campus, "KIOSK-P1", dispensers)
    k2, _ = await agent(client, settings, pool, campus, "KIOSK-P2", dispensers)
    code = await parent_applies(pool, settings, campus)
    await k1.sync()
    await k2.sync()
    assert k1.check_locally(code) and k2.check_locally(code)
    # when the student types it at kiosk 1
    result = await k1.pickup(code)
    # then one card came out, carrying the student's data, and is bound and active
    assert result.ok, result.message
    assert sim1.issued[0].written["number"] == "2026000001"
    card = await pool.fetchrow("SELECT * FROM cards")
    person = await pool.fetchrow("SELECT * FROM persons WHERE number = '2026000001'")
    assert (card["number"], card["state"], card["person_id"]) == (
        result.card_number,
        "active",
        person["id"],
    )
    assert person["account_status"] == "active"
    assert await pool.fetchval("SELECT status FROM card_applications") == "issued"
    assert (
        await pool.fetchval(
            "SELECT ic_card_no FROM student_records WHERE person_id = $1", person["id"]
        )
        == result.card_number
    )
    backup = await pool.fetchrow("SELECT record FROM student_record_backups")
    assert backup["record"]["number"] == "2026000001" and backup["record"]["cards"] == []
    # the teacher who imported the record and the linked parent are told, the parent by SMS too
    told = await pool.fetch(
        "SELECT user_id, person_id FROM notifications WHERE kind = 'student_record.card_changed'"
    )
    parent_id = await pool.fetchval("SELECT id FROM users WHERE username = 'parent1'")
    assert {t["user_id"] for t in told} >= {campus.teacher_user_id, parent_id}
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = 'sms' AND payload->>'phone' = '13900000001' "
            "AND payload->>'text' LIKE '%新IC卡%'"
        )
        == 1
    )
    # the code is spent: the other kiosk is told the card was issued, this one no longer has it
    other = await k2.pickup(code)
    assert (other.ok, other.message) == (False, ISSUED)
    again = await k1.pickup(code)
    assert (again.ok, again.message, again.asked_platform) == (False, INVALID, False)
    assert await pool.fetchval("SELECT count(*) FROM cards") == 1


async def test_a_wrong_code_is_refused_locally_without_asking_the_platform(
    client: httpx.AsyncClient, pool: Any, settings: Settings, dispensers: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
    k1, _ = await agent(client, settings, pool, campus, "KIOSK-W1", dispensers)
    code = await parent_applies(pool, settings, campus)
    wrong = code[:-1] + str((int(code[-1]) + 3) % 10)
    result = await k1.pickup(wrong)
    assert (result.ok, result.message, result.asked_platform) == (False, INVALID, False)
    assert await pool.fetchval("SELECT state FROM pickup_codes") == "ready"


async def test_two_kiosks_at_the_same_instant_yield_exactly_one_card(
    client: httpx.AsyncClient, pool: Any, settings: Settings, dispensers: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
    k1, s1 = await agent(client, settings, pool, campus, "KIOSK-X1", dispensers)
    k2, s2 = await agent(client, settings, pool, campus, "KIOSK-X2", dispensers)
    code = await parent_applies(pool, settings, campus)
    await asyncio.gather(k1.sync(), k2.sync())
    results = await asyncio.gather(k1.pickup(code), k2.pickup(code))
    assert sorted(r.ok for r in results) == [False, True]
    assert next(r for r in results if not r.ok).message == ISSUED
    assert len(s1.issued) + len(s2.issued) == 1
    assert await pool.fetchval("SELECT count(*) FROM cards") == 1


async def test_a_jam_is_retried_on_the_kiosk_and_an_empty_kiosk_releases_the_code(
    client: httpx.AsyncClient, pool: Any, settings: Settings, dispensers: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
    jammy, jam_sim = await agent(client, settings, pool, campus, "KIOSK-J1", dispensers, jam_next=1)
    empty, _ = await agent(client, settings, pool, campus, "KIOSK-J2", dispensers, stock=0)
    spare, _ = await agent(client, settings, pool, campus, "KIOSK-J3", dispensers)
    code1 = await parent_applies(pool, settings, campus, 1)
    code2 = await parent_applies(pool, settings, campus, 2)
    # a jam: the same kiosk tries again and the student gets a card
    assert (await jammy.pickup(code1)).ok
    assert jam_sim.rejected == 1
    assert (
        await pool.fetchval("SELECT dispense_failures FROM pickup_codes WHERE state = 'issued'")
        == 1
    )
    # out of cards: the authorization is released and another kiosk issues the card
    failed = await empty.pickup(code2)
    assert not failed.ok and "发卡失败" in failed.message
    assert await pool.fetchval("SELECT state FROM pickup_codes WHERE state <> 'issued'") == "ready"
    assert (await spare.pickup(code2)).ok
    assert await pool.fetchval("SELECT count(*) FROM cards") == 2


async def test_expired_code_and_unsigned_or_non_kiosk_requests_are_refused(
    client: httpx.AsyncClient, pool: Any, settings: Settings, dispensers: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
    k1, _ = await agent(client, settings, pool, campus, "KIOSK-Z1", dispensers)
    code = await parent_applies(pool, settings, campus)
    await k1.sync()
    await pool.execute("UPDATE pickup_codes SET expires_at = now() - interval '1 minute'")
    result = await k1.pickup(code)
    assert (result.ok, result.message) == (False, EXPIRED)
    unsigned = await client.post("/api/v1/kiosk/pickups/authorize", json={"code": code})
    assert unsigned.status_code == 401
    async with pool.acquire() as conn:
        await conn.execute("UPDATE terminals SET kind = 'door' WHERE sn = 'KIOSK-Z1'")
    from campuscard.payments import terminals

    terminals.forget_terminal("KIOSK-Z1")
    door = await k1._call("GET", "/api/v1/kiosk/pickups?since=0")
    assert door.status_code == 403 and door.json()["error"]["code"] == "NOT_A_KIOSK"


async def test_a_completion_report_sent_twice_binds_one_card(
    client: httpx.AsyncClient, pool: Any, settings: Settings, dispensers: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
    k1, _ = await agent(client, settings, pool, campus, "KIOSK-D1", dispensers)
    code = await parent_applies(pool, settings, campus)
    await k1.sync()
    r = await k1._call("POST", "/api/v1/kiosk/pickups/authorize", {"code": code})
    pickup_id = r.json()["pickup_id"]
    body = {"client_id": "KIOSK-D1-report-1", "card_number": "31009999", "card_uid": "A5009999"}
    first = await k1._call("POST", f"/api/v1/kiosk/pickups/{pickup_id}/complete", body)
    again = await k1._call("POST", f"/api/v1/kiosk/pickups/{pickup_id}/complete", body)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await pool.fetchval("SELECT count(*) FROM cards") == 1


async def test_the_kiosk_protocol_carries_a_session_per_person(
    client: httpx.AsyncClient, pool: Any, settings: Settings, dispensers: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
    k1, _ = await agent(client, settings, pool, campus, "KIOSK-S1", dispensers)
    code = await parent_applies(pool, settings, campus)
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    path = "/api/v1/kiosk/pickups/authorize"
    bad = await k1._call("POST", path, {"code": code, "session_id": "no spaces!"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "session_id"
    for _ in range(settings.pickup_guess_limit):
        r = await k1._call("POST", path, {"code": wrong, "session_id": "visit-a"})
        assert r.json()["error"]["code"] == "PICKUP_CODE_INVALID"
    locked = await k1._call("POST", path, {"code": code, "session_id": "visit-a"})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "KIOSK_GUESS_LIMIT"
    # the next person, through the kiosk software with a session of their own, gets the card
    result = await k1.pickup(code, session_id="visit-b")
    assert result.ok, result.message
