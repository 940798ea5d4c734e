"""Bills on the phone: the student pays part of a bill from the card and prints the receipt; a
parent pays the rest online through the provider's cashier page."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_user
from tests.support_bills import bill_of, bills_world, tuition_and_dorm
from tests.support_moneyflows import provider_world

pytestmark = pytest.mark.browser


async def test_a_student_pays_part_from_the_card_and_a_parent_pays_the_rest_online(
    browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a student with 3,000 yuan on the card and a 6,200-yuan bill, and a linked parent
    w = await bills_world(conn, students=1, cash=300_000)
    student = w.students[0]
    await make_user(conn, "S001", "cardholder", w.school_id, person_id=student)
    parent = await make_user(conn, "mum", "guardian", w.school_id)
    await conn.execute(
        "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
        parent,
        student,
        w.school_id,
    )
    await tuition_and_dorm(conn, w, due=date(2099, 9, 1))
    bill_id = await bill_of(conn, w.school_id, student)

    with provider_world(settings) as (_, _, base):
        page = await browser.new_page()
        await sign_in(page, base, "S001", w.code, PASSWORD)
        # the student finds the bill from the phone's menu, with the transfer reference
        await page.goto(f"{base}/m/")
        await page.click("a.tile[href='/m/bills']")
        await expect(page.get_by_test_id("bills-owed")).to_have_text("¥6200.00")
        await expect(page.get_by_test_id("payment-reference")).to_contain_text("JF")
        await page.click(f"[data-testid=bill-{bill_id}] a")
        await expect(page.get_by_test_id("bill-lines")).to_contain_text("学费")
        await expect(page.get_by_test_id("bill-lines")).to_contain_text("住宿费")
        # more than the bill asks for is refused in words, with nothing taken
        await page.fill("[data-testid=pay-card-amount]", "9000")
        await page.click("[data-testid=pay-card]")
        await expect(page.get_by_test_id("error")).to_contain_text("超过了账单待缴")
        await expect(page.get_by_test_id("bill-owed")).to_have_text("¥6200.00")
        # a part of it from the card
        await page.fill("[data-testid=pay-card-amount]", "1000.00")
        await page.click("[data-testid=pay-card]")
        await expect(page.get_by_test_id("paid-notice")).to_be_visible()
        await expect(page.get_by_test_id("bill-owed")).to_have_text("¥5200.00")
        await expect(page.get_by_test_id("bill-payments")).to_contain_text("校园卡")
        # its numbered receipt prints on its own
        await page.click("[data-testid=paid-receipt]")
        await expect(page.get_by_test_id("receipt-no")).to_have_text(f"{w.code}-" + "2026-000001")
        await expect(page.get_by_test_id("receipt-total")).to_have_text("¥1000.00")
        await expect(page.get_by_test_id("receipt-lines")).to_contain_text("学费")
        await page.emulate_media(media="print")
        await expect(page.get_by_test_id("menu")).to_be_hidden()
        await expect(page.get_by_test_id("print")).to_be_hidden()
        await shot(page, "bills-receipt-print")
        await page.emulate_media(media="screen")

        # the parent sees the child's bill, offered online payment only
        await page.context.clear_cookies()
        await sign_in(page, base, "mum", w.code, PASSWORD)
        await page.goto(f"{base}/m/bills")
        await expect(page.get_by_test_id("bills-owed")).to_have_text("¥5200.00")
        await page.click(f"[data-testid=bill-{bill_id}] a")
        assert await page.get_by_test_id("pay-card").count() == 0
        await expect(page.get_by_test_id("pay-online-amount")).to_have_value("5200.00")
        await shot(page, "bills-parent-bill")
        await page.click("[data-testid=pay-online]")
        await page.wait_for_url("**/pay/page/**", timeout=10_000)
        await page.get_by_role("button", name="确认支付 Pay").click()
        # once the provider's notice is in, the bill is paid, and the parent is the payer
        for _ in range(100):
            await page.goto(f"{base}/m/bills/{bill_id}")
            if await page.get_by_test_id("bill-owed").text_content() == "¥0.00":
                break
            await page.wait_for_timeout(100)
        await expect(page.get_by_test_id("bill-status")).to_contain_text("已缴清")
        await expect(page.get_by_test_id("bill-payments")).to_contain_text("mum")
        assert await page.get_by_test_id("pay-online").count() == 0
        await shot(page, "bills-paid-by-parent")
