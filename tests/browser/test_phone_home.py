"""The phone home a student opens every day (issue 21, finding 13): today's and this month's
spending, a 7/30-day chart, quick top-up amounts, tiles with icons, and the statement grouped
by day with merchant names — at 360 px, one-handed."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_school, make_student, make_user
from tests.support_settlement import advance_day, make_merchant, make_terminal, pay

pytestmark = pytest.mark.browser


async def test_the_phone_home_shows_spending_quick_amounts_and_days(
    browser: BrowserContext, conn: asyncpg.Connection[Any], live_url: str
) -> None:
    # given a student who had lunch yesterday, and breakfast and a notebook today
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S001", name="韩梅梅", cash=50_000)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    canteen = await make_merchant(conn, school.id, "一食堂")
    shop = await make_merchant(conn, school.id, "教育超市", channel="supermarket")
    till = await make_terminal(conn, school.id, canteen, "POS-H1")
    shop_till = await make_terminal(conn, school.id, shop, "POS-H2")
    await pay(conn, school.id, canteen, till, person, 1_250)
    await advance_day(conn, school.id)
    await pay(conn, school.id, canteen, till, person, 450)
    await pay(conn, school.id, shop, shop_till, person, 800)

    page = await browser.new_page()
    await page.set_viewport_size({"width": 360, "height": 780})
    await sign_in(page, live_url, "S001", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/")

    # then today's and this month's spending are next to the balance
    await expect(page.get_by_test_id("spent-today")).to_have_text("¥12.50")
    month = "¥25.00" if await _same_month(conn, school.id) else "¥12.50"
    await expect(page.get_by_test_id("spent-month")).to_have_text(month)
    # the chart has a bar per day, 7 by default and 30 on request
    assert await page.locator("[data-testid=spending-chart] rect").count() == 7
    await page.get_by_test_id("days-30").click()
    await expect(page.get_by_test_id("days-30")).to_have_attribute("aria-current", "true")
    assert await page.locator("[data-testid=spending-chart] rect").count() == 30
    # the statement is grouped by day, newest first, with the merchants' names
    days = page.get_by_test_id("tx-day")
    await expect(days).to_have_text(["今天", "昨天"])
    rows = page.locator("[data-testid=tx-rows] li")
    await expect(rows.first).to_contain_text("教育超市")
    await expect(rows.first).to_contain_text("消费")
    await expect(rows.nth(2)).to_contain_text("一食堂")
    # tiles carry an icon, and nothing is wider than the phone
    assert await page.locator(".tile svg.icon").count() >= 4
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360
    await shot(page, "phone-home-zh")

    # when a quick amount is tapped, the top-up page opens with it filled in
    await page.get_by_test_id("quick-50").click()
    await page.wait_for_url("**/m/topup?amount=50")
    await expect(page.get_by_test_id("topup-amount")).to_have_value("50")
    await expect(page.get_by_test_id("chip-50")).to_have_class("chip on")

    # and the transactions page groups the same way
    await page.goto(f"{live_url}/m/transactions")
    await expect(page.get_by_test_id("tx-day")).to_have_text(["今天", "昨天"])


async def test_the_phone_home_refuses_a_chart_span_it_does_not_draw(
    browser: BrowserContext, conn: asyncpg.Connection[Any], live_url: str
) -> None:
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S002", name="李雷")
    await make_user(conn, "S002", "cardholder", school.id, person_id=person)
    page = await browser.new_page()
    await page.set_viewport_size({"width": 360, "height": 780})
    await sign_in(page, live_url, "S002", school.code, PASSWORD)
    answer = await page.goto(f"{live_url}/m/?days=365")
    assert answer is not None and answer.status == 422
    await expect(page.locator("body")).to_contain_text("「图表天数」填写有误")
    # and a fresh student's home says there is nothing yet instead of an empty chart frame
    await page.goto(f"{live_url}/m/")
    await expect(page.get_by_test_id("spent-today")).to_have_text("¥0.00")
    await expect(page.locator("[data-testid=spending-chart] svg")).to_have_count(1)


async def _same_month(conn: asyncpg.Connection[Any], school_id: int) -> bool:
    same: bool = await conn.fetchval(
        """SELECT date_trunc('month', cc_business_date($1))
                  = date_trunc('month', cc_business_date($1) - 1)""",
        school_id,
    )
    return same
