"""Logs: every line of a request carries its context, and no secret reaches a log line.

The app is driven through HTTP as clients drive it, with logs at DEBUG captured as JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from campuscard.config import Settings
from campuscard.issuing import applications as apps
from campuscard.platform.logs import route_to_standard_logging, setup_logging
from campuscard.platform.signing import derive_terminal_key
from tests.support import PASSWORD, login, make_user
from tests.support_issuing import make_campus, make_kiosk, make_parent
from tests.support_payments import Device, device_call, make_cardholder, make_device, make_merchant
from tests.support_payments import pay as pos_pay


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    setup_logging("DEBUG", as_json=True, stream=stream)
    yield stream
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    route_to_standard_logging()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_no_password_pin_key_pickup_code_or_card_uid_reaches_the_logs(
    client: httpx.AsyncClient, pool: Any, settings: Settings, captured: io.StringIO
) -> None:
    # given a school with a cardholder who signs in, a till, a kiosk and a parent's pickup code
    async with pool.acquire() as conn:
        campus = await make_campus(conn, "LOG", students=2)
        person_id, card = await make_cardholder(
            conn, campus.school_id, "H1", cash=50_000, uid="04C0FFEE"
        )
        await make_user(conn, "holder", "cardholder", campus.school_id, person_id=person_id)
        merchant_id, outlet_id = await make_merchant(conn, campus.school_id)
        till = await make_device(
            conn, settings, campus.school_id, merchant_id, "POS-LOG1", outlet_id=outlet_id
        )
        kiosk_row = await make_kiosk(conn, campus, "KIOSK-LOG1")
        parent = await make_parent(
            conn, campus, "parent-log", "13900000001", guardian_of="2026000001"
        )
        await conn.execute(
            "INSERT INTO guardian_links(user_id, person_id, school_id) "
            "SELECT $1, id, school_id FROM persons WHERE number = '2026000001'",
            parent.user_id,
        )
        outcome, pickup_code = await apps.do_apply(
            conn,
            settings,
            parent,
            apps.ApplicationInput(
                province="32",
                school=campus.code,
                class_name="一年级2班",
                name="学生1",
                number="2026000001",
            ),
            client_id="apply-log-1",
        )
    assert outcome.status == 201 and pickup_code
    kiosk_key = derive_terminal_key(settings.master_key.get_secret_value(), "KIOSK-LOG1", 1)
    kiosk = Device(kiosk_row.terminal_id, "KIOSK-LOG1", kiosk_key, 1, None, campus.school_id)
    new_pin = "864209"
    wrong_password = "not-the-password-42"

    # when they sign in (once wrongly), change the PIN, pay by card, rotate a key, type a code
    bad = await client.post(
        "/api/v1/auth/login",
        json={"username": "holder", "password": wrong_password, "school": "LOG"},
    )
    assert bad.status_code == 401
    headers = await login(client, "holder", "LOG")
    token = headers["Authorization"].split()[1]
    r = await client.put(
        "/api/v1/me/pin", json={"new_pin": new_pin, "password": PASSWORD}, headers=headers
    )
    assert r.status_code == 200, r.text
    r = await pos_pay(client, till, card, "12.30")
    assert r.status_code == 200 and "payment_id" in r.json(), r.text
    r = await device_call(client, till, "POST", "/api/v1/terminal/key/rotate")
    assert r.status_code == 200, r.text
    rotated_key = r.json()["key"]
    r = await device_call(
        client, kiosk, "POST", "/api/v1/kiosk/pickups/authorize", {"code": pickup_code}
    )
    assert r.status_code == 200, r.text

    # then the requests were logged, and none of the secrets was
    output = captured.getvalue()
    requests = [e for e in lines(captured) if e["logger"] == "campuscard.access"]
    assert len(requests) >= 6
    secrets = {
        "password": PASSWORD,
        "wrong password": wrong_password,
        "PIN": new_pin,
        "session token": token,
        "terminal key": till.key.hex(),
        "rotated key": rotated_key,
        "kiosk key": kiosk_key.hex(),
        "pickup code": pickup_code,
        "card UID": card["uid"],
    }
    for what, value in secrets.items():
        assert value.lower() not in output.lower(), f"the {what} reached the logs"


async def test_every_line_of_a_request_carries_its_id_actor_school_and_terminal(
    client: httpx.AsyncClient, pool: Any, settings: Settings, captured: io.StringIO
) -> None:
    # given a signed-in school admin and a till
    async with pool.acquire() as conn:
        campus = await make_campus(conn, "CTX", students=0)
        user_id = await make_user(conn, "ctx-admin", "school_admin", campus.school_id)
        merchant_id, outlet_id = await make_merchant(conn, campus.school_id)
        till = await make_device(
            conn, settings, campus.school_id, merchant_id, "POS-CTX1", outlet_id=outlet_id
        )
    headers = await login(client, "ctx-admin", "CTX")

    # when the admin sends an id the database cannot hold (the error handler logs a warning)
    r = await client.get(
        f"/api/v1/admin/persons/{2**70}/pay-settings",
        headers={**headers, "X-Request-ID": "req-ctx-0001"},
    )
    # and the till sends a heartbeat
    beat = await device_call(
        client,
        till,
        "POST",
        "/api/v1/terminal/heartbeat",
        {},
        extra_headers={"X-Request-ID": "req-ctx-0002"},
    )

    # then every line of each request names the request, and the caller
    entries = lines(captured)
    admin_lines = [e for e in entries if e.get("request_id") == "req-ctx-0001"]
    assert r.status_code in (404, 422)
    assert admin_lines and all(
        e["actor"] == "ctx-admin" and e["user_id"] == user_id and e["school"] == campus.school_id
        for e in admin_lines
    ), admin_lines
    till_lines = [e for e in entries if e.get("request_id") == "req-ctx-0002"]
    assert beat.status_code == 200, beat.text
    assert till_lines and all(
        e["terminal"] == till.id and e["school"] == campus.school_id for e in till_lines
    ), till_lines
    # a message is a message: text that looks like JSON is not parsed into fields
    logging.getLogger("campuscard.test").warning('{"status": "forged"}')
    last = lines(captured)[-1]
    assert last["msg"] == '{"status": "forged"}' and "status" not in last
