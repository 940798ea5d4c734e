"""The kiosk's touch-screen pages (served by the kiosk, talking to the platform through the
kiosk agent): pick up a card with a code, and self-service."""

from __future__ import annotations

from typing import Any

import httpx

from campuscard.adapters.dispenser.serial import SerialDispenser
from campuscard.adapters.dispenser.simulator import DispenserSimulator
from campuscard.cards import lifecycle
from campuscard.clients.kiosk_agent import KioskAgent
from campuscard.config import Settings
from campuscard.payments import pay_settings
from campuscard.platform.signing import derive_terminal_key
from campuscard.web.kiosk.routes import create_kiosk_app
from tests.integration.test_kiosk_pickup import parent_applies
from tests.support import fund
from tests.support_issuing import card_center, make_campus, make_kiosk
from tests.support_web import csrf_from


async def test_pickup_page_issues_the_card_and_self_service_shows_the_balance(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    # given a kiosk with a dispenser, and a parent's code
    async with pool.acquire() as conn:
        campus = await make_campus(conn)
        await make_kiosk(conn, campus, "KIOSK-PG1")
    sim = DispenserSimulator()
    port = await sim.start()
    try:
        key = derive_terminal_key(settings.master_key.get_secret_value(), "KIOSK-PG1", 1)
        agent = KioskAgent(
            client, sn="KIOSK-PG1", terminal_key=key, dispenser=SerialDispenser("127.0.0.1", port)
        )
        code = await parent_applies(pool, settings, campus)
        app = create_kiosk_app(agent)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://kiosk"
        ) as screen:
            home = await screen.get("/")
            assert home.status_code == 200 and "KIOSK-PG1" in home.text
            form = await screen.get("/pickup")
            token = csrf_from(form.text)
            # a wrong code: seed 004's message, nothing dispensed
            wrong = await screen.post("/pickup", data={"code": "1234", "csrf_token": token})
            assert wrong.status_code == 422 and "取卡注册码无效" in wrong.text
            # the right code: a card comes out
            done = await screen.post("/pickup", data={"code": code, "csrf_token": token})
            assert done.status_code == 200, done.text
            assert "取卡成功" in done.text and "学生1" in done.text
            assert len(sim.issued) == 1
            # a form without the token is refused
            forged = await screen.post("/pickup", data={"code": code})
            assert forged.status_code == 403

            # self-service with the new card
            async with pool.acquire() as conn:
                person = await conn.fetchval(
                    "SELECT id FROM persons WHERE school_id = $1 AND number = '2026000001'",
                    campus.school_id,
                )
                await fund(conn, campus.school_id, person, cash=8800)
                await pay_settings.set_pin(
                    conn, card_center(campus), settings, person_id=person, new_pin="135790"
                )
            issued = sim.issued[0]
            start = await screen.get("/self")
            token = csrf_from(start.text)
            bad = await screen.post(
                "/self/start",
                data={
                    "card_number": issued.number,
                    "card_uid": issued.uid,
                    "pin": "999999",
                    "csrf_token": token,
                },
            )
            assert bad.status_code == 422 and "支付密码错误" in bad.text  # in the kiosk's language
            ok = await screen.post(
                "/self/start",
                data={
                    "card_number": issued.number,
                    "card_uid": issued.uid,
                    "pin": "135790",
                    "csrf_token": token,
                },
            )
            assert ok.status_code == 303
            view = await screen.get("/self/home")
            assert view.status_code == 200 and "88.00" in view.text
            card_id = await pool.fetchval(
                "SELECT id FROM cards WHERE school_id = $1", campus.school_id
            )
            lost = await screen.post(
                "/self/loss", data={"card_id": str(card_id), "csrf_token": csrf_from(view.text)}
            )
            assert lost.status_code == 303 and "k.lost_ok" in lost.headers["location"]
            assert (
                await pool.fetchval(
                    "SELECT state FROM cards WHERE school_id = $1", campus.school_id
                )
                == "lost"
            )
            _ = lifecycle
    finally:
        await sim.stop()
