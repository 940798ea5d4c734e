"""Quiet help in a real browser: a settlement officer records a student living off campus,
finds last month's candidates by the school's preset (reasons and what would change the
outcome on each), and proposes help; nothing is paid until a second officer approves the batch
on the subsidies page. Classes too small are not counted; the page speaks English too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from campuscard.monitoring import school_rules
from campuscard.platform.actors import Actor, Grant
from tests.browser.conftest import sign_in
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant, pay, set_pin

pytestmark = pytest.mark.browser
PIN = "135790"


async def _month_of_cheap_meals(
    conn: asyncpg.Connection[Any], client: httpx.AsyncClient, till: Any, card: Any, month: Any
) -> None:
    """One real 3.50 canteen payment, then its copies at lunch and dinner on 30 days of the
    month (60 meals, 210.00 yuan): the month as the preset reads it."""
    r = await pay(client, till, card, "3.50", pin=PIN)
    assert r.status_code == 200, r.text
    original = await conn.fetchval("SELECT max(id) FROM payments")
    await conn.execute(
        "UPDATE payments SET business_date = $2, created_at = $2::date + interval '4 hours' "
        "WHERE id = $1",
        original,
        month,
    )
    await conn.execute(
        """INSERT INTO payments(school_id, terminal_id, client_id, merchant_id, outlet_id, channel,
                                method, person_id, card_id, amount, from_cash, from_subsidy,
                                merchant_account_id, tx_id, business_date, created_at)
           SELECT school_id, terminal_id, client_id || '-' || g, merchant_id, outlet_id, channel,
                  method, person_id, card_id, amount, from_cash, from_subsidy,
                  merchant_account_id, tx_id, $2::date + (g / 2),
                  $2::date + (g / 2) + make_interval(hours => 4 + 6 * (g % 2))
             FROM payments p, generate_series(1, 59) g WHERE p.id = $1""",
        original,
        month,
    )


async def test_quiet_help_is_proposed_by_one_officer_and_approved_by_another(
    live_url: str,
    browser: BrowserContext,
    conn: asyncpg.Connection[Any],
    settings: Settings,
    client: httpx.AsyncClient,
) -> None:
    # given: two students who ate 60 cheap canteen meals last month; one lives off campus
    school = await make_school(conn)
    sid = school.id
    canteen, window = await make_merchant(conn, sid)
    till = await make_device(conn, settings, sid, canteen, "POS-H1", outlet_id=window)
    today = await conn.fetchval("SELECT cc_business_date($1)", sid)
    month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    for number in ("H1", "H2"):
        person, card = await make_cardholder(conn, sid, number, cash=50_000)
        await set_pin(conn, settings, person, PIN)
        await _month_of_cheap_meals(conn, client, till, card, month)
    await make_user(conn, "maker", "settlement", sid)
    await make_user(conn, "checker", "settlement", sid)
    admin = Actor("admin", school_id=sid, grants=frozenset({Grant("school_admin", sid)}))
    await school_rules.do_set_rule(
        conn, admin, sid, "hardship", enabled=True, thresholds={"preset": "njust"}
    )
    maker = await browser.new_page()
    await maker.set_viewport_size({"width": 1280, "height": 900})
    await sign_in(maker, live_url, "maker", school.code, PASSWORD)
    await maker.goto(f"{live_url}/admin/s/{school.code}/hardship")
    await expect(maker.get_by_test_id("hs-method")).to_contain_text("暖心饭卡")
    # when: the officer records H2 living off campus and finds last month's candidates
    await maker.fill("[data-testid=hs-ex-number]", "H2")
    await maker.select_option("[data-testid=hs-ex-kind]", "off_campus")
    await maker.click("[data-testid=hs-ex-submit]")
    await maker.click("[data-testid=hs-find]")
    # then: H1 with the reasons and what would change; H2 is never a candidate
    row = maker.get_by_test_id("cand-H1")
    await expect(row).to_contain_text("本月食堂就餐 60 次")
    await expect(row).to_contain_text("本月食堂消费再多 ¥210.00 即不再列入")
    await expect(row).to_contain_text("¥200.00")
    await expect(maker.get_by_test_id("cand-H2")).to_have_count(0)
    await expect(maker.get_by_test_id("hs-groups")).to_contain_text("人数太少")
    # when: the officer proposes help for H1
    await maker.check("[data-testid=pick-H1]")
    await maker.click("[data-testid=hs-propose]")
    await expect(maker.get_by_test_id("proposed")).to_be_visible()
    await expect(maker.get_by_test_id("cand-status-H1")).to_have_text("已提议")
    # the report by class exports with counts only; the class is too small to report
    async with maker.expect_download() as info:
        await maker.click("[data-testid=hs-report-csv]")
    text = (await (await info.value).path()).read_text(encoding="utf-8-sig")
    assert "人数太少" in text and "H1" not in text and "200.00" not in text
    # then: nothing is paid; the proposer cannot approve the batch
    h1 = await conn.fetchval("SELECT id FROM persons WHERE number = 'H1'")
    subsidy = "SELECT balance FROM accounts WHERE person_id = $1 AND purse = 'subsidy'"
    assert await conn.fetchval(subsidy, h1) == 0
    batch = await conn.fetchval("SELECT id FROM subsidy_batches WHERE source = 'hardship'")
    await maker.goto(f"{live_url}/admin/s/{school.code}/subsidies")
    await expect(maker.get_by_test_id(f"approve-{batch}")).to_have_count(0)
    # when: a second officer approves it, the money reaches H1 under the neutral name
    checker = await browser.new_page()
    await checker.context.clear_cookies()
    await checker.set_viewport_size({"width": 1280, "height": 900})
    await sign_in(checker, live_url, "checker", school.code, PASSWORD)
    await checker.goto(f"{live_url}/admin/s/{school.code}/subsidies")
    await checker.click(f"[data-testid=approve-{batch}]")
    await expect(checker.get_by_test_id(f"approve-{batch}")).to_have_count(0)
    assert await conn.fetchval(subsidy, h1) == 20_000
    # and the review page speaks English
    await checker.goto(
        f"{live_url}/lang/en?next=/admin/s/{school.code}/hardship?month={month:%Y-%m}"
    )
    await expect(checker.locator("h1")).to_have_text("Quiet help")
    await expect(checker.get_by_test_id("cand-H1")).to_contain_text("60 canteen meals this month")
    await expect(checker.get_by_test_id("cand-status-H1")).to_have_text("Proposed")
