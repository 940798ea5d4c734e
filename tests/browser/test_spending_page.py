"""Monthly analysis on the phone: a student whose canteen spending was 300.00 a month for three
months and is 400.00 already this month sees income against spending by month, this month by
category against the usual month, and that the month runs ahead; they switch the pace reminder
on and are reminded once."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.db.pool import Conn, PgPool
from campuscard.ledger import postings
from campuscard.spending import jobs, rules
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, fund, make_school, make_student, make_user
from tests.support_payments import make_merchant

pytestmark = pytest.mark.browser


def _months_back(today: date, n: int) -> date:
    y, m = today.year, today.month - n
    while m < 1:
        y, m = y - 1, m + 12
    return date(y, m, 15)


async def _spend(conn: Conn, school: int, purse: int, shop: int, fen: int, at: datetime) -> None:
    async with conn.transaction():
        await conn.execute("SELECT set_config('campuscard.book_at', $1, true)", at.isoformat())
        await postings.post(
            conn, school_id=school, kind="payment", legs=postings.legs_move(purse, shop, fen)
        )


async def test_the_student_sees_the_months_and_turns_the_pace_reminder_on(
    live_url: str, browser: BrowserContext, pool: PgPool, conn: Conn
) -> None:
    school = await make_school(conn)
    merchant, _ = await make_merchant(conn, school.id)
    shop = await conn.fetchval(
        "SELECT id FROM accounts WHERE merchant_id = $1 ORDER BY id LIMIT 1", merchant
    )
    person = await make_student(conn, school.id, "S001")
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    tz = ZoneInfo("Asia/Shanghai")
    today = await conn.fetchval("SELECT cc_business_date($1)", school.id)
    purse = (await postings.open_purses(conn, school.id, person))["cash"]
    await fund(conn, school.id, person, cash=200_000)
    for n in (3, 2, 1):
        day = _months_back(today, n)
        await _spend(conn, school.id, purse, shop, 30_000, datetime.combine(day, time(12), tz))
    now = datetime.now(tz) - timedelta(minutes=1)
    await _spend(conn, school.id, purse, shop, 40_000, now)

    page = await browser.new_page()
    await sign_in(page, live_url, "S001", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/analysis")
    await expect(page.get_by_test_id("pace-spent")).to_have_text("¥400.00")
    await expect(page.get_by_test_id("pace-verdict")).to_have_text("本月消费比往月同期偏快。")
    await expect(page.get_by_test_id("cat-canteen")).to_have_text("¥400.00")
    await expect(page.get_by_test_id("months")).to_contain_text("300.00")
    await shot(page, "student-monthly-analysis")
    await page.get_by_test_id("reminder-box").check()
    await page.click("[data-testid=reminder-form] button[type=submit]")
    await expect(page.get_by_test_id("reminder-saved")).to_be_visible()
    await expect(page.get_by_test_id("reminder-box")).to_be_checked()
    # the reminder goes out once this month (from the month's 5th)
    expected = 1 if today.day >= rules.FIRST_DAY else 0
    assert await jobs.run_pace_reminders(pool) == expected
    assert await jobs.run_pace_reminders(pool) == 0
    kinds = await conn.fetch("SELECT kind FROM notifications WHERE person_id = $1", person)
    assert [k["kind"] for k in kinds].count("spending_pace") == expected
