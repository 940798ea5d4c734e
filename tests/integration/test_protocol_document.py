"""docs/terminal-protocol.md is a contract a device maker builds from alone: every answer it
shows as an example (```json example=NAME) has exactly the fields the server answers, and its
worked examples compute as printed. A field added, renamed or dropped on either side fails."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from campuscard.config import Settings
from campuscard.issuing import pickup_code
from tests.integration.test_kiosk_pickup import agent, dispensers, parent_applies
from tests.integration.test_kiosk_self_service import CARD, holder_with_card, kiosk
from tests.integration.test_reversals_refunds import _setup
from tests.support import PASSWORD, login, make_user
from tests.support_issuing import make_campus
from tests.support_payments import device_call, make_merchant

__all__ = ["dispensers"]  # the fixture, used by name

DOC = Path(__file__).resolve().parents[2] / "docs" / "terminal-protocol.md"
_EXAMPLE = re.compile(r"```json example=([\w-]+)\n(.*?)```", re.S)


def documented() -> dict[str, Any]:
    return {name: json.loads(body) for name, body in _EXAMPLE.findall(DOC.read_text())}


def differences(doc: Any, real: Any, at: str = "$") -> list[str]:
    """Where the documented answer and the real one differ in shape (fields and their types;
    values may differ, and a documented null stands for any value)."""
    if doc is None:
        return []
    if isinstance(doc, dict):
        if not isinstance(real, dict):
            return [f"{at}: documented an object, got {type(real).__name__}"]
        out = [f"{at}.{k}: documented, not answered" for k in doc.keys() - real.keys()]
        out += [f"{at}.{k}: answered, not documented" for k in real.keys() - doc.keys()]
        for k in doc.keys() & real.keys():
            out += differences(doc[k], real[k], f"{at}.{k}")
        return out
    if isinstance(doc, list):
        if not isinstance(real, list):
            return [f"{at}: documented a list, got {type(real).__name__}"]
        return differences(doc[0], real[0], f"{at}[0]") if doc and real else []
    if real is not None and type(doc) is not type(real):
        return [f"{at}: documented {type(doc).__name__}, got {type(real).__name__}"]
    return []


def check(name: str, real: httpx.Response, status: int = 200) -> None:
    assert real.status_code == status, real.text
    assert differences(documented()[name], real.json()) == [], name


def test_every_example_parses_and_the_checker_sees_a_missing_field() -> None:
    examples = documented()
    assert {"register", "kiosk-authorize", "kiosk-overview"} <= examples.keys()
    assert differences({"a": "1", "b": {"c": 1}}, {"a": "2", "b": {"c": 2}}) == []
    assert differences({"a": "1"}, {"a": "1", "extra": 0}) == ["$.extra: answered, not documented"]
    assert differences({"a": {"b": "x"}}, {"a": {}}) == ["$.a.b: documented, not answered"]
    assert differences({"n": 1}, {"n": "1"}) == ["$.n: documented int, got str"]


def test_the_kiosk_hash_worked_example() -> None:
    key = pickup_code.kiosk_key(b"example-master-key-do-not-use", "KIOSK-DEMO-01")
    text = DOC.read_text()
    assert key.hex() in text
    code = pickup_code.normalize("3400 0701 1234 5678")
    assert code is not None
    assert pickup_code.kiosk_hash(key, code) in text


async def test_registration_answer(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    dev, *_ = await _setup(pool, settings)
    async with pool.acquire() as conn:
        await make_user(conn, "admin1", "school_admin", dev.school_id)
        merchant_id, _ = await make_merchant(conn, dev.school_id, name="二食堂")
    admin = await login(client, "admin1", "TST")
    term = await client.post(
        "/api/v1/admin/schools/TST/terminals",
        headers=admin,
        json={"sn": "POS-DOC-01", "kind": "pos", "merchant_id": merchant_id},
    )
    check("register", term, 201)


async def test_bodies_must_be_labelled_json(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    dev, _, card, _ = await _setup(pool, settings)
    body = {"card_number": card["number"], "card_uid": card["uid"], "amount": "1.00"}
    r = await device_call(
        client,
        dev,
        "POST",
        "/api/v1/terminal/pay/check",
        body,
        extra_headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert r.json()["error"]["field"] == "Content-Type"
    assert "415 UNSUPPORTED_MEDIA_TYPE" in DOC.read_text()


async def test_kiosk_pickup_answers(
    client: httpx.AsyncClient, pool: Any, settings: Settings, dispensers: Any
) -> None:
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
    k, _ = await agent(client, settings, pool, campus, "KIOSK-DOC1", dispensers)
    code = await parent_applies(pool, settings, campus)
    second = await parent_applies(pool, settings, campus, 2)
    check("kiosk-pickup-key", await k._call("GET", "/api/v1/kiosk/pickup-key"))
    check("kiosk-pickups", await k._call("GET", "/api/v1/kiosk/pickups?since=0"))
    authorized = await k._call(
        "POST", "/api/v1/kiosk/pickups/authorize", {"code": code, "session_id": "visit-0001"}
    )
    check("kiosk-authorize", authorized)
    done = await k._call(
        "POST",
        f"/api/v1/kiosk/pickups/{authorized.json()['pickup_id']}/complete",
        {"client_id": "KIOSK-DOC1-report-1", "card_number": "31009999", "card_uid": "A5009999"},
    )
    check("kiosk-complete", done)
    other = await k._call("POST", "/api/v1/kiosk/pickups/authorize", {"code": second})
    failed = await k._call(
        "POST",
        f"/api/v1/kiosk/pickups/{other.json()['pickup_id']}/failure",
        {"reason": "jam", "release": False},
    )
    check("kiosk-failure", failed)


@pytest.mark.parametrize("start", ["card", "password"])
async def test_kiosk_self_service_answers(
    client: httpx.AsyncClient, pool: Any, settings: Settings, start: str
) -> None:
    await holder_with_card(pool, settings)
    k = kiosk(client, settings, "KIOSK-SS1")
    base = "/api/v1/kiosk/self-service"
    if start == "card":
        opened = await k._call("POST", f"{base}/start-card", CARD | {"pin": "135790"})
    else:
        opened = await k._call(
            "POST", f"{base}/start-password", {"number": "2026000001", "password": PASSWORD}
        )
    check("kiosk-start", opened)
    visit = opened.json()["visit"]
    check("kiosk-overview", await k._call("POST", f"{base}/overview", {"visit": visit}))
    changed = await k._call(
        "POST", f"{base}/pin", {"visit": visit, "pin": "135790", "new_pin": "246802"}
    )
    check("kiosk-pin", changed)
