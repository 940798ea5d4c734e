"""Payroll in the finance console: a sheet with bad rows is refused whole and every row is
named in the page's language; the corrected sheet becomes a batch its uploader cannot approve;
a second person approves it, the report shows every line paid and exports it; the staff member
finds the salary in their history and their notices."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.issuing.import_rules import build_frame
from campuscard.payroll import batches
from campuscard.people import directory
from campuscard.platform import auth, four_eyes
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, ROOT, make_school, make_student, make_user
from tests.support_moneyflows import PAN, balances, bank_world, bind_bank_card

pytestmark = pytest.mark.browser

HEAD = "工号,姓名,实发金额,发放方式,备注\n"


async def test_finance_uploads_a_payroll_a_colleague_approves_it_and_staff_are_paid(
    browser: BrowserContext, conn: asyncpg.Connection[Any], live_url: str
) -> None:
    # given: two staff members, a student, and two finance operators
    school = await make_school(conn)
    staff = []
    for number, name in (("T1", "王老师"), ("T2", "李老师")):
        person = await directory.create_person(
            conn,
            ROOT,
            school.id,
            directory.PersonData(kind="staff", number=number, name=name),
            open_account=True,
        )
        staff.append(person)
    await make_student(conn, school.id, "S1")
    await make_user(conn, "finance1", "settlement", school.id)
    await make_user(conn, "finance2", "settlement", school.id)
    await make_user(conn, "T1", "cardholder", school.id, person_id=staff[0])
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, live_url, "finance1", school.code, PASSWORD)
    await page.click("[data-menu='a.payroll']")
    await page.get_by_test_id("payroll-period").fill("2026-11")

    # when: a sheet with a student, an unknown number and a wrong total is sent
    bad = HEAD + "T1,王老师,5000.00,校园卡,\nS1,,100.00,,\nT9,,100.00,,\n合计,,5000.00,,\n"
    await page.get_by_test_id("payroll-file").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}]
    )
    await page.get_by_test_id("payroll-send").click()
    # then: refused whole, every bad row named in Chinese
    result = page.get_by_test_id("payroll-result")
    await expect(result).to_contain_text("工资表有错误，未接收任何一行")
    await expect(result).to_contain_text("第 3 行 · 工号 · S1 不是教职工")
    await expect(result).to_contain_text("第 4 行 · 工号 · 本校没有工号为 T9 的教职工")
    assert not re.search(r"[A-Za-z]{3,}", await result.inner_text())
    await shot(page, "payroll-refused")

    # when: the corrected sheet is sent, it becomes a batch waiting for a second person
    good = HEAD + "T1,王老师,5000.00,校园卡,十一月\nT2,李老师,4200.50,,\n合计,,9200.50,,\n"
    await page.get_by_test_id("payroll-file").set_input_files(
        files=[{"name": "11月工资.csv", "mimeType": "text/csv", "buffer": good.encode()}]
    )
    await page.get_by_test_id("payroll-send").click()
    await expect(page.get_by_test_id("batch-state")).to_have_text("待复核")
    await expect(page.get_by_test_id("own-batch")).to_be_visible()
    await expect(page.get_by_test_id("approve")).to_have_count(0)
    batch_url = page.url

    # when: a second person signs in and approves it
    await page.context.clear_cookies()
    await sign_in(page, live_url, "finance2", school.code, PASSWORD)
    await page.goto(batch_url)
    await page.get_by_test_id("approve").click()
    # then: every line is paid, and the report says so and exports it
    await expect(page.get_by_test_id("batch-state")).to_have_text("已全部发放")
    await expect(page.get_by_test_id("sum-paid")).to_contain_text("¥9,200.50")
    await expect(page.get_by_test_id("line-state-2")).to_have_text("已发放")
    await shot(page, "payroll-report")
    csv = await page.request.get(batch_url + "/export.csv")
    text = await csv.text()
    assert csv.ok and "王老师" in text and "5000.00" in text and "已发放" in text
    xlsx = await page.request.get(batch_url + "/export.xlsx")
    assert xlsx.ok and (await xlsx.body())[:2] == b"PK"
    # the report in English: no Chinese but the sheet's own names and memo
    await page.goto(f"{live_url}/lang/en?next={batch_url.removeprefix(live_url)}")
    await expect(page.get_by_test_id("batch-state")).to_have_text("All paid")
    await expect(page.get_by_test_id("sum-paid")).to_contain_text("CN¥9,200.50")
    text = await page.locator("main").inner_text()
    for typed in ("王老师", "李老师", "十一月", "11月工资", "中文"):
        text = text.replace(typed, "")
    assert not re.search(r"[\u4e00-\u9fff]", text), text
    await page.goto(f"{live_url}/lang/zh-CN?next=/")

    # and the staff member sees the salary in their history, labelled, and was told
    await page.context.clear_cookies()
    await sign_in(page, live_url, "T1", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/transactions")
    await expect(page.locator("main")).to_contain_text("工资")
    await expect(page.locator("main")).to_contain_text("¥5,000.00")
    await page.goto(f"{live_url}/m/notifications")
    await expect(page.locator("main")).to_contain_text("工资已发放")


async def test_finance_pays_a_line_the_bank_refused_again_to_the_campus_card(
    browser: BrowserContext, pool: PgPool, settings: Settings, live_url: str
) -> None:
    # given: an approved batch whose one bank line the bank refused (above its limit)
    with bank_world(settings) as (wired, sim):
        async with pool.acquire() as conn:
            school = await make_school(conn)
            staff = await directory.create_person(
                conn,
                ROOT,
                school.id,
                directory.PersonData(kind="staff", number="T1", name="王老师"),
                open_account=True,
            )
            uploader = await auth.load_actor(
                conn, await make_user(conn, "finance1", "settlement", school.id)
            )
            approver = await auth.load_actor(
                conn, await make_user(conn, "finance2", "settlement", school.id)
            )
        await bind_bank_card(pool, wired, sim, staff, "王老师", pan=PAN)
        upload = await batches.do_upload_sheet(
            pool,
            uploader,
            school.id,
            period="2026-11",
            frame=build_frame((HEAD + "T1,王老师,3000.00,银行卡,\n合计,,3000.00,,\n").encode()),
            filename="11月工资.csv",
        )
        await four_eyes.do_decide(pool, approver, school.id, upload.approval_id, approve=True)
        sim.limit = 100_000
        assert await batches.send_batch(pool, wired, school.id, upload.batch_id) == 1
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, live_url, "finance1", school.code, PASSWORD)
    await page.goto(f"{live_url}/admin/s/{school.code}/payroll/{upload.batch_id}")
    # then: the report says a line failed, with the bank's answer, and offers to pay it again
    await expect(page.get_by_test_id("batch-state")).to_have_text("已发放，部分未成功")
    await expect(page.get_by_test_id("line-state-2")).to_contain_text("未成功")
    await expect(page.get_by_test_id("line-reason-2")).to_have_text("超出银行单笔金额限制")
    # when: finance pays it again to the campus card
    await page.get_by_test_id("repay-route-2").select_option("campus")
    await page.get_by_test_id("repay-2").click()
    # then: the line is paid, its failed payout stays in the report, the money is on the card
    await expect(page.get_by_test_id("batch-state")).to_have_text("已全部发放")
    await expect(page.get_by_test_id("line-state-2")).to_contain_text("已发放")
    await expect(page.get_by_test_id("line-repaid-2")).to_contain_text("finance1")
    await expect(page.get_by_test_id("line-repaid-2")).to_contain_text("改发至校园卡")
    await expect(page.get_by_test_id("repay-2")).to_have_count(0)
    await shot(page, "payroll-repaid")
    assert (await balances(pool, staff))["cash"] == 300_000
    # and in English, nothing left in Chinese but the sheet's own names
    url = page.url.removeprefix(live_url)
    await page.goto(f"{live_url}/lang/en?next={url}")
    await expect(page.get_by_test_id("line-repaid-2")).to_contain_text("paid again by")
    text = (await page.locator("main").inner_text()).replace("王老师", "").replace("11月工资", "")
    assert not re.search(r"[\u4e00-\u9fff]", text), text
    await page.goto(f"{live_url}/lang/zh-CN?next=/")
