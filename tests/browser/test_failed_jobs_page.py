"""The failed-jobs page in a real browser: the platform's operator finds a text message whose
delivery failed and a periodic job that failed, runs the first again and cancels the second;
in Chinese, then in English."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.platform import notifications
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_school, make_user

pytestmark = pytest.mark.browser


async def _fail(conn: asyncpg.Connection[Any], job_id: int, error: str | None) -> None:
    """As the worker leaves a job whose attempts ran out."""
    await conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = $1", job_id)
    await conn.execute(
        "UPDATE procrastinate_jobs SET status = 'failed', attempts = 12 WHERE id = $1", job_id
    )
    if error:
        await conn.execute("UPDATE outbox SET attempts = 13, last_error = $1", error)


async def test_an_operator_retries_and_cancels_failed_jobs(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    # given: a failed text message of school TST and a failed periodic job
    school = await make_school(conn)
    await notifications.enqueue(
        conn, "sms", {"phone": "13900000001", "text": "hi"}, school_id=school.id
    )
    sms_job = await conn.fetchval("SELECT id FROM procrastinate_jobs")
    await _fail(conn, sms_job, "ConnectError('gateway unreachable')")
    tick_job = await conn.fetchval(
        "SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW('periodic', 'periodic.auto-topup', 0, "
        "NULL, NULL, '{\"timestamp\": 1}'::jsonb, NULL)::procrastinate_job_to_defer_v1]))[1]"
    )
    await _fail(conn, tick_job, None)
    await make_user(conn, "root", "platform_admin", None)
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1280, "height": 900})
    await sign_in(page, live_url, "root", None, PASSWORD)

    # when: the operator opens the page from the console's menu
    await page.goto(f"{live_url}/admin/")
    await page.click("[data-menu='a.jobs']")
    await expect(page.locator("h1")).to_have_text("后台任务")
    sms_row = page.get_by_test_id(f"job-{sms_job}")
    await expect(sms_row).to_contain_text("投递 · 短信")
    await expect(sms_row).to_contain_text(school.code)
    await expect(sms_row).to_contain_text("gateway unreachable")
    tick_row = page.get_by_test_id(f"job-{tick_job}")
    await expect(tick_row).to_contain_text("定时任务 auto-topup")
    await expect(tick_row).to_contain_text("见任务进程的日志")
    await shot(page, "admin-jobs")

    # when: the message is sent again and the periodic job given up
    await page.click(f"[data-testid=retry-{sms_job}]")
    await expect(page.get_by_test_id("done")).to_have_text("任务已重新排队，马上执行。")
    await expect(page.get_by_test_id(f"job-{sms_job}")).to_have_count(0)
    await page.click(f"[data-testid=cancel-{tick_job}]")
    await expect(page.get_by_test_id("done")).to_have_text("任务已取消。")
    await expect(page.get_by_test_id("no-jobs")).to_be_visible()
    # then: the message's job waits to run now, the periodic one never runs
    statuses = dict(await conn.fetch("SELECT id, status::text FROM procrastinate_jobs"))
    assert statuses == {sms_job: "todo", tick_job: "cancelled"}
    actions = await conn.fetch("SELECT action FROM audit_log WHERE action LIKE 'job.%' ORDER BY id")
    assert [a["action"] for a in actions] == ["job.retry", "job.cancel"]

    # and the page speaks English
    await page.goto(f"{live_url}/lang/en?next=/admin/jobs")
    await expect(page.locator("h1")).to_have_text("Background jobs")
    await expect(page.get_by_test_id("no-jobs")).to_have_text("No job has failed.")
