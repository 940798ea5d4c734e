"""The cardholder's and the card center's payment-code API over HTTP."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx

from campuscard.config import Settings
from campuscard.payments import code_rules, codes
from tests.support import login, make_school, make_student, make_user


async def student(conn: asyncpg.Connection[Any], school_id: int, number: str) -> int:
    person_id = await make_student(conn, school_id, number, cash=5000)
    await make_user(conn, f"u{number}", "cardholder", school_id, person_id=person_id)
    return person_id


async def test_bind_generate_pay_rebind_and_unbind_over_http(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    person_id = await student(conn, school.id, "S1")
    await make_user(conn, "cc", "card_center", school.id)
    me = await login(client, "uS1", school.code)
    # when: the phone binds
    r = await client.post("/api/v1/me/paycode/devices", json={"label": "Mi 14"}, headers=me)
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    bound = r.json()
    assert len(bound["secret"]) == 64 and len(bound["token"]) == 8
    assert abs(bound["server_time"] - time.time()) < 60
    # then: a code computed from what the phone received is accepted by the server
    now = time.time()
    code = code_rules.generate(
        bytes.fromhex(bound["secret"]),
        bound["token"],
        code_rules.time_step(now, bound["step_seconds"]),
        scheme=bound["scheme"],
    )
    assert code.startswith("6")
    verified = await codes.check_code(conn, settings, school_id=school.id, code=code, now=now)
    assert verified.person_id == person_id
    # rebinding revokes the first phone
    r2 = await client.post("/api/v1/me/paycode/devices", json={"label": "iPhone"}, headers=me)
    assert r2.json()["revoked_device_id"] == bound["device_id"]
    listed = (await client.get("/api/v1/me/paycode/devices", headers=me)).json()
    assert [(d["label"], d["status"]) for d in listed] == [
        ("iPhone", "active"),
        ("Mi 14", "revoked"),
    ]
    # the card center sees and unbinds the current phone
    op = await login(client, "cc", school.code)
    seen = await client.get(f"/api/v1/admin/persons/{person_id}/paycode/devices", headers=op)
    assert seen.status_code == 200 and len(seen.json()) == 2
    assert "secret" not in seen.text and "salt" not in seen.text
    r3 = await client.post(
        f"/api/v1/paycode/devices/{r2.json()['device_id']}/unbind",
        json={"reason": "student lost phone"},
        headers=op,
    )
    assert r3.status_code == 200 and r3.json()["status"] == "revoked"


async def test_refusals_name_the_field_and_never_answer_500(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn, "AAA")
    other = await make_school(conn, "BBB")
    await student(conn, school.id, "S1")
    other_person = await student(conn, other.id, "S9")
    await make_user(conn, "cc", "card_center", school.id)
    me = await login(client, "uS1", school.code)
    op = await login(client, "cc", school.code)
    r = await client.post("/api/v1/me/paycode/devices", json={"label": "x" * 65}, headers=me)
    assert r.status_code == 422 and r.json()["error"]["field"]
    r = await client.post("/api/v1/me/paycode/devices", json={"labl": "x"}, headers=me)
    assert r.status_code == 422
    r = await client.post("/api/v1/me/paycode/devices", json={})
    assert r.status_code == 401
    # an operator is not a cardholder: they cannot bind a phone to themselves
    r = await client.post("/api/v1/me/paycode/devices", json={}, headers=op)
    assert r.status_code == 403 and r.json()["error"]["code"] == "CARDHOLDER_REQUIRED"
    # another school's person does not exist for this operator
    r = await client.get(f"/api/v1/admin/persons/{other_person}/paycode/devices", headers=op)
    assert r.status_code == 404
    r = await client.post("/api/v1/paycode/devices/999999/unbind", json={}, headers=op)
    assert r.status_code == 404 and r.json()["error"]["field"] == "device_id"


async def test_minted_code_comes_with_images(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    person_id = await student(conn, school.id, "S1")
    me = await login(client, "uS1", school.code)
    r = await client.post("/api/v1/me/paycode/minted", headers=me)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["code"].startswith("8") and len(body["code"]) == 20
    assert body["qr_svg"].lstrip().startswith("<svg") and body["code128_svg"].startswith("<svg")
    verified = await codes.check_code(conn, settings, school_id=school.id, code=body["code"])
    assert verified.person_id == person_id
