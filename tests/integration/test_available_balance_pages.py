"""Money on hold is shown as not available on every page that shows a balance beyond the
phone's home, the till and the console's person page (tests/browser/test_web_holds.py): the
kiosk's self-service screen, a parent's list of children and the top-up page."""

from __future__ import annotations

from typing import Any

import httpx

from campuscard.config import Settings
from campuscard.ledger import holds, postings
from campuscard.ledger.holds_rules import HoldRequest
from campuscard.web.kiosk.routes import create_kiosk_app
from tests.integration.test_kiosk_self_service import CARD, holder_with_card, kiosk
from tests.support import make_school, make_student, make_user
from tests.support_web import csrf_from, page_csrf, web_login


async def _shower(db: Any, school_id: int, person_id: int, amount: int, n: int = 1) -> None:
    payee = await postings.system_account(db, school_id, "merchant_payable")
    placed = await holds.place_hold(
        db,
        school_id,
        HoldRequest(
            hold_id=f"shower-t-{person_id}-{n:04d}",
            person_id=person_id,
            amount=amount,
            kind="shower",
            owner_kind="device_session",
            owner_id=f"shower-t:{person_id}",
            payee_account_id=payee,
        ),
    )
    assert placed.ok, placed.body


async def test_the_kiosk_screen_shows_what_is_available(
    client: httpx.AsyncClient, pool: Any, settings: Settings
) -> None:
    # given 123.45 on the card, 20.00 of it held by a running shower
    campus, person, _ = await holder_with_card(pool, settings)
    await _shower(pool, campus.school_id, person, 2000)
    agent = kiosk(client, settings, "KIOSK-SS1")
    app = create_kiosk_app(agent)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kiosk"
    ) as screen:
        token = csrf_from((await screen.get("/self")).text)
        started = await screen.post(
            "/self/start", data=CARD | {"pin": "135790", "csrf_token": token}
        )
        assert started.status_code == 303, started.text
        home = await screen.get("/self/home")
    # then the screen shows the balance, and what is available and held beside it
    assert 'data-testid="kiosk-total">123.45<' in home.text
    assert "可用余额 103.45 · 预授权冻结 20.00" in home.text


async def test_a_parent_sees_what_is_available_for_each_child_and_on_the_top_up_page(
    client: httpx.AsyncClient, conn: Any
) -> None:
    school = await make_school(conn)
    first = await make_student(conn, school.id, "S001", cash=5000, name="大宝")
    second = await make_student(conn, school.id, "S002", cash=2200, name="二宝")
    await _shower(conn, school.id, first, 2000)
    parent = await make_user(conn, "mum", "guardian", school.id)
    for child in (first, second):
        await conn.execute(
            "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
            parent,
            child,
            school.id,
        )
    await web_login(client, "mum", school.code)
    kids = (await client.get("/m/children")).text
    assert kids.count('data-testid="balance-available"') == 1  # only the child with a hold
    assert "可用余额 ¥30.00" in kids
    token = await page_csrf(client, "/m/children")
    assert (
        await client.post(f"/m/children/{first}", data={"csrf_token": token})
    ).status_code == 303
    topup = (await client.get("/m/topup")).text
    assert "可用余额 ¥30.00 · 预授权冻结 ¥20.00" in topup
