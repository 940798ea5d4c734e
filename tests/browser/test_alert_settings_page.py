"""Alert settings on the phone, in a real browser: a parent subscribes to a child's alerts with
their own large-payment amount and hears nothing until the adult student consents on their own
phone; the student sets quiet hours and SMS; then a payment over the parent's amount reaches
the parent's messages through the worker's scan. The page speaks English too."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.monitoring import events, school_rules
from campuscard.platform.actors import Actor, Grant
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant, pay, set_pin

pytestmark = pytest.mark.browser
PIN = "135790"


async def test_a_parent_hears_a_childs_alerts_only_after_the_student_consents(
    live_url: str,
    browser: BrowserContext,
    conn: asyncpg.Connection[Any],
    pool: PgPool,
    settings: Settings,
    client: httpx.AsyncClient,
) -> None:
    # given: a student with a card, a linked parent, and a school that watches payments
    school = await make_school(conn)
    sid = school.id
    canteen, window = await make_merchant(conn, sid)
    till = await make_device(conn, settings, sid, canteen, "POS-A1", outlet_id=window)
    person, card = await make_cardholder(conn, sid, "S1", cash=50_000)
    await set_pin(conn, settings, person, PIN)
    await make_user(conn, "S1", "cardholder", sid, person_id=person)
    parent = await make_user(conn, "13900000007", "guardian", sid)
    await conn.execute(
        "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
        parent,
        person,
        sid,
    )
    admin = Actor("admin", school_id=sid, grants=frozenset({Grant("school_admin", sid)}))
    await school_rules.do_set_rule(conn, admin, sid, "low_balance", enabled=True, thresholds={})
    page = await browser.new_page()
    # when: the parent subscribes with their own amount of 100.00 yuan
    await sign_in(page, live_url, "13900000007", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/alerts")
    await expect(page.get_by_test_id("child-consent")).to_contain_text("需要孩子在自己的手机上同意")
    await page.check("[data-testid=child-enabled]")
    await page.fill("[data-testid=child-spend]", "100")
    await page.click("[data-testid=child-save]")
    await expect(page.get_by_test_id("alerts-done")).to_be_visible()
    await expect(page.get_by_test_id("child-spend")).to_have_value("100.00")
    # then: a payment over it tells the parent nothing yet (no consent)
    assert (await pay(client, till, card, "150.00", pin=PIN)).status_code == 200
    await events.scan_school(pool, sid)
    told = "SELECT count(*) FROM notifications WHERE user_id = $1"
    assert await conn.fetchval(told, parent) == 0
    # when: the student consents on their own phone and sets quiet hours, SMS off
    await page.context.clear_cookies()
    await sign_in(page, live_url, "S1", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/alerts")
    await expect(page.get_by_test_id(f"consent-{parent}")).to_have_text("你未同意")
    await page.click(f"[data-testid=give-{parent}]")
    await expect(page.get_by_test_id(f"consent-{parent}")).to_have_text("你已同意")
    await page.uncheck("[data-testid=my-sms]")
    await page.fill("[data-testid=my-quiet-start]", "23:00")
    await page.fill("[data-testid=my-quiet-end]", "06:30")
    await page.click("[data-testid=my-save]")
    await expect(page.get_by_test_id("my-quiet-start")).to_have_value("23:00")
    await expect(page.get_by_test_id("my-sms")).not_to_be_checked()
    await shot(page, "alert-settings-student")
    # then: the next payment over the parent's amount reaches the parent's messages
    assert (await pay(client, till, card, "120.00", pin=PIN)).status_code == 200
    await events.scan_school(pool, sid)
    await page.context.clear_cookies()
    await sign_in(page, live_url, "13900000007", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/notifications")
    await expect(page.locator("main")).to_contain_text("单笔消费 ¥120.00，达到您设定的 ¥100.00")
    await expect(page.locator("main")).not_to_contain_text("150.00")
    # and the settings page speaks English
    await page.goto(f"{live_url}/lang/en?next=/m/alerts")
    await expect(page.locator("h1")).to_contain_text("Alert settings")
    await expect(page.get_by_test_id("child-consent")).to_have_text(
        "Your child consented to your hearing the alerts."
    )
    await page.close()  # ends the page's live stream, so the server stops at once
