"""Money on hold in a browser: a shower holds 20.00 of a student's 50.00; the phone, the till's
result and the console's person page all show the balance and what is available beside it,
and the till cannot spend the held money."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from campuscard.ledger import holds, postings
from campuscard.ledger.holds_rules import HoldRequest
from tests.browser.conftest import key_in, shot, sign_in
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant

pytestmark = pytest.mark.browser


async def test_held_money_is_shown_as_not_available_everywhere(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a student with 50.00 of which a running shower holds 20.00
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    person, card = await make_cardholder(conn, school.id, "S001", cash=5000)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    await make_user(conn, "boss", "merchant_manager", school.id, merchant_id=merchant_id)
    await make_user(conn, "ops", "school_admin", school.id)
    payee = await postings.system_account(conn, school.id, "merchant_payable")
    placed = await holds.place_hold(
        conn,
        school.id,
        HoldRequest(
            hold_id="shower-1-000001",
            person_id=person,
            amount=2000,
            kind="shower",
            owner_kind="device_session",
            owner_id="shower-1:1",
            payee_account_id=payee,
        ),
    )
    assert placed.ok

    # the phone shows the balance and, beside it, what is available
    phone = await browser.new_page()  # another host name: its own cookies
    await sign_in(phone, live_url.replace("127.0.0.1", "localhost"), "S001", school.code, PASSWORD)
    await expect(phone.get_by_test_id("balance-total")).to_have_text("¥50.00")
    await expect(phone.get_by_test_id("balance-available")).to_contain_text("可用余额 ¥30.00")
    await expect(phone.get_by_test_id("balance-available")).to_contain_text("¥20.00")
    await shot(phone, "student-balance-on-hold")
    await phone.close()

    # the till cannot take 35.00 of it, and after 12.50 shows what is still available
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1024, "height": 800})
    await sign_in(page, live_url, "boss", school.code, PASSWORD)
    await page.click("button.primary")
    for amount in ("35", "12.5"):
        await page.click("[data-key='C']")
        await key_in(page, amount)
        await page.keyboard.type(card["uid"])
        await page.keyboard.press("Enter")
        if amount == "35":
            await expect(page.locator(".result.bad")).to_be_visible()
    await expect(page.locator(".result.ok")).to_contain_text("12.50")
    await expect(page.get_by_test_id("pos-available")).to_contain_text("¥17.50")
    await shot(page, "pos-approved-with-hold")
    assert await conn.fetchval("SELECT count(*) FROM payments") == 1
    await page.click("button.link")  # sign out
    await expect(page.locator("h1")).to_have_text("登录")

    # the console's person page shows the same figures
    await sign_in(page, live_url, "ops", school.code, PASSWORD)
    await page.goto(f"{live_url}/admin/s/{school.code}/people/{person}")
    await expect(page.get_by_test_id("person-balance")).to_contain_text("¥37.50")
    await expect(page.get_by_test_id("person-available")).to_have_text("¥17.50")
    await shot(page, "console-person-on-hold")
