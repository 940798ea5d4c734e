"""The school's alert rules in a real browser: the school admin switches the low-balance rule off
and sets the large-payment amount in yuan (a bad amount is refused, naming the threshold); the
next payment is judged by the new settings; the change is listed with who and before → after;
the page speaks English too."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.monitoring import events, school_rules
from campuscard.platform import i18n
from campuscard.platform.actors import Actor, Grant
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant, pay, set_pin

pytestmark = pytest.mark.browser
PIN = "135790"


async def test_the_school_admin_changes_a_rule_and_the_next_payment_follows_it(
    live_url: str,
    browser: BrowserContext,
    conn: asyncpg.Connection[Any],
    pool: PgPool,
    settings: Settings,
) -> None:
    # given: a student with 60.00 yuan; large payments (from 500.00) and low balance watched
    school = await make_school(conn)
    sid = school.id
    canteen, window = await make_merchant(conn, sid)
    till = await make_device(conn, settings, sid, canteen, "POS-R1", outlet_id=window)
    person, card = await make_cardholder(conn, sid, "S1", cash=6000)
    await set_pin(conn, settings, person, PIN)
    await make_user(conn, "sa1", "school_admin", sid)
    admin = Actor("setup", school_id=sid, grants=frozenset({Grant("school_admin", sid)}))
    for rule in ("big_spend", "low_balance"):
        await school_rules.do_set_rule(conn, admin, sid, rule, enabled=True, thresholds={})
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1280, "height": 900})
    await sign_in(page, live_url, "sa1", school.code, PASSWORD)
    await page.click("[data-menu='a.mon_rules']")
    await expect(page.locator("h1")).to_have_text("提醒规则设置")
    await expect(page.get_by_test_id("rule-state-low_balance")).to_have_text("已开启")
    await expect(page.get_by_test_id("rule-big_spend")).to_contain_text("稳健 z 分数")

    # when: an amount with three decimals is typed, it is refused, naming the threshold
    await page.fill("[data-testid=th-big_spend-absolute]", "30.005")
    await page.click("[data-testid=save-big_spend]")
    await expect(page.get_by_test_id("rule-error")).to_contain_text("单笔不低于此金额即提醒")
    await expect(page.get_by_test_id("th-big_spend-absolute")).to_have_value("30.005")
    assert (
        await pool.fetchval(
            "SELECT thresholds FROM monitoring_rules WHERE school_id = $1 AND rule = 'big_spend'",
            sid,
        )
        == {}
    )
    # when: 30.00 yuan is set, and the low-balance rule is switched off
    await page.fill("[data-testid=th-big_spend-absolute]", "30.00")
    await page.click("[data-testid=save-big_spend]")
    await expect(page.get_by_test_id("rule-saved")).to_be_visible()
    await page.uncheck("[data-testid=enable-low_balance]")
    await page.click("[data-testid=save-low_balance]")
    await expect(page.get_by_test_id("rule-state-low_balance")).to_have_text("未开启")
    # then: the changes are listed with who, and before → after in yuan
    await expect(page.get_by_test_id("change-1")).to_contain_text("500.00 → 30.00 元")
    await expect(page.get_by_test_id("change-0")).to_contain_text("启用: 是 → 否")
    await expect(page.get_by_test_id("mr-changes")).to_contain_text("sa1")
    await shot(page, "monitoring-rules")

    # when: the student pays 35.00 and 20.00 yuan (5.00 left) and the worker's scan reads them
    async with httpx.AsyncClient(base_url=live_url, timeout=20) as till_client:
        r = await pay(till_client, till, card, "35.00", pin=PIN)
        assert r.status_code == 200, r.text
        r = await pay(till_client, till, card, "20.00", pin=PIN)
        assert r.status_code == 200, r.text
    await events.scan_school(pool, sid)
    # then: the 35.00 payment is large at the new amount; 5.00 left raises no low balance
    found = await pool.fetch("SELECT rule, reason FROM monitoring_alerts WHERE school_id = $1", sid)
    assert [(a["rule"], i18n.word("zh-CN", a["reason"])) for a in found] == [
        ("big_spend", "单笔消费 ¥35.00，超过学校设定的 ¥30.00")
    ]

    # and the page speaks English
    await page.goto(f"{live_url}/lang/en?next=/admin/s/{school.code}/monitoring/rules")
    await expect(page.locator("h1")).to_have_text("Alert rules")
    await expect(page.get_by_test_id("rule-state-low_balance")).to_have_text("Off")
    await expect(page.get_by_test_id("change-1")).to_contain_text("500.00 → 30.00 yuan")
