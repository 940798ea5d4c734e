"""What a new user meets in the browser (issue 21): each finding as the person would see it,
in Chromium, with screenshots in test-artifacts/."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Request, expect

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.issuing import applications, production
from tests.browser.conftest import key_in, shot, sign_in
from tests.support import PASSWORD, ROOT, fund, make_school, make_student, make_user
from tests.support_issuing import card_center, make_campus, make_parent
from tests.support_moneyflows import provider_world
from tests.support_payments import make_cardholder, make_device, make_merchant, set_pin

pytestmark = pytest.mark.browser


async def _type_at_till(page: Page, amount: str, scan: str) -> None:
    await key_in(page, amount)
    await page.keyboard.type(scan)
    await page.keyboard.press("Enter")


async def test_1_online_top_up_goes_on_to_the_provider_page(
    browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a student signed in on the phone, with the provider simulator running
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S001", name="李雷")
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    with provider_world(settings) as (_, _, app_url):
        page = await browser.new_page()
        await sign_in(page, app_url, "S001", school.code, PASSWORD)
        await page.goto(f"{app_url}/m/topup")
        # when 去支付 is pressed
        await page.fill("[data-testid=topup-amount]", "20")
        await page.click("[data-testid=topup-pay]")
        # then the browser reaches the provider's cashier page (the CSP no longer blocks it)
        await page.wait_for_url("**/pay/page/**", timeout=10_000)
        await shot(page, "first-hour-1-provider-page")
    assert await conn.fetchval("SELECT count(*) FROM provider_orders") == 1


async def test_2_closing_today_without_early_explains_in_chinese_on_the_page(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "ops", "school_admin", school.id)
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, live_url, "ops", school.code, PASSWORD)
    await page.click("[data-menu='a.settlement']")
    # the form offers the last day that is over, and the checkbox is checkbox-sized
    today = await conn.fetchval("SELECT cc_business_date($1)::text", school.id)
    day = page.locator("[data-testid=close-form] input[name=day]")
    assert await day.input_value() < today
    box = await page.locator("input[name=early]").bounding_box()
    assert box is not None and box["width"] <= 24 and box["height"] <= 24
    # when the operator closes today (still open) without ticking 提前结账
    await day.fill(today)
    await page.click("[data-testid=close-form] button[type=submit]")
    # then the settlement page says why, in Chinese, with the menu, and no raw code
    error = page.get_by_test_id("settlement-error")
    await expect(error).to_contain_text("提前结账")
    await expect(page.get_by_test_id("menu")).to_be_visible()
    assert "DAY_NOT_OVER" not in await page.content()
    await expect(page.locator("input[name=day]")).to_have_value(today)
    await shot(page, "first-hour-2-close-day-zh")
    # and in English the same refusal reads in English
    await page.click("text=English")
    await page.goto(f"{live_url}/admin/s/{school.code}/settlement")
    await page.locator("[data-testid=close-form] input[name=day]").fill(today)
    await page.click("[data-testid=close-form] button[type=submit]")
    await expect(page.get_by_test_id("settlement-error")).to_contain_text("still open")
    await shot(page, "first-hour-2-close-day-en")


async def test_3_the_till_asks_for_a_pin_and_explains_refusals_in_chinese(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    person, card = await make_cardholder(conn, school.id, "S001", cash=20_000)
    await set_pin(conn, settings, person)
    await make_user(conn, "boss", "merchant_manager", school.id, merchant_id=merchant_id)
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1024, "height": 800})
    await sign_in(page, live_url, "boss", school.code, PASSWORD)
    await page.click("button.primary")  # bind this browser to the POS
    # a payment above the no-PIN limit: a PIN prompt, not a red failure
    await _type_at_till(page, "88", card["uid"])
    await expect(page.get_by_test_id("pos-pin-needed")).to_be_visible()
    await expect(page.locator(".result.bad")).to_have_count(0)
    await expect(page.locator("input[name=pin]")).to_be_visible()
    await shot(page, "first-hour-3-pin")
    await page.fill("input[name=pin]", "135790")
    await page.keyboard.press("Enter")
    await expect(page.locator(".result.ok")).to_contain_text("88.00")
    # the printed card number typed by hand: the till says to use the reader
    await _type_at_till(page, "1", card["number"])
    await expect(page.get_by_test_id("pos-error-code")).to_contain_text("卡面上印的卡号")
    # a replaced card: a Chinese reason, never a raw code
    await lifecycle.replace_card(
        conn, ROOT, card["id"], number="880000009999", uid="0BADCAFE", fee_source="cash_desk"
    )
    await _type_at_till(page, "1", card["uid"])
    await expect(page.get_by_test_id("pos-error-code")).to_contain_text("已补办新卡")
    result = page.get_by_test_id("pos-result")
    for raw in ("CARD_", "PIN_", "replaced"):
        await expect(result).not_to_contain_text(raw)
    await shot(page, "first-hour-3-replaced")


async def test_5_the_payment_code_page_opens_no_empty_live_stream(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    person, _ = await make_cardholder(conn, school.id, "S001", cash=1000)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    page = await browser.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if isinstance(r, Request) else None)
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if isinstance(m, ConsoleMessage) and m.type == "error" else None
        ),
    )
    await sign_in(page, live_url, "S001", school.code, PASSWORD)
    requests.clear()
    await page.goto(f"{live_url}/m/paycode")
    await expect(page.get_by_test_id("paycode")).to_be_visible()
    await page.wait_for_timeout(500)
    # the page is asked for once: an empty data-live no longer re-opens it as a stream
    assert [u for u in requests if u == f"{live_url}/m/paycode"] == [f"{live_url}/m/paycode"]
    assert not [e for e in errors if "EventSource" in e or "event-stream" in e], errors


async def test_6_the_pos_menu_marks_only_the_page_shown(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    merchant_id, outlet_id = await make_merchant(conn, school.id)
    await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    await make_user(conn, "boss", "merchant_manager", school.id, merchant_id=merchant_id)
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1024, "height": 800})
    await sign_in(page, live_url, "boss", school.code, PASSWORD)
    await page.click("button.primary")
    await expect(page.locator("[data-menu='p.till']")).to_have_attribute("aria-current", "page")
    await page.click("[data-menu='p.takings']")
    await expect(page.locator("[aria-current=page]")).to_have_count(1)
    await expect(page.locator("[data-menu='p.takings']")).to_have_attribute("aria-current", "page")
    await shot(page, "first-hour-6-pos-menu")


async def test_7_reporting_a_card_lost_asks_first(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    person, card = await make_cardholder(conn, school.id, "S001", cash=1000)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    page = await browser.new_page()
    await sign_in(page, live_url, "S001", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/card")
    asked: list[str] = []

    async def say_no(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", say_no)
    await page.click("[data-testid=report-loss]")
    await page.wait_for_timeout(300)
    # one tap asks; saying no changes nothing
    assert asked and card["number"] in asked[0] and "挂失" in asked[0]
    assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", card["id"]) == "active"
    # saying yes reports it
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("[data-testid=report-loss]")
    await expect(page.get_by_test_id("card-state")).to_have_text("已挂失")
    assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", card["id"]) == "lost"
    await shot(page, "first-hour-7-lost")


async def test_11_an_online_replacement_is_handed_out_at_the_card_center(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a student whose card (12.00 on it) is lost, and whose parent applied online for
    # a new one that the card center has produced
    campus = await make_campus(conn)
    parent = await make_parent(conn, campus, "parent1", "13900000001", guardian_of="2026000001")
    await make_user(conn, "desk", "card_center", campus.school_id)
    person = await conn.fetchval("SELECT id FROM persons WHERE number = '2026000001'")
    lost = await lifecycle.issue_card(
        conn, card_center(campus), person_id=person, number="550000000001", uid="0A0A0A01"
    )
    await fund(conn, campus.school_id, person, cash=1200)
    await lifecycle.report_loss(conn, card_center(campus), lost["id"], reason="丢失")
    outcome, _ = await applications.do_apply(
        conn,
        settings,
        parent,
        applications.ApplicationInput(
            province="32",
            school=campus.code,
            class_name="一年级2班",
            name="学生1",
            number="2026000001",
            delivery="counter",
        ),
        client_id="apply-replace-browser",
    )
    assert outcome.status == 201, outcome.body
    await production.do_mark_produced(
        conn, card_center(campus), campus.school_id, [outcome.body["id"]]
    )
    # when the card center hands the new card out on the production page
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, live_url, "desk", campus.code, PASSWORD)
    await page.click("[data-menu='a.production']")
    row = page.get_by_test_id("produced")
    await row.locator("input[name=card_number]").fill("550000000002")
    await row.locator("input[name=card_uid]").fill("0A0A0A02")
    await row.locator("button[type=submit]").click()
    await page.wait_for_load_state("domcontentloaded")
    # then no refusal: the new card replaces the lost one and keeps the money
    await expect(page.get_by_test_id("error-page")).to_have_count(0)
    await shot(page, "first-hour-11-handed-out")
    states = await conn.fetch("SELECT number, state FROM cards ORDER BY id")
    assert [(s["number"], s["state"]) for s in states] == [
        ("550000000001", "replaced"),
        ("550000000002", "active"),
    ]
    assert (
        await conn.fetchval(
            "SELECT status FROM card_applications WHERE id = $1", outcome.body["id"]
        )
        == "issued"
    )
    balance = await conn.fetchval(
        "SELECT sum(balance) FROM accounts WHERE person_id = $1 AND purse = 'cash'", person
    )
    assert balance == 1200
