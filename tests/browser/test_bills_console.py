"""The finance console for bills: fee items with rates, the term's bills issued, a student's
bill waived in part (a second person approves), deferred through the green channel and split
into instalments; arrears by age and class, which a teacher sees too. A bill sheet refused
whole with every bad row listed, then applied; the day's receipts per item, exports and an
item's ledger."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.bills import billing, payments
from campuscard.ledger.money import Money
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_user
from tests.support_bills import TERM, bill_of, bills_world, holder_actor, tuition_and_dorm

pytestmark = pytest.mark.browser


async def test_finance_sets_up_a_term_and_handles_a_student_in_hardship(
    browser: BrowserContext, conn: asyncpg.Connection[Any], live_url: str
) -> None:
    # given two students of one class and dorm, two finance operators and the class's teacher
    w = await bills_world(conn, students=2)
    await make_user(conn, "teacher", "teacher", w.school_id)
    today = await conn.fetchval("SELECT cc_business_date($1)", w.school_id)
    due = (today - timedelta(days=40)).isoformat()
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, live_url, "fin-a-TST", w.code, PASSWORD)
    await page.click("[data-menu='a.bills']")

    # when the office adds tuition for everyone and accommodation by dorm building
    form = page.get_by_test_id("item-form")
    await form.get_by_test_id("item-term").fill(TERM)
    await form.get_by_test_id("item-name").fill("学费")
    await form.get_by_test_id("item-amount").fill("5000")
    await form.get_by_test_id("item-due").fill(due)
    await form.get_by_test_id("item-save").click()
    await expect(page.get_by_test_id("notice")).to_contain_text("收费项目已添加")
    form = page.get_by_test_id("item-form")
    await form.get_by_test_id("item-kind").select_option("accommodation")
    await form.get_by_test_id("item-name").fill("住宿费")
    await form.get_by_test_id("item-due").fill(due)
    await form.get_by_test_id("rate-scope-0").select_option("dorm")
    await form.get_by_test_id("rate-value-0").fill("东区3栋")
    await form.get_by_test_id("rate-amount-0").fill("1200")
    await form.get_by_test_id("item-save").click()
    # a rate for a class the school does not have is refused in words
    form = page.get_by_test_id("item-form")
    await form.get_by_test_id("item-name").fill("教材费")
    await form.get_by_test_id("item-due").fill(due)
    await form.get_by_test_id("rate-scope-0").select_option("class")
    await form.get_by_test_id("rate-value-0").fill("没有这个班")
    await form.get_by_test_id("rate-amount-0").fill("300")
    await form.get_by_test_id("item-save").click()
    await expect(page.get_by_test_id("error")).to_be_visible()
    assert "rates[0]" not in await page.get_by_test_id("error").inner_text()
    # and the term's bills are issued
    page.once("dialog", lambda d: d.accept())
    await page.get_by_test_id("issue-bills").click()
    await expect(page.get_by_test_id("notice")).to_contain_text("新账单 2 张")
    items = page.get_by_test_id("fee-items")
    await expect(items).to_contain_text("¥10,000.00")  # tuition billed to two
    await expect(items).to_contain_text("¥2,400.00")  # accommodation billed to two
    await shot(page, "bills-console-items")

    # then the bills list shows both overdue; one student's bill is opened
    await page.click("[data-testid=bills-nav] >> text=账单")
    rows = page.get_by_test_id("bill-row")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("已逾期 40 天")
    await rows.first.locator("a").click()
    await expect(page.get_by_test_id("bill-owed")).to_have_text("¥6,200.00")
    # a waiver of the accommodation is proposed, and waits for a second person
    await page.get_by_test_id("adjust-line").select_option(label="住宿费 · ¥1,200.00")
    await page.get_by_test_id("adjust-kind").select_option("waiver")
    await page.get_by_test_id("adjust-reason").fill("家庭经济困难，学院批准")
    await page.get_by_test_id("adjust-submit").click()
    await expect(page.get_by_test_id("notice")).to_contain_text("等待另一位")
    await expect(page.get_by_test_id("bill-owed")).to_have_text("¥6,200.00")
    # the green channel defers the rest; the plan splits it in three
    until = (today + timedelta(days=60)).isoformat()
    await page.get_by_test_id("defer-until").fill(until)
    await page.get_by_test_id("defer-reason").fill("绿色通道：先报到后缴费")
    await page.get_by_test_id("defer-submit").click()
    await expect(page.get_by_test_id("bill-deferred")).to_contain_text(until)
    await page.get_by_test_id("plan-first").fill(until)
    await page.get_by_test_id("plan-submit").click()
    await expect(page.get_by_test_id("bill-plan").locator("tbody tr")).to_have_count(3)
    bill_url = page.url
    await shot(page, "bills-console-bill")

    # the second operator approves the waiver: the bill asks for 5,000
    await page.context.clear_cookies()
    await sign_in(page, live_url, "fin-b-TST", w.code, PASSWORD)
    await page.goto(f"{live_url}/admin/s/{w.code}/approvals")
    await page.locator("[data-testid^=approve-]").first.click()
    await page.goto(bill_url)
    await expect(page.get_by_test_id("bill-owed")).to_have_text("¥5,000.00")
    await expect(page.get_by_test_id("bill-adjustments")).to_contain_text("减免")

    # arrears: one bill 31-60 days overdue, one deferred; the teacher sees them by class
    await page.context.clear_cookies()
    await sign_in(page, live_url, "teacher", w.code, PASSWORD)
    await page.click("[data-menu='a.arrears']")
    await expect(page.get_by_test_id("bucket-d31_60")).to_contain_text("¥6,200.00")
    await expect(page.get_by_test_id("arrears-classes")).to_contain_text("计算机2601")
    assert await page.get_by_test_id("bills-nav").count() == 0
    await shot(page, "bills-console-arrears-teacher")


async def test_finance_imports_a_bill_sheet_and_reads_the_books(
    browser: BrowserContext, pool: asyncpg.Pool[Any], live_url: str
) -> None:
    # given the term's tuition billed to two students, textbooks billed from sheets only, and
    # 1,000 yuan of tuition paid from the card today
    async with pool.acquire() as conn:
        w = await bills_world(conn, students=2, cash=200_000)
        today = await conn.fetchval("SELECT cc_business_date($1)", w.school_id)
        await tuition_and_dorm(conn, w, due=today + timedelta(days=30))
        await billing.do_create_item(
            conn,
            w.finance,
            w.school_id,
            term=TERM,
            kind="textbooks",
            name="教材费",
            amount=None,
            due_date=today + timedelta(days=30),
        )
        bill_id = await bill_of(conn, w.school_id, w.students[0])
    async with pool.acquire() as conn:
        uid = await make_user(conn, "S001", "cardholder", w.school_id, person_id=w.students[0])
    student = holder_actor(w.school_id, uid, w.students[0], "S001")
    paid = await payments.do_pay_from_card(
        pool, student, w.school_id, bill_id, amount=Money.parse("1000"), client_id="console-0001"
    )
    assert paid.status == 201
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, live_url, "fin-a-TST", w.code, PASSWORD)
    await page.goto(f"{live_url}/admin/s/{w.code}/bills/imports")

    # when a sheet with three bad rows is sent, it is refused whole and every bad row is listed
    bad = "学号,收费项目,金额\nS001,教材费,abc\nS999,教材费,100\nS002,没有的项目,50\n"
    await page.get_by_test_id("sheet-file").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}]
    )
    await page.get_by_test_id("sheet-send").click()
    result = page.get_by_test_id("sheet-result")
    await expect(result).to_contain_text("第 2 行 · 金额")
    await expect(result).to_contain_text("第 3 行 · 学号")
    await expect(result).to_contain_text("第 4 行 · 项目")
    # each reason in the page's language, without the server's English or an error code
    await expect(result).to_contain_text("表格有错误，一行也没有导入")
    await expect(result).to_contain_text("“abc”不是有效金额")
    await expect(result).to_contain_text("本校没有学号为 S999 的学生")
    await expect(result).to_contain_text("没有收费项目“没有的项目”")
    worded = re.sub(r"“[^”]*”", "", await result.inner_text())  # the sheet's own cells aside
    assert not re.search(r"[A-Za-z]{3,}", worded), worded
    await page.reload()
    await expect(page.get_by_test_id("sheet-imports")).to_contain_text("暂无")
    # then the good sheet is applied, and echoed for the uploader to compare
    good = "学号,收费项目,金额\nS001,教材费,180.50\nS002,教材费,200\n"
    await page.get_by_test_id("sheet-file").set_input_files(
        files=[{"name": "good.csv", "mimeType": "text/csv", "buffer": good.encode()}]
    )
    await page.get_by_test_id("sheet-send").click()
    await expect(result).to_contain_text("导入成功：2 行，新增收费 2 行")
    await page.reload()
    await expect(page.get_by_test_id("sheet-imports")).to_contain_text("good.csv")
    await page.goto(f"{live_url}/admin/s/{w.code}/bills?term={TERM}")
    await expect(page.get_by_test_id("fee-items")).to_contain_text("¥380.50")

    # the day's receipts per item: the card payment is internal, nothing waits for a statement
    await page.click("[data-testid=bills-nav] >> text=收费报表")
    daily = page.get_by_test_id("daily-items")
    await expect(daily).to_contain_text("学费")
    await expect(daily).to_contain_text("¥1,000.00")
    await expect(daily).to_contain_text("系统内")
    await shot(page, "bills-console-reports")
    csv = await page.request.get(f"{live_url}/admin/s/{w.code}/bills/export.csv?kind=daily")
    assert csv.ok and "学费" in await csv.text() and "1000.00" in await csv.text()
    xlsx = await page.request.get(f"{live_url}/admin/s/{w.code}/bills/export.xlsx?kind=items")
    assert xlsx.ok and (await xlsx.body())[:2] == b"PK"
    # the tuition's ledger shows the payment with its receipt
    await page.goto(f"{live_url}/admin/s/{w.code}/bills?term={TERM}")
    await page.get_by_test_id("fee-items").get_by_role("link", name="学费").click()
    await expect(page.get_by_test_id("item-ledger")).to_contain_text(paid.body["receipt_no"])
