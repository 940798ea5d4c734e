"""Bills on the phone: the student pays part of a bill from the card and prints the receipt; a
parent pays the rest online through the provider's cashier page. Dorm utilities on the phone:
the meter, a top-up whose answer the vendor loses charged exactly once, the automatic top-up."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.app import create_app, mount_simulators
from campuscard.bills import utilities
from campuscard.config import Settings
from campuscard.db.embedded import free_port
from tests.browser.conftest import shot, sign_in
from tests.servers import serve_in_thread
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
        await expect(page.get_by_test_id("bills-owed")).to_have_text("¥6,200.00")
        await expect(page.get_by_test_id("payment-reference")).to_contain_text("JF")
        await page.click(f"[data-testid=bill-{bill_id}] a")
        await expect(page.get_by_test_id("bill-lines")).to_contain_text("学费")
        await expect(page.get_by_test_id("bill-lines")).to_contain_text("住宿费")
        # more than the bill asks for is refused in words, with nothing taken
        await page.fill("[data-testid=pay-card-amount]", "9000")
        await page.click("[data-testid=pay-card]")
        await expect(page.get_by_test_id("error")).to_contain_text("超过了账单待缴")
        await expect(page.get_by_test_id("bill-owed")).to_have_text("¥6,200.00")
        # a part of it from the card
        await page.fill("[data-testid=pay-card-amount]", "1000.00")
        await page.click("[data-testid=pay-card]")
        await expect(page.get_by_test_id("paid-notice")).to_be_visible()
        await expect(page.get_by_test_id("bill-owed")).to_have_text("¥5,200.00")
        await expect(page.get_by_test_id("bill-payments")).to_contain_text("校园卡")
        # its numbered receipt prints on its own
        await page.click("[data-testid=paid-receipt]")
        await expect(page.get_by_test_id("receipt-no")).to_have_text(f"{w.code}-" + "2026-000001")
        await expect(page.get_by_test_id("receipt-total")).to_have_text("¥1,000.00")
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
        await expect(page.get_by_test_id("bills-owed")).to_have_text("¥5,200.00")
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


async def test_a_student_tops_up_the_dorm_meter_once_though_the_vendor_loses_an_answer(
    browser: BrowserContext, pool: asyncpg.Pool[Any], settings: Settings
) -> None:
    # given a student of room 101 with an electricity meter at the vendor (its simulator)
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=1, cash=20_000)
        student = w.students[0]
        await make_user(conn, "S001", "cardholder", w.school_id, person_id=student)
    await utilities.do_add_meter(
        pool,
        w.finance,
        w.school_id,
        meter_no="E3101",
        kind="electricity",
        dorm="东区3栋",
        room="101",
        residents=["S001"],
    )
    port = free_port()
    wired = settings.model_copy(
        update={"public_url": f"http://127.0.0.1:{port}", "utility_retry_seconds": 0}
    )
    app = mount_simulators(create_app(wired), wired)
    with serve_in_thread(app, port=port) as base:
        page = await browser.new_page()
        await sign_in(page, base, "S001", w.code, PASSWORD)
        await page.goto(f"{base}/m/")
        await page.click("a.tile[href='/m/utilities']")
        meter = page.get_by_test_id("meter-electricity")
        balance = _yuan(await meter.get_by_test_id("meter-balance").text_content())
        # a top-up the vendor answers goes on the meter at once
        await meter.get_by_test_id("meter-topup-amount").fill("50")
        await meter.get_by_test_id("meter-topup").click()
        await expect(page.get_by_test_id("notice")).to_contain_text("已到表")
        after = _yuan(await meter.get_by_test_id("meter-balance").text_content())
        assert after == balance + 5_000
        # the vendor applies the next one but its answer is lost: the money waits on hold
        app.state.utility_simulator.lose_next = 1
        await meter.get_by_test_id("meter-topup-amount").fill("20")
        await meter.get_by_test_id("meter-topup").click()
        await expect(page.get_by_test_id("notice")).to_contain_text("不会重复")
        await expect(page.get_by_test_id("meter-topups")).to_contain_text("处理中")
        assert await _cash(pool, student) == (15_000, 2_000)
        # the resolver asks again by the same request id: applied once, charged once
        assert await utilities.resolve_pending(pool, wired) == 1
        assert await utilities.resolve_pending(pool, wired) == 0
        assert await _cash(pool, student) == (13_000, 0)
        await page.goto(f"{base}/m/utilities")
        await expect(page.get_by_test_id("meter-topups")).not_to_contain_text("处理中")
        again = _yuan(await meter.get_by_test_id("meter-balance").text_content())
        assert again == after + 2_000
        await expect(meter.get_by_test_id("meter-month")).to_contain_text("充值 2 笔共 ¥70.00")
        # the automatic top-up below a threshold
        await meter.locator("summary").click()
        await meter.get_by_test_id("meter-auto-below").fill("15")
        await meter.get_by_test_id("meter-auto-amount").fill("30")
        await meter.get_by_test_id("meter-auto-save").click()
        await expect(meter.get_by_test_id("meter-auto")).to_have_text("低于 ¥15.00 时充 ¥30.00")
        await shot(page, "bills-utilities")


def _yuan(text: str | None) -> int:
    assert text is not None
    whole, _, fen = text.strip().lstrip("¥").replace(",", "").partition(".")
    return int(whole) * 100 + int(fen or 0)


async def _cash(pool: asyncpg.Pool[Any], person_id: int) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT balance, held FROM accounts WHERE person_id = $1 AND purse = 'cash'", person_id
    )
    assert row is not None
    return row["balance"], row["held"]
