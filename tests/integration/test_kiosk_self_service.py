"""Kiosk self-service (seed 002): card + PIN starts a visit; balance and recent transactions,
change PIN, report a lost card (number + password), top up through the provider."""

from __future__ import annotations

from typing import Any

import httpx

from campuscard.adapters.dispenser.serial import SerialDispenser
from campuscard.cards import lifecycle
from campuscard.clients.kiosk_agent import KioskAgent
from campuscard.config import Settings
from campuscard.payments import pay_settings
from campuscard.platform.signing import derive_terminal_key
from tests.support import PASSWORD, fund, make_user
from tests.support_issuing import card_center, make_campus, make_kiosk


async def holder_with_card(pool: Any, settings: Settings) -> tuple[Any, int, int]:
    async with pool.acquire() as conn:
        campus = await make_campus(conn, students=2)
        person = await conn.fetchval("SELECT id FROM persons WHERE number = '2026000001'")
        operator = card_center(campus)
        card = await lifecycle.issue_card(
            conn, operator, person_id=person, number="31000001", uid="A5000001"
        )
        await fund(conn, campus.school_id, person, cash=12345)
        await pay_settings.set_pin(conn, operator, settings, person_id=person, new_pin="135790")
        await make_user(conn, "2026000001", "cardholder", campus.school_id, person_id=person)
        await make_kiosk(conn, campus, "KIOSK-SS1")
        await make_kiosk(conn, campus, "KIOSK-SS2")
    return campus, person, card["id"]


def kiosk(client: httpx.AsyncClient, settings: Settings, sn: str) -> KioskAgent:
    key = derive_terminal_key(settings.master_key.get_secret_value(), sn, 1)
    return KioskAgent(client, sn=sn, terminal_key=key, dispenser=SerialDispenser("127.0.0.1", 1))


CARD = {"card_number": "31000001", "card_uid": "A5000001"}


async def test_card_and_pin_open_a_visit_with_balance_and_recent_transactions(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    await holder_with_card(pool, settings)
    k = kiosk(client, settings, "KIOSK-SS1")
    wrong = await k._call("POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "000000"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "PIN_WRONG"
    start = await k._call("POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "135790"})
    assert start.status_code == 200, start.text
    visit = start.json()["visit"]
    view = (await k._call("POST", "/api/v1/kiosk/self-service/overview", {"visit": visit})).json()
    assert view["balances"]["cash"] == "123.45" and view["total"] == "123.45"
    assert view["recent"][0]["amount"] == "123.45"
    assert view["cards"] == [
        {"id": view["cards"][0]["id"], "number": "31000001", "state": "active"}
    ]
    # the visit belongs to this kiosk only
    other = kiosk(client, settings, "KIOSK-SS2")
    stolen = await other._call("POST", "/api/v1/kiosk/self-service/overview", {"visit": visit})
    assert stolen.status_code == 401


async def test_change_pin_needs_the_current_pin(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    await holder_with_card(pool, settings)
    k = kiosk(client, settings, "KIOSK-SS1")
    visit = (
        await k._call("POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "135790"})
    ).json()["visit"]
    refused = await k._call(
        "POST",
        "/api/v1/kiosk/self-service/pin",
        {"visit": visit, "pin": "111111", "new_pin": "246802"},
    )
    assert refused.status_code == 401
    changed = await k._call(
        "POST",
        "/api/v1/kiosk/self-service/pin",
        {"visit": visit, "pin": "135790", "new_pin": "246802"},
    )
    assert changed.status_code == 200, changed.text
    old = await k._call("POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "135790"})
    new = await k._call("POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "246802"})
    assert (old.status_code, new.status_code) == (401, 200)


async def test_a_lost_card_is_reported_with_number_and_password(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    _, _, card_id = await holder_with_card(pool, settings)
    k = kiosk(client, settings, "KIOSK-SS1")
    bad = await k._call(
        "POST",
        "/api/v1/kiosk/self-service/start-password",
        {"number": "2026000001", "password": "nope"},
    )
    assert bad.status_code == 401
    visit = (
        await k._call(
            "POST",
            "/api/v1/kiosk/self-service/start-password",
            {"number": "2026000001", "password": PASSWORD},
        )
    ).json()["visit"]
    lost = await k._call(
        "POST", "/api/v1/kiosk/self-service/report-loss", {"visit": visit, "card_id": card_id}
    )
    assert lost.status_code == 200, lost.text
    assert await pool.fetchval("SELECT state FROM cards WHERE id = $1", card_id) == "lost"
    # a lost card no longer opens a visit
    again = await k._call("POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "135790"})
    assert again.status_code == 404


async def test_top_up_at_the_kiosk_opens_a_provider_order_paid_by_phone(
    pool: Any, settings: Settings
) -> None:
    from tests.support_moneyflows import provider_world, wait_for

    _, person, _ = await holder_with_card(pool, settings)
    with provider_world(settings) as (wired, _sim, app_url):
        async with httpx.AsyncClient(base_url=app_url) as api:
            k = kiosk(api, wired, "KIOSK-SS1")
            visit = (
                await k._call(
                    "POST", "/api/v1/kiosk/self-service/start-card", CARD | {"pin": "135790"}
                )
            ).json()["visit"]
            order = await k._call(
                "POST",
                "/api/v1/kiosk/self-service/topup",
                {"visit": visit, "client_id": "kiosk-topup-0001", "amount": "50.00"},
            )
            assert order.status_code == 201, order.text
            assert order.json()["pay_url"]
            paid = await api.post(order.json()["pay_url"], data={"action": "pay"})
            assert paid.status_code == 200

            async def credited() -> bool:
                balance = await pool.fetchval(
                    "SELECT balance FROM accounts WHERE person_id = $1 AND purse = 'cash'", person
                )
                return bool(balance == 12345 + 5000)

            assert await wait_for(credited)
