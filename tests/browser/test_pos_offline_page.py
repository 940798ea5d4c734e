"""The browser till when the network goes: a banner says so, the charge button waits and the
typed amount stays; when the network is back the till takes the payment. The page also shows
the till's offline store as the server saw it (uploaded, missing, waiting)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from tests.browser.conftest import key_in, shot, sign_in
from tests.browser.test_devices_page import _rec, _upload
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant

pytestmark = pytest.mark.browser


async def test_the_till_says_it_is_offline_and_resumes_when_the_network_is_back(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a till that uploaded three offline sales last night, one still waiting for an
    # earlier one that was never sent (sequence 3 missing)
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    till = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    _, card = await make_cardholder(conn, school.id, "S001", cash=5_000)
    await make_user(conn, "boss", "merchant_manager", school.id, merchant_id=merchant_id)
    await _upload(
        conn,
        till,
        [
            _rec(till, card, 1, 300, 1, 0),
            _rec(till, card, 2, 200, 2, 300),
            _rec(till, card, 4, 100, 4, 600),
        ],
    )

    # when the manager opens the till in the browser
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1024, "height": 800})
    await sign_in(page, live_url, "boss", school.code, PASSWORD)
    await page.click("button.primary")
    state = page.get_by_test_id("pos-offline-state")
    await expect(state).to_contain_text("已补传 3 笔")
    await expect(state).to_contain_text("还缺 1 笔未补传")
    await expect(state).to_contain_text("1 笔等待前一笔到达后入账")
    banner = page.get_by_test_id("pos-offline")
    await expect(banner).to_be_hidden()

    # and the network goes while the cashier types 12.50
    await key_in(page, "12.5")
    await browser.set_offline(True)
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("网络已断开")
    charge = page.locator("[data-testid=pos-form] button[type=submit].primary")
    await expect(charge).to_be_disabled()
    await expect(page.get_by_test_id("amount-display")).to_have_text("12.5")
    await shot(page, "pos-offline")

    # then when it is back the banner goes and the same amount is charged
    await browser.set_offline(False)
    await expect(banner).to_be_hidden()
    await expect(charge).to_be_enabled()
    await page.keyboard.type(card["uid"])
    await page.keyboard.press("Enter")
    await expect(page.locator(".result.ok")).to_contain_text("12.50")
    assert await conn.fetchval("SELECT count(*) FROM payments") == 1
