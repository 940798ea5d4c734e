"""The teacher's attendance page in a real browser: yesterday's sheet from the gate's swipes
(present, late, absent), a student's leave approved turns absent into on leave, a correction
with a note, the month's summary, and the page in English."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.attendance import leaves, model
from campuscard.config import Settings
from campuscard.people import directory
from campuscard.platform.actors import Actor
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, ROOT, make_user
from tests.support_access import make_campus
from tests.support_payments import make_cardholder

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Asia/Shanghai")


async def test_a_teacher_keeps_the_daily_sheet(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a class of three with its teacher, morning reading at the gate, and yesterday's
    # swipes: S1 on time, S2 late, S3 none but a pending sick-leave request
    campus = await make_campus(conn, settings)
    sid = campus.school_id
    class_id = await directory.create_class(conn, ROOT, sid, name="高一(3)班")
    people = {}
    for n in (1, 2, 3):
        person_id, card = await make_cardholder(conn, sid, f"S{n}")
        await conn.execute("UPDATE persons SET class_id = $1 WHERE id = $2", class_id, person_id)
        people[f"S{n}"] = (person_id, card["number"])
    teacher = await make_user(conn, "teacher", "teacher", sid)
    await model.set_class_teachers(conn, ROOT, sid, class_id, user_ids=[teacher])
    point = await model.create_point(
        conn, ROOT, sid, name="东门", kind="gate", door_ids=[campus.gate_id]
    )
    rule = await model.create_rule(
        conn,
        ROOT,
        sid,
        class_id=class_id,
        point_id=point,
        name="早读",
        weekdays=[1, 2, 3, 4, 5, 6, 7],
        opens_at=time(7, 0),
        on_time_until=time(7, 40),
        closes_at=time(8, 0),
        on_holidays=True,
    )
    await conn.execute("UPDATE attendance_rules SET created_at = now() - interval '3 days'")
    yesterday = datetime.now(TZ).date() - timedelta(days=1)
    terminal = await conn.fetchval(
        "SELECT terminal_id FROM access_doors WHERE id = $1", campus.gate_id
    )
    for seq, (who, hh, mm) in enumerate((("S1", 7, 20), ("S2", 7, 55)), start=1):
        person_id, card = people[who]
        await conn.execute(
            """INSERT INTO access_events(school_id, terminal_id, seq, door_id, kind, direction,
                                         card_number, person_id, occurred_at)
               VALUES ($1, $2, $3, $4, 'granted', 'in', $5, $6, $7)""",
            sid,
            terminal,
            seq,
            campus.gate_id,
            card,
            person_id,
            datetime.combine(yesterday, time(hh, mm), tzinfo=TZ),
        )
    leave_id = await leaves.request_leave(
        conn,
        Actor(name="S3", school_id=sid, person_id=people["S3"][0]),
        sid,
        people["S3"][0],
        kind="sick",
        starts_at=datetime.combine(yesterday, time(0, 0), tzinfo=TZ),
        ends_at=datetime.combine(yesterday, time(12, 0), tzinfo=TZ),
        reason="发烧",
    )
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1280, "height": 900})
    await sign_in(page, live_url, "teacher", "TST", PASSWORD)

    # when the teacher opens yesterday's sheet from the menu
    await page.click("[data-menu='a.attendance']")
    await page.fill("[data-testid=att-day]", yesterday.isoformat())
    await page.click("form.filters button[type=submit]")
    # then the readers' word is there
    await expect(page.get_by_test_id(f"att-S1-{rule}")).to_have_text("出勤")
    await expect(page.get_by_test_id(f"att-S2-{rule}")).to_have_text("迟到")
    await expect(page.get_by_test_id(f"att-S3-{rule}")).to_have_text("缺勤")
    # when the teacher approves S3's leave
    await page.click(f"[data-testid=approve-leave-{leave_id}]")
    # then S3 is on leave, and nothing is left to decide
    await expect(page.get_by_test_id(f"att-S3-{rule}")).to_have_text("请假")
    await expect(page.get_by_test_id("no-leaves")).to_be_visible()
    # when the teacher corrects S2 (the bus was late) with a note
    await page.select_option(f"[data-testid=mark-S2-{rule}]", "present")
    await page.fill(f"[data-testid=note-S2-{rule}]", "公交晚点")
    await page.click(f"[data-testid=save-S2-{rule}]")
    await expect(page.get_by_test_id(f"att-S2-{rule}")).to_have_text("出勤")
    await expect(page.get_by_test_id("att-row-S2")).to_contain_text("班主任已更正: 公交晚点")
    await expect(page.get_by_test_id("att-counts")).to_contain_text("出勤 2")
    await shot(page, "attendance-sheet")
    # and the month adds it up
    await page.click("[data-testid=att-month-link]")
    # columns: number, name, present, late, absent, on leave
    await expect(page.get_by_test_id("month-row-S2").locator("td").nth(2)).to_have_text("1")
    await expect(page.get_by_test_id("month-row-S3").locator("td").nth(5)).to_have_text("1")
    await expect(page.get_by_test_id("month-export")).to_be_visible()
    await shot(page, "attendance-month")
    # and the page speaks English too
    await page.goto(
        f"{live_url}/lang/en?next=/admin/s/TST/attendance?class={class_id}%26day={yesterday}"
    )
    await expect(page.get_by_test_id(f"att-S3-{rule}")).to_have_text("On leave")
    await expect(page.locator("h1")).to_have_text("Attendance")
