"""Leave on the phone in a real browser: the student asks for tomorrow's first period from the
请假 tile, sees it waiting; the class teacher approves it on the console's attendance page; the
student sees it approved with the teacher's note, in Chinese and in English."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.attendance import model
from campuscard.config import Settings
from campuscard.people import directory
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, ROOT, make_school, make_user
from tests.support_payments import make_cardholder

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Asia/Shanghai")


async def test_a_student_asks_the_teacher_decides_the_student_sees(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a class with its teacher and a first period in the classroom, and one student
    school = await make_school(conn, "TST")
    sid = school.id
    class_id = await directory.create_class(conn, ROOT, sid, name="高一(3)班")
    person_id, _ = await make_cardholder(conn, sid, "S1")
    await conn.execute("UPDATE persons SET class_id = $1 WHERE id = $2", class_id, person_id)
    await make_user(conn, "S1", "cardholder", sid, person_id=person_id)
    teacher = await make_user(conn, "teacher", "teacher", sid)
    await model.set_class_teachers(conn, ROOT, sid, class_id, user_ids=[teacher])
    door = await conn.fetchval(
        "INSERT INTO access_doors(school_id, name) VALUES ($1, '301教室') RETURNING id", sid
    )
    point = await model.create_point(
        conn, ROOT, sid, name="301教室", kind="classroom", door_ids=[door]
    )
    await model.create_rule(
        conn,
        ROOT,
        sid,
        class_id=class_id,
        point_id=point,
        name="第一节",
        weekdays=[1, 2, 3, 4, 5, 6, 7],
        opens_at=time(8, 0),
        on_time_until=time(8, 5),
        closes_at=time(8, 45),
    )
    tomorrow = datetime.now(TZ).date() + timedelta(days=1)

    # when the student opens 请假 from the phone's home and asks for tomorrow's first period
    page = await browser.new_page()
    await sign_in(page, live_url, "S1", "TST", PASSWORD)
    await page.click("a.tile[href='/m/leave']")
    await page.select_option("[data-testid=leave-kind]", "sick")
    await page.fill("[data-testid=leave-start]", tomorrow.isoformat())
    await page.fill("[data-testid=leave-end]", tomorrow.isoformat())
    await page.select_option("[data-testid=leave-span]", label="第一节 08:00–08:45")
    await page.fill("[data-testid=leave-reason]", "发烧，去校医院")
    await page.click("[data-testid=leave-submit]")
    # then it waits for the teacher
    await expect(page.get_by_test_id("notice")).to_have_text("已提交，等待班主任审批。")
    leave_id = await conn.fetchval("SELECT id FROM attendance_leaves")
    await expect(page.get_by_test_id(f"leave-state-{leave_id}")).to_have_text("待审批")
    await expect(page.get_by_test_id(f"leave-{leave_id}")).to_contain_text(
        f"{tomorrow.isoformat()} 08:00 – {tomorrow.isoformat()} 08:45"
    )
    await expect(page.get_by_test_id(f"leave-cancel-{leave_id}")).to_be_visible()
    await shot(page, "leave-phone-pending")

    # when the teacher opens the attendance page and approves it with a note
    await browser.clear_cookies()
    await sign_in(page, live_url, "teacher", "TST", PASSWORD)
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.click("[data-menu='a.attendance']")
    await expect(page.get_by_test_id("att-leaves")).to_contain_text("发烧，去校医院")
    await page.fill(f"[data-testid=leave-note-{leave_id}]", "注意休息")
    await page.click(f"[data-testid=approve-leave-{leave_id}]")
    await expect(page.get_by_test_id("no-leaves")).to_be_visible()

    # then the student sees it approved, with the teacher's note
    await browser.clear_cookies()
    await page.set_viewport_size({"width": 390, "height": 844})
    await sign_in(page, live_url, "S1", "TST", PASSWORD)
    await page.goto(f"{live_url}/m/leave")
    await expect(page.get_by_test_id(f"leave-state-{leave_id}")).to_have_text("已批准")
    await expect(page.get_by_test_id(f"leave-{leave_id}")).to_contain_text("注意休息")
    await shot(page, "leave-phone-approved")
    # and in English
    await page.goto(f"{live_url}/lang/en?next=/m/leave")
    await expect(page.get_by_test_id(f"leave-state-{leave_id}")).to_have_text("Approved")
    await expect(page.locator("h1")).to_have_text("Leave")
