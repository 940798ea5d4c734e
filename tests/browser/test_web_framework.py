"""The page framework in a real browser: sign-in, balance, language switch, keyboard use,
menus by role, sign-out."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_school, make_student, make_user

pytestmark = pytest.mark.browser


async def test_student_signs_in_sees_balance_and_switches_language(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    # given a student with 88.50 cash and 20.00 subsidy
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S100", cash=8850, subsidy=2000, name="李雷")
    await make_user(conn, "S100", "cardholder", school.id, person_id=person)
    page = await browser.new_page()
    # when they sign in (the Chinese browser gets the Chinese page)
    await page.goto(f"{live_url}/login")
    await expect(page.locator("h1")).to_have_text("登录")
    await shot(page, "login-zh")
    await sign_in(page, live_url, "S100", school.code, PASSWORD)
    # then the phone home shows the balance by purse
    await expect(page.get_by_test_id("balance-total")).to_have_text("¥108.50")
    await expect(page.get_by_test_id("purse-cash")).to_have_text("¥88.50")
    await expect(page.get_by_test_id("purse-subsidy")).to_have_text("¥20.00")
    await expect(page.get_by_test_id("menu")).to_contain_text("交易明细")
    await shot(page, "student-home-zh")
    # when they switch to English, the same page comes back in English
    await page.click("text=English")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.get_by_test_id("menu")).to_contain_text("Transactions")
    # and money as English writes the yuan (CLDR: CN¥, the Chinese page's ¥ being the yen's too)
    await expect(page.get_by_test_id("purse-cash")).to_have_text("CN¥88.50")
    await shot(page, "student-home-en")
    # the statement page with its chart
    await page.click("[data-menu='m.transactions']")
    await expect(page.locator("svg.chart")).to_be_visible()
    await shot(page, "student-transactions")
    # and back to Chinese
    await page.click("text=中文")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    # sign out: the protected page sends them to sign in
    await page.click("text=退出登录")
    await expect(page.locator("h1")).to_have_text("登录")
    await page.goto(f"{live_url}/m/")
    await expect(page).to_have_url(f"{live_url}/login?next=%2Fm%2F")


async def test_admin_uses_the_console_by_keyboard(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_student(conn, school.id, "S200", name="韩梅梅")
    await make_user(conn, "ops", "school_admin", school.id)
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1280, "height": 900})
    # sign in with the keyboard only
    await page.goto(f"{live_url}/login")
    await page.keyboard.press("Tab")  # skip link
    await page.focus("input[name=school]")
    await page.keyboard.type(school.code)
    await page.keyboard.press("Tab")
    await page.keyboard.type("ops")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("today-total")).to_have_text("¥0.00")
    await expect(page.get_by_test_id("menu")).not_to_contain_text("交易明细")
    await shot(page, "admin-dashboard")
    # search people and open one
    await page.click("[data-menu='a.people']")
    await page.fill("input[name=q]", "韩")
    await page.keyboard.press("Enter")
    await page.click("text=S200")
    await expect(page.locator("h1")).to_contain_text("韩梅梅")
    await page.fill("input[name=phone]", "13800001111")
    await page.click("button.primary")
    await expect(page.locator("p.notice")).to_be_visible()
    await shot(page, "admin-person")
    assert await conn.fetchval("SELECT phone FROM persons WHERE number = 'S200'") == "13800001111"
