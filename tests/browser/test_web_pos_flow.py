"""The whole story in a browser: the till charges a card, the student sees the payment, the
card center reports the card lost and the till refuses it, the admin sees it in reports."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, Page, expect

from campuscard.config import Settings
from tests.browser.conftest import key_in, shot, sign_in
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant

pytestmark = pytest.mark.browser


async def _sign_out(page: Page) -> None:
    await page.click("button.link")  # 退出登录 in the header
    await expect(page.locator("h1")).to_have_text("登录")


async def _charge(
    page: Page, keys: str, uid: str, conn: asyncpg.Connection[Any] | None = None
) -> None:
    await key_in(page, keys)
    if conn is not None:  # the customer display got the typed amount before paying
        for _ in range(50):
            if await conn.fetchval("SELECT amount FROM pos_pending_amounts") == 1250:
                break
            await page.wait_for_timeout(100)
        assert await conn.fetchval("SELECT amount FROM pos_pending_amounts") == 1250
    # the keyboard-wedge reader types the UID and Enter into the focused scan field
    await page.keyboard.type(uid)
    await page.keyboard.press("Enter")


async def test_till_student_card_center_and_reports(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a canteen with a registered POS at window 1 and a student with 50.00
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    person, card = await make_cardholder(conn, school.id, "S001", cash=5000)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    await make_user(conn, "boss", "merchant_manager", school.id, merchant_id=merchant_id)
    await make_user(conn, "desk", "card_center", school.id)
    await make_user(conn, "ops", "school_admin", school.id)
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1024, "height": 800})

    # the student has the phone page open (another host name: its own cookies)
    phone = await browser.new_page()
    phone_url = live_url.replace("127.0.0.1", "localhost")
    await sign_in(phone, phone_url, "S001", school.code, PASSWORD)
    await expect(phone.get_by_test_id("balance-total")).to_have_text("¥50.00")
    await phone.wait_for_timeout(500)  # the live stream connects

    # the manager binds this browser to the window's terminal and charges 12.50
    await sign_in(page, live_url, "boss", school.code, PASSWORD)
    await expect(page.get_by_test_id("terminal-choice")).to_be_visible()
    await page.click("button.primary")
    await expect(page.get_by_test_id("pos-terminal")).to_have_text("POS-0001")
    await _charge(page, "12.5", card["uid"], conn)
    await expect(page.locator(".result.ok")).to_contain_text("12.50")
    await shot(page, "pos-approved")
    await _sign_out(page)

    # the student's open page announces the payment, then shows the new balance
    await expect(phone.get_by_test_id("live")).to_contain_text("12.50")
    await expect(phone.get_by_test_id("balance-total")).to_have_text("¥37.50")
    await shot(phone, "student-live-payment")
    await phone.reload()
    await expect(phone.get_by_test_id("purse-cash")).to_have_text("¥37.50")
    await expect(phone.get_by_test_id("tx-rows")).to_contain_text("第一食堂")
    await expect(phone.get_by_test_id("tx-rows")).to_contain_text("-¥12.50")
    await shot(phone, "student-after-payment")
    await phone.close()

    # the card center reports the card lost
    await sign_in(page, live_url, "desk", school.code, PASSWORD)
    await page.click("[data-menu='a.cards']")
    await page.click(f"text={card['number']}")
    page.once("dialog", lambda dialog: dialog.accept())  # it asks first
    await page.click("[data-testid='card-action-report_loss'] button")
    await expect(page.get_by_test_id("card-state")).to_have_text("已挂失")
    await shot(page, "card-center-lost")
    await _sign_out(page)

    # the till refuses the lost card, in red, and nothing is booked
    await sign_in(page, live_url, "boss", school.code, PASSWORD)
    await _charge(page, "3", card["uid"])
    await expect(page.locator(".result.bad")).to_contain_text("此卡已挂失")
    await shot(page, "pos-refused-lost")
    assert await conn.fetchval("SELECT count(*) FROM payments") == 1
    await page.click("[data-menu='p.takings']")
    await expect(page.get_by_test_id("takings-total")).to_have_text("¥12.50")
    await shot(page, "pos-takings")
    await _sign_out(page)

    # the admin sees the payment in the reports, per merchant and per channel
    await sign_in(page, live_url, "ops", school.code, PASSWORD)
    await expect(page.get_by_test_id("today-total")).to_have_text("¥12.50")
    await page.click("[data-menu='a.reports']")
    await expect(page.get_by_test_id("report-merchants")).to_contain_text("第一食堂")
    await expect(page.get_by_test_id("report-merchants")).to_contain_text("12.50")
    await expect(page.get_by_test_id("report-channels")).to_contain_text("12.50")
    await shot(page, "admin-reports")
    async with page.expect_download() as download_info:
        await page.click("[data-testid='report-merchants'] ~ p.exports a:text('CSV')")
    download = await download_info.value
    path = await download.path()
    assert "第一食堂" in path.read_text("utf-8-sig") and "12.50" in path.read_text("utf-8-sig")
