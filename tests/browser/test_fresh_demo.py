"""A fresh demo as a new user first opens it (issue 21, finding 8): the phone chart and the
console's charts show the campus's past with labels a person can read, the settlement days are
closed with their figures, and a till that just took a payment shows online."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect

from campuscard import demo
from campuscard.config import Settings
from campuscard.platform.signing import derive_terminal_key
from tests.browser.conftest import shot, sign_in
from tests.support_payments import Device, pay

pytestmark = pytest.mark.browser

DAYS = 3
READABLE_PX = 10  # the smallest chart label a person reads without zooming


async def _smallest_label_px(chart: Locator) -> float:
    heights: list[float] = await chart.locator("svg text").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().height)"
    )
    assert heights, "the chart has no labels"
    return min(heights)


async def _drawn_bars(chart: Locator) -> int:
    heights: list[float] = await chart.locator("svg rect").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().height)"
    )
    return sum(1 for h in heights if h >= 1)


async def _desktop(browser: BrowserContext, base: str, user: str) -> Page:
    await browser.clear_cookies()  # the next person on the same browser
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, base, user, demo.SCHOOL_CODE, demo.DEMO_PASSWORD)
    return page


async def test_a_fresh_demo_shows_its_past_with_readable_charts_and_live_tills(
    browser: BrowserContext, conn: asyncpg.Connection[Any], live_url: str, settings: Settings
) -> None:
    # given a demo campus just created, with its last few days booked
    campus = await demo.load_demo(conn, history_days=DAYS)

    # when the first student opens the phone home
    phone = await browser.new_page()
    await phone.set_viewport_size({"width": 360, "height": 780})
    await sign_in(phone, live_url, demo.student_number(1), demo.SCHOOL_CODE, demo.STUDENT_PASSWORD)
    await phone.goto(f"{live_url}/m/")
    # then the spending chart has bars on the past days and labels of a readable size
    chart = phone.get_by_test_id("spending-chart")
    assert await _drawn_bars(chart) >= DAYS - 1
    assert await _smallest_label_px(chart) >= READABLE_PX
    await expect(phone.get_by_test_id("tx-day").first).to_be_visible()
    await shot(phone, "fresh-demo-phone-zh")

    # when the settlement operator opens the settlement center
    console = await _desktop(browser, live_url, "settlement")
    await console.goto(f"{live_url}/admin/s/{demo.SCHOOL_CODE}/settlement")
    # then each past day is closed and the chart of the days is drawn and readable
    for day in campus.history.closed_days if campus.history else []:
        await expect(console.locator("main")).to_contain_text(day.isoformat())
    days_chart = console.get_by_test_id("settlement-day")
    assert await _drawn_bars(days_chart) >= 1
    assert await _smallest_label_px(days_chart) >= READABLE_PX
    await shot(console, "fresh-demo-settlement-zh")

    # when a canteen till takes a payment and the school admin looks at the terminals
    till = await conn.fetchrow(
        "SELECT id, sn, key_version, merchant_id FROM terminals WHERE sn = 'POS-DEMO-001'"
    )
    device = Device(
        till["id"],
        till["sn"],
        derive_terminal_key(
            settings.master_key.get_secret_value(), till["sn"], till["key_version"]
        ),
        till["key_version"],
        till["merchant_id"],
        campus.school_id,
    )
    card = await conn.fetchrow(
        "SELECT number, uid FROM cards WHERE number = $1", "8800" + "00000003"
    )
    async with httpx.AsyncClient(base_url=live_url) as client:
        paid = await pay(client, device, dict(card), "11.50")
    assert paid.status_code == 200, paid.text
    admin = await _desktop(browser, live_url, "school-admin")
    await admin.goto(f"{live_url}/admin/s/{demo.SCHOOL_CODE}/merchants")
    # then that till shows online, not offline
    row = admin.locator("tr", has_text="POS-DEMO-001")
    await expect(row).to_contain_text("在线")
    await shot(admin, "fresh-demo-terminals-zh")
