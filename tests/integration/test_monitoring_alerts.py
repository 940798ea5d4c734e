"""Alerts reach the student and, with consent, the parent: the arrears and offline-overdraft
hooks, one alert per fact, the cooldown and weekly budget, quiet hours holding the SMS."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.monitoring import consent, school_rules, signals
from campuscard.platform import i18n
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import NotFound, ValidationFailed
from tests.support import make_school, make_student, make_user


async def _campus(pool: PgPool, *rules: str, **thresholds: dict[str, Any]) -> dict[str, Any]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        student = await make_student(conn, school.id, "S1", name="李雷")
        await conn.execute("UPDATE persons SET phone = '13800000001' WHERE id = $1", student)
        parent = await make_user(conn, "13900000002", "guardian", school.id)
        await conn.execute("UPDATE users SET phone = '13900000002' WHERE id = $1", parent)
        await conn.execute(
            "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
            parent,
            student,
            school.id,
        )
        admin = Actor(
            "admin", school_id=school.id, grants=frozenset({Grant("school_admin", school.id)})
        )
        for rule in rules:
            await school_rules.do_set_rule(
                conn, admin, school.id, rule, enabled=True, thresholds=thresholds.get(rule, {})
            )
        # no school-wide quiet hours, so the outcome does not depend on when the test runs
        await school_rules.do_set_rule(
            conn,
            admin,
            school.id,
            "delivery",
            enabled=True,
            thresholds={"quiet_start": "00:00", "quiet_end": "00:00"}
            | thresholds.get("delivery", {}),
        )
    return {
        "school": school.id,
        "student": student,
        "parent": parent,
        "student_actor": Actor("S1", user_id=None, school_id=school.id, person_id=student),
        "parent_actor": Actor(
            "13900000002",
            user_id=parent,
            school_id=school.id,
            grants=frozenset({Grant("guardian", school.id)}),
        ),
    }


async def _arrears(pool: PgPool, c: dict[str, Any], amount: int, due: date) -> int | None:
    async with transaction(pool) as tx:
        return await signals.arrears(tx, c["school"], c["student"], amount, due, "学费")


async def _sms(pool: PgPool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT payload->>'phone' AS phone, payload->>'text' AS text, available_at "
        "FROM outbox WHERE topic = 'sms' ORDER BY id"
    )


async def test_arrears_hook_alerts_the_student_once_per_fact(pool: PgPool) -> None:
    # given a school watching arrears
    c = await _campus(pool, "arrears")
    due = date.today() - timedelta(days=12)
    # when the bills capability reports the same arrears twice
    first = await _arrears(pool, c, 520000, due)
    again = await _arrears(pool, c, 520000, due)
    # then one alert, one in-app message with the reason in words, one SMS
    assert first is not None and again is None
    inbox = await pool.fetch("SELECT kind, title, body, data FROM notifications")
    assert len(inbox) == 1 and inbox[0]["kind"] == "monitoring_alert"
    assert "学费欠费 ¥5,200.00" in i18n.word("zh-CN", inbox[0]["body"])
    assert "CN¥5,200.00 overdue (学费)" in i18n.word("en", inbox[0]["body"])
    assert i18n.word("en", inbox[0]["title"]) == "Campus card alert: Arrears"
    sms = await _sms(pool)
    assert [s["phone"] for s in sms] == ["13800000001"]
    # the student has chosen no language: the SMS is in Chinese
    assert sms[0]["text"].startswith("【校园卡】学费欠费 ¥5,200.00，最早一笔已逾期 ")


async def test_hooks_do_nothing_while_the_rule_is_off_and_refuse_bad_figures(pool: PgPool) -> None:
    c = await _campus(pool)
    assert await _arrears(pool, c, 520000, date.today()) is None
    assert await pool.fetchval("SELECT count(*) FROM monitoring_alerts") == 0
    with pytest.raises(ValidationFailed) as err:
        await _arrears(pool, c, -5, date.today())
    assert err.value.field == "overdue_amount"
    async with transaction(pool) as tx:
        with pytest.raises(ValidationFailed) as err:
            await signals.offline_overdraft(
                tx,
                c["school"],
                c["student"],
                device="POS-1",
                amount=100,
                shortfall=10,
                occurred_at=datetime(2026, 3, 2, 12, 0),
                ref="POS-1:1",
            )
    assert err.value.field == "occurred_at"


async def test_offline_overdraft_hook(pool: PgPool) -> None:
    c = await _campus(pool, "offline_overdraft")
    async with transaction(pool) as tx:
        alert = await signals.offline_overdraft(
            tx,
            c["school"],
            c["student"],
            device="POS-9",
            amount=1500,
            shortfall=320,
            occurred_at=datetime.now(UTC) - timedelta(hours=3),
            ref="POS-9:77",
        )
    assert alert is not None
    row = await pool.fetchrow("SELECT rule, reason, facts FROM monitoring_alerts")
    assert row["rule"] == "offline_overdraft" and "¥3.20" in i18n.word("zh-CN", row["reason"])


async def test_cooldown_and_weekly_budget_keep_alerts_few(pool: PgPool) -> None:
    c = await _campus(pool, "arrears", "offline_overdraft", delivery={"weekly_budget": 2})
    today = date.today()
    # a second arrears figure inside the cooldown is recorded but not sent
    await _arrears(pool, c, 100000, today - timedelta(days=3))
    await _arrears(pool, c, 150000, today - timedelta(days=3))
    # another rule still gets through, then the week's budget (2) is spent
    async with transaction(pool) as tx:
        for i in (1, 2):
            if i == 2:  # past the cooldown, but not past the budget
                await tx.execute(
                    "UPDATE monitoring_alerts SET created_at = created_at - interval '4 days'"
                    " WHERE rule = 'offline_overdraft'"
                )
            await signals.offline_overdraft(
                tx,
                c["school"],
                c["student"],
                device="POS-9",
                amount=1500,
                shortfall=320,
                occurred_at=datetime.now(UTC),
                ref=f"POS-9:{i}",
            )
    rows = await pool.fetch("SELECT rule, delivery FROM monitoring_alerts ORDER BY id")
    assert [(r["rule"], r["delivery"]) for r in rows] == [
        ("arrears", "sent"),
        ("arrears", "duplicate"),
        ("offline_overdraft", "sent"),
        ("offline_overdraft", "budget"),
    ]
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 2


async def test_quiet_hours_hold_the_sms_but_not_the_in_app_message(pool: PgPool) -> None:
    c = await _campus(pool, "arrears")
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = (local - timedelta(hours=1)).time(), (local + timedelta(hours=1)).time()
    await consent.do_set_student_prefs(
        pool, c["student_actor"], sms=True, quiet_start=start, quiet_end=end
    )
    await _arrears(pool, c, 520000, date.today() - timedelta(days=5))
    assert await pool.fetchval("SELECT delivery FROM monitoring_alerts") == "quiet"
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 1
    (sms,) = await _sms(pool)
    held = sms["available_at"] - datetime.now(UTC)
    assert timedelta(minutes=50) < held <= timedelta(hours=1)


async def test_parent_hears_only_after_opting_in_and_the_students_consent(pool: PgPool) -> None:
    c = await _campus(pool, "arrears", "offline_overdraft")

    async def parent_inbox() -> int:
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM notifications WHERE user_id = $1", c["parent"]
            )
        )

    await pool.execute("UPDATE users SET locale = 'en' WHERE id = $1", c["parent"])
    # the parent opts in, by SMS, for arrears only
    await consent.do_set_guardian_prefs(
        pool,
        c["parent_actor"],
        c["student"],
        enabled=True,
        rules=["arrears"],
        low_balance=None,
        single_spend=None,
        sms=True,
        quiet_start=None,
        quiet_end=None,
    )
    await _arrears(pool, c, 100000, date.today() - timedelta(days=40))
    assert await parent_inbox() == 0  # no consent from the (adult) student yet
    # the student consents; the next arrears reach the parent with the child's name
    await consent.do_set_consent(pool, c["student_actor"], c["parent"], given=True)
    await pool.execute("UPDATE monitoring_alerts SET created_at = created_at - interval '4 days'")
    await _arrears(pool, c, 200000, date.today() - timedelta(days=40))
    assert await parent_inbox() == 1
    body = await pool.fetchval("SELECT body FROM notifications WHERE user_id = $1", c["parent"])
    assert i18n.word("zh-CN", body).startswith("李雷：学费欠费 ¥2,000.00")
    # the parent reads English (users.locale): their SMS is in English, the child's in Chinese
    (to_parent,) = [s["text"] for s in await _sms(pool) if s["phone"] == "13900000002"]
    assert to_parent.startswith("[Campus card] 李雷: CN¥2,000.00 overdue (学费)")
    assert all(
        s["text"].startswith("【校园卡】") for s in await _sms(pool) if s["phone"] == "13800000001"
    )
    # a rule the parent did not choose does not reach them
    async with transaction(pool) as tx:
        await signals.offline_overdraft(
            tx,
            c["school"],
            c["student"],
            device="POS-9",
            amount=1500,
            shortfall=320,
            occurred_at=datetime.now(UTC),
            ref="POS-9:1",
        )
    assert await parent_inbox() == 1
    # consent withdrawn: nothing more
    await consent.do_set_consent(pool, c["student_actor"], c["parent"], given=False)
    await pool.execute("UPDATE monitoring_alerts SET created_at = created_at - interval '8 days'")
    await _arrears(pool, c, 300000, date.today() - timedelta(days=40))
    assert await parent_inbox() == 1


async def test_a_parent_of_another_child_cannot_subscribe(pool: PgPool) -> None:
    c = await _campus(pool)
    async with pool.acquire() as conn:
        other = await make_student(conn, c["school"], "S2")
    with pytest.raises(NotFound):
        await consent.do_set_guardian_prefs(
            pool,
            c["parent_actor"],
            other,
            enabled=True,
            rules=[],
            low_balance=None,
            single_spend=None,
            sms=False,
            quiet_start=None,
            quiet_end=None,
        )
