"""Four eyes on money in a real browser: a cashier grants a subsidy at the counter, it waits;
the cashier cannot approve it; a supervisor approves it on the approvals page and only then is
the money on the card. In Chinese, then the page in English."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_school, make_student, make_user

pytestmark = pytest.mark.browser


async def _subsidy(conn: asyncpg.Connection[Any], number: str) -> int:
    value: int = await conn.fetchval(
        "SELECT a.balance FROM accounts a JOIN persons p ON p.id = a.person_id "
        "WHERE p.number = $1 AND a.purse = 'subsidy'",
        number,
    )
    return value


async def test_a_counter_grant_waits_for_a_second_person(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    # given: a cashier and a supervisor of the settlement center, and a student
    school = await make_school(conn)
    await make_student(conn, school.id, "S300", name="李雷")
    await make_user(conn, "cashier", "settlement", school.id)
    await make_user(conn, "supervisor", "settlement", school.id)
    cashier = await browser.new_page()
    await cashier.set_viewport_size({"width": 1280, "height": 900})
    await sign_in(cashier, live_url, "cashier", school.code, PASSWORD)
    # when: the cashier opens the drawer (the last close's float) and grants 80.00 of subsidy
    await cashier.goto(f"{live_url}/admin/s/{school.code}/counter")
    await cashier.click("[data-testid=open-drawer]")
    await cashier.select_option("[data-testid=op-kind]", "subsidy_grant")
    await cashier.fill("[data-testid=op-number]", "S300")
    await cashier.fill("[data-testid=op-amount]", "80.00")
    await cashier.fill("input[name=memo]", "困难补助")
    await cashier.click("[data-testid=op-submit]")
    # then: it waits for a second person; nothing is on the card yet
    await expect(cashier.get_by_test_id("result")).to_contain_text("等待第二人复核")
    assert await _subsidy(conn, "S300") == 0
    # the cashier sees it on the approvals page but cannot approve it
    await cashier.click("[data-menu='a.approvals']")
    row = cashier.locator("[data-testid=approvals] tbody tr").first
    await expect(row).to_contain_text("柜台业务")
    await expect(row).to_contain_text("¥80.00")
    await expect(row).to_contain_text("本人提议")
    await expect(row.locator("button")).to_have_count(0)
    await shot(cashier, "approvals-own")
    # when: the supervisor signs in and approves it
    supervisor = await browser.new_page()
    await supervisor.set_viewport_size({"width": 1280, "height": 900})
    await supervisor.context.clear_cookies()
    await sign_in(supervisor, live_url, "supervisor", school.code, PASSWORD)
    await supervisor.goto(f"{live_url}/admin/s/{school.code}/approvals")
    approval_id = await conn.fetchval("SELECT id FROM approvals WHERE status = 'pending'")
    await supervisor.click(f"[data-testid=approve-{approval_id}]")
    # then: the money is on the card, and the decision is listed
    await expect(supervisor.get_by_test_id("no-approvals")).to_be_visible()
    await expect(supervisor.get_by_test_id(f"recent-status-{approval_id}")).to_have_text("已通过")
    assert await _subsidy(conn, "S300") == 8_000
    await shot(supervisor, "approvals-approved")
    # and the page speaks English too
    await supervisor.goto(f"{live_url}/lang/en?next=/admin/s/{school.code}/approvals")
    await expect(supervisor.get_by_test_id(f"recent-status-{approval_id}")).to_have_text("Approved")
    await expect(supervisor.locator("h1")).to_have_text("Approvals")
