"""The console's access forms in a real browser: an administrator makes a zone, a door group
and a schedule with two intervals on Monday, copied to the other weekdays, and one across
midnight on Friday, grants a class that group on that schedule, and the door list changes: the
page says a change waits, both controllers fetch the new version, and the dormitory's lets the
student in late on Friday and out early on Saturday but not in on Saturday morning."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.access import model
from campuscard.access.rules import public_day
from campuscard.config import Settings
from campuscard.people import directory
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, ROOT, make_user
from tests.support_access import controller, make_campus
from tests.support_payments import make_cardholder

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Asia/Shanghai")


async def test_the_model_made_with_the_forms_reaches_the_doors(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a campus whose gate holds the current list, and a class with one student
    campus = await make_campus(conn, settings)
    sid = campus.school_id
    class_id = await directory.create_class(conn, ROOT, sid, name="高一(3)班")
    person_id, card = await make_cardholder(conn, sid, "S1")
    await conn.execute("UPDATE persons SET class_id = $1 WHERE id = $2", class_id, person_id)
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
        await controller(client, campus.gate_sn, campus.gate_key).sync()
        await controller(client, campus.dorm_sn, campus.dorm_key).sync()
        page = await browser.new_page()
        await page.set_viewport_size({"width": 1280, "height": 900})
        await sign_in(page, live_url, "admin", "TST", PASSWORD)
        await page.click("[data-menu='a.access']")
        gate_row = page.get_by_test_id(f"door-{campus.gate_id}")
        await expect(gate_row).to_contain_text("最新")

        # when the administrator makes a zone with hard anti-passback, and a door group
        # holding the dormitory door
        await page.click("[data-testid=new-zone]")
        await page.fill("[data-testid=f-name]", "宿舍区")
        await page.select_option("[data-testid=f-antipassback]", "hard")
        await page.click("[data-testid=f-save]")
        await expect(page.get_by_test_id("zones")).to_contain_text("宿舍区")
        await page.click("[data-testid=new-group]")
        await page.fill("[data-testid=f-name]", "夜归宿舍")
        await page.check(f"[data-testid=f-door-{campus.dorm_id}]")
        await page.click("[data-testid=f-save]")
        await expect(page.get_by_test_id("groups")).to_contain_text("夜归宿舍")

        # and a schedule: two intervals on Monday copied to Tuesday-Friday, and Friday night
        # running into Saturday morning
        await page.click("[data-testid=new-schedule]")
        await page.fill("[data-testid=f-name]", "夜归")
        for slot, (start, end) in enumerate((("07:00", "12:00"), ("13:00", "21:00")), start=1):
            await page.fill(f"[data-testid=d1-from-{slot}]", start)
            await page.fill(f"[data-testid=d1-to-{slot}]", end)
        await page.click("[data-testid=copy-monday]")
        await expect(page.get_by_test_id("d3-to-2")).to_have_value("21:00")
        await page.fill("[data-testid=d5-from-3]", "22:00")
        await page.fill("[data-testid=d5-to-3]", "06:00")
        await shot(page, "access-schedule-editor")
        await page.click("[data-testid=f-save]")
        schedules = page.get_by_test_id("schedules")
        await expect(schedules).to_contain_text("22:00–06:00 （次日）")
        await expect(schedules).to_contain_text("07:00–12:00, 13:00–21:00")

        # and the class is granted the group on that schedule
        await page.select_option("[data-testid=grant-class]", label="高一(3)班")
        await page.select_option("[data-testid=grant-group]", label="夜归宿舍")
        await page.select_option("[data-testid=grant-schedule]", label="夜归")
        await page.click("[data-testid=grant-add]")
        await expect(page.get_by_test_id("grants")).to_contain_text("夜归宿舍")

        # then the door list is changing: the page says a change waits to be compiled
        await expect(page.get_by_test_id("list-state")).to_contain_text("有改动待编入名单")
        await shot(page, "access-console-forms")
        # and when the controllers next ask, each gets the new version, and the dormitory's
        # decides by the new schedule offline: in late on Friday, out early on Saturday, not
        # in on Saturday morning
        gate = controller(client, campus.gate_sn, campus.gate_key)
        await gate.sync()
        dorm = controller(client, campus.dorm_sn, campus.dorm_key)
        await dorm.sync()
        assert gate.held.version == dorm.held.version > 1
        friday = datetime.now(TZ).date() + timedelta(days=1)
        while friday.isoweekday() != 5 or public_day(friday) or public_day(friday + timedelta(1)):
            friday += timedelta(days=1)
        saturday = friday + timedelta(days=1)
        at = lambda day, hh, mm: datetime.combine(day, time(hh, mm), tzinfo=TZ)  # noqa: E731
        assert dorm.present(card["number"], "in", at(friday, 23, 30)).granted
        assert dorm.present(card["number"], "out", at(saturday, 5, 30)).granted
        late = dorm.present(card["number"], "in", at(saturday, 7, 0))
        assert (late.granted, late.reason) == (False, "outside_schedule")
        await page.reload()
        await expect(page.get_by_test_id("list-state")).not_to_contain_text("有改动待编入名单")
        for door_id in (campus.gate_id, campus.dorm_id):
            await expect(page.get_by_test_id(f"door-{door_id}")).to_contain_text(
                f"最新 {dorm.held.version}"
            )
