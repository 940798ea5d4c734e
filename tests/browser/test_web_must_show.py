"""Issue 6's story end to end in Chromium: a student signs in, sees the balance and shows a
payment code; the merchant's POS page takes that code and the student's page shows the
payment; the language switch works on the way."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from tests.browser.conftest import key_in, shot, sign_in
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant

pytestmark = pytest.mark.browser


async def test_student_shows_a_code_and_the_pos_page_takes_it(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a canteen window with a POS, its manager, and a student with 30.00
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    person, _ = await make_cardholder(conn, school.id, "S001", cash=3000)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    await make_user(conn, "boss", "merchant_manager", school.id, merchant_id=merchant_id)

    # the student signs in on the phone, sees the balance, switches to English and back
    phone = await browser.new_page()
    phone_url = live_url.replace("127.0.0.1", "localhost")  # its own cookies
    await sign_in(phone, phone_url, "S001", school.code, PASSWORD)
    await expect(phone.get_by_test_id("balance-total")).to_have_text("¥30.00")
    await phone.click("text=English")
    await expect(phone.get_by_test_id("menu")).to_contain_text("Transactions")
    await phone.click("text=中文")
    await expect(phone.get_by_test_id("menu")).to_contain_text("交易明细")
    # and shows a payment code
    await phone.click("[data-menu='m.paycode']")
    await phone.get_by_test_id("paycode-bind").click()
    root = phone.get_by_test_id("paycode")
    await expect(root).to_have_attribute("data-online", "yes")
    # the page computes the code asynchronously (Web Crypto): wait for it, not for the flag
    await expect(root).to_have_attribute("data-code", re.compile(r"^[0-9]{20}$"))
    code = await root.get_attribute("data-code")
    assert code is not None and len(code) == 20
    await shot(phone, "must-show-paycode")

    # the cashier types 6.80 and the scanner types the code and Enter
    till = await browser.new_page()
    await till.set_viewport_size({"width": 1024, "height": 800})
    await sign_in(till, live_url, "boss", school.code, PASSWORD)
    await till.click("button.primary")  # bind this browser to POS-0001
    await key_in(till, "6.8")
    await till.keyboard.type(code)
    await till.keyboard.press("Enter")
    await expect(till.locator(".result.ok")).to_contain_text("6.80")
    await shot(till, "must-show-pos-code")

    # the student's page shows the payment at once
    live = phone.get_by_test_id("paycode-live")
    await expect(live).to_contain_text("6.80")
    await expect(live).to_contain_text("23.20")
    await shot(phone, "must-show-paycode-paid")
    assert await conn.fetchval("SELECT method FROM payments") == "code"
    # the same code again is refused
    await key_in(till, "1")
    await till.keyboard.type(code)
    await till.keyboard.press("Enter")
    await expect(till.locator(".result.bad")).to_be_visible()
    assert await conn.fetchval("SELECT count(*) FROM payments") == 1
