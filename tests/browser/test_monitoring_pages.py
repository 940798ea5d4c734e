"""Watching over students in a real browser: a counsellor sees the alerts of their classes by
rule, class and day and the risk tiers, not the payments; opening one student's alerts asks why
and is audited; the counts export as CSV and, with the tiers, as a workbook (each export
audited); the page speaks English too."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from openpyxl import load_workbook
from playwright.async_api import BrowserContext, expect

from campuscard.db.tx import transaction
from campuscard.monitoring import school_rules, signals
from campuscard.platform.actors import Actor, Grant
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_school, make_student, make_user

pytestmark = pytest.mark.browser


async def test_a_counsellor_watches_the_classes_and_opens_one_students_alerts(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    # given: two classes, a counsellor of the first, and arrears alerts for a student of each
    school = await make_school(conn)
    sid = school.id
    mine = await conn.fetchval(
        "INSERT INTO classes(school_id, name) VALUES ($1, '计算机2601班') RETURNING id", sid
    )
    other = await conn.fetchval(
        "INSERT INTO classes(school_id, name) VALUES ($1, '数学2601班') RETURNING id", sid
    )
    a = await make_student(conn, sid, "S501", name="韩梅梅")
    b = await make_student(conn, sid, "S502", name="外班生")
    await conn.execute("UPDATE persons SET class_id = $2 WHERE id = $1", a, mine)
    await conn.execute("UPDATE persons SET class_id = $2 WHERE id = $1", b, other)
    uid = await make_user(conn, "fdy", "counsellor", sid)
    await conn.execute(
        "INSERT INTO monitoring_counsellor_classes(school_id, user_id, class_id) VALUES ($1, $2, $3)",
        sid,
        uid,
        mine,
    )
    admin = Actor("admin", school_id=sid, grants=frozenset({Grant("school_admin", sid)}))
    await school_rules.do_set_rule(conn, admin, sid, "arrears", enabled=True, thresholds={})
    async with transaction(conn) as tx:
        for person in (a, b):
            await signals.arrears(
                tx, sid, person, 520000, date.today() - timedelta(days=10), "学费"
            )
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1280, "height": 900})
    # when: the counsellor signs in (the console opens on the monitoring page)
    await sign_in(page, live_url, "fdy", school.code, PASSWORD)
    await page.click("[data-menu='a.monitoring']")
    # then: one alert of their own class, counted by rule and class; the tier, not the amount
    await expect(page.get_by_test_id("mon-total")).to_have_text("1")
    await expect(page.get_by_test_id("mon-rule-arrears")).to_have_text("1")
    await expect(page.get_by_test_id("mon-classes")).to_contain_text("计算机2601班")
    await expect(page.get_by_test_id("mon-classes")).not_to_contain_text("数学2601班")
    await expect(page.get_by_test_id("tier-of-S501")).to_have_text("低")
    await expect(page.get_by_test_id("tier-S502")).to_have_count(0)
    await expect(page.locator("main")).not_to_contain_text("5200.00")
    await shot(page, "monitoring-counsellor")
    # when: the counsellor opens the student's alerts, giving a reason
    await page.fill("[data-testid=drill-reason-S501]", "期中谈心前了解情况")
    await page.click("[data-testid=drill-S501]")
    # then: the alert with its reason in words, and the opening is in the audit log
    await expect(page.get_by_test_id("drill-alerts")).to_contain_text("学费欠费 ¥5,200.00")
    logged = await conn.fetchrow(
        "SELECT actor, after FROM audit_log WHERE action = 'monitoring.drill_down'"
    )
    assert logged is not None and logged["after"]["reason"] == "期中谈心前了解情况"
    # the export: counts by day, rule and class, no names
    async with page.expect_download() as info:
        await page.click("[data-testid=mon-export]")
    text = (await (await info.value).path()).read_text(encoding="utf-8-sig")
    assert "欠费未缴,计算机2601班,1" in text and "韩梅梅" not in text
    # the workbook: the counts and the tiers of the counsellor's class only, no amounts
    async with page.expect_download() as info:
        await page.click("[data-testid=mon-export-xlsx]")
    book = load_workbook(io.BytesIO((await (await info.value).path()).read_bytes()))
    counts, tiers = (list(ws.iter_rows(values_only=True)) for ws in book.worksheets)
    assert counts[1:] == [(counts[1][0], "欠费未缴", "计算机2601班", 1)]
    assert tiers[1:] == [("S501", "韩梅梅", "计算机2601班", "低")]
    assert "5200" not in str(counts + tiers)
    exported = await conn.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'monitoring.export'"
    )
    assert exported == 2
    # and the page speaks English
    await page.goto(f"{live_url}/lang/en?next=/admin/s/{school.code}/monitoring")
    await expect(page.locator("h1")).to_have_text("Watching over students")
    await expect(page.get_by_test_id("tier-of-S501")).to_have_text("Low")
    await expect(page.get_by_test_id("mon-days")).to_contain_text("Arrears")
