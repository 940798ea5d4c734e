"""The console's door pages in a real browser: each door's controller and the list version it
holds, the school's own day added (an exam closure), a class granted a door group and the
grant ended, and a swipe at the gate appearing on the live door events by itself."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, Dialog, expect

from campuscard.access import model
from campuscard.config import Settings
from campuscard.people import directory
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, ROOT, make_user
from tests.support_access import controller, make_campus
from tests.support_payments import make_cardholder

pytestmark = pytest.mark.browser


async def test_doors_days_grants_and_live_events(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a campus whose gate lets students in and has synced; the dormitory door has not
    campus = await make_campus(conn, settings)
    sid = campus.school_id
    await directory.create_class(conn, ROOT, sid, name="高一(3)班")
    _, card = await make_cardholder(conn, sid, "S1")
    await model.create_grant(
        conn,
        ROOT,
        sid,
        subject="role",
        subject_value="student",
        group_id=campus.gates,
        schedule_id=campus.always,
    )
    await make_user(conn, "admin", "school_admin", sid)
    async with httpx.AsyncClient(base_url=live_url) as client:
        gate = controller(client, campus.gate_sn, campus.gate_key)
        await gate.sync()
        page = await browser.new_page()
        await page.set_viewport_size({"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: _accept(dialog))
        await sign_in(page, live_url, "admin", "TST", PASSWORD)

        # when the administrator opens the doors page
        await page.click("[data-menu='a.access']")
        # then each door shows what its controller holds
        await expect(page.get_by_test_id(f"door-{campus.gate_id}")).to_contain_text("最新")
        await expect(page.get_by_test_id(f"door-{campus.dorm_id}")).to_contain_text("从未同步")
        # when an exam closure is added to the school's own days
        exam = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=10)).date()
        await page.fill("[data-testid=day-date]", exam.isoformat())
        await page.fill("[data-testid=day-name]", "期末考试闭校")
        await page.click("[data-testid=day-add]")
        await expect(page.get_by_test_id(f"day-{exam.isoformat()}")).to_contain_text("期末考试闭校")
        # and the class is granted the dormitory door until a set time, then the grant ended
        await page.select_option("[data-testid=grant-class]", label="高一(3)班")
        await page.select_option("[data-testid=grant-group]", str(campus.dorms))
        await page.fill("[data-testid=grant-until]", f"{exam.isoformat()}T18:30")
        await page.fill("[data-testid=grant-note]", "考试周留宿")
        await page.click("[data-testid=grant-add]")
        grant_id = await conn.fetchval("SELECT max(id) FROM access_grants")
        row = page.get_by_test_id(f"grant-{grant_id}")
        await expect(row).to_contain_text("高一(3)班")
        await expect(row).to_contain_text(f"{exam.isoformat()} 18:30")
        await shot(page, "access-console")
        await page.click(f"[data-testid=end-grant-{grant_id}]")
        await expect(page.get_by_test_id(f"grant-{grant_id}")).to_have_count(0)

        # when the live events page is open and the student swipes in at the gate
        await page.click("[data-menu='a.door_events']")
        await expect(page.get_by_test_id("no-events")).to_be_visible()
        assert gate.present(card["number"], "in").granted
        assert gate.present("880000009999", "in").reason == "not_on_list"
        await gate.upload()
        # then the events appear without reloading the page
        events = page.get_by_test_id("door-events")
        await expect(events).to_contain_text("放行", timeout=8000)
        await expect(events).to_contain_text("不在名单")
        await shot(page, "access-events")
        # and the page speaks English too
        await page.goto(f"{live_url}/lang/en?next=/admin/s/TST/access/events")
        await expect(page.locator("h1")).to_have_text("Live door events")
        await expect(page.get_by_test_id("door-events")).to_contain_text("Granted")


def _accept(dialog: Dialog) -> Any:
    return dialog.accept()
