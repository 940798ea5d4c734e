"""Rules evaluated as payments happen, through the real path: a signed till payment, the
worker's scan, the alert, the student's phone (live event and SMS) and the parent's own
thresholds; the daily pass for days without a canteen meal."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import SecretStr

from campuscard.adapters.sms.simulator import create_sms_simulator
from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.monitoring import consent, daily, events, school_rules
from campuscard.platform import i18n, worker
from campuscard.platform.actors import Actor, Grant
from tests.integration.test_live_events import open_stream
from tests.servers import serve_in_thread
from tests.support import login, make_school, make_user
from tests.support_payments import make_cardholder, make_device, make_merchant, pay, set_pin

SMS_SECRET = b"sms-monitoring-secret"
PIN = "135790"


async def _watch(pool: PgPool, school_id: int, **rules: dict[str, Any]) -> None:
    admin = Actor(
        "admin", school_id=school_id, grants=frozenset({Grant("school_admin", school_id)})
    )
    rules.setdefault("delivery", {})
    rules["delivery"] = {"quiet_start": "00:00", "quiet_end": "00:00"} | rules["delivery"]
    for rule, thresholds in rules.items():
        await school_rules.do_set_rule(
            pool, admin, school_id, rule, enabled=True, thresholds=thresholds
        )


async def _campus(pool: PgPool, settings: Settings, cash: int = 100_000) -> dict[str, Any]:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        canteen, window = await make_merchant(conn, school.id)
        shop, counter = await make_merchant(conn, school.id, "西区超市", channel="supermarket")
        till = await make_device(conn, settings, school.id, canteen, "POS-C1", outlet_id=window)
        shop_till = await make_device(conn, settings, school.id, shop, "POS-S1", outlet_id=counter)
        person, card = await make_cardholder(conn, school.id, "S1", cash=cash)
        await conn.execute("UPDATE persons SET phone = '13800000009' WHERE id = $1", person)
        await set_pin(conn, settings, person, PIN)
    return {
        "school": school,
        "person": person,
        "card": card,
        "till": till,
        "shop_till": shop_till,
        "window": window,
        "counter": counter,
    }


async def _worker_settled(pool: PgPool, *, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scanned = await pool.fetchval(
            """SELECT count(*) FROM procrastinate_jobs
                WHERE task_name = 'periodic.monitoring-events' AND status = 'succeeded'"""
        )
        busy = await pool.fetchval(
            """SELECT count(*) FROM procrastinate_jobs
                WHERE status IN ('todo', 'doing') AND scheduled_at IS NULL
                  AND task_name <> 'periodic.monitoring-events'"""
        )
        if scanned and not busy:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the worker did not finish its start-up jobs")


async def _alerts(pool: PgPool, school_id: int) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT rule, reason FROM monitoring_alerts WHERE school_id = $1 ORDER BY id", school_id
    )
    return [(r["rule"], i18n.word("zh-CN", r["reason"])) for r in rows]


async def test_an_alert_reaches_the_phone_within_60_seconds_of_the_payment(
    pool: PgPool, settings: Settings
) -> None:
    # given a student signed in on the phone, a running worker and the SMS gateway's simulator
    sms_app = create_sms_simulator({"campuscard": SMS_SECRET})
    with serve_in_thread(sms_app) as sms_url:
        live = settings.model_copy(
            update={"sms_gateway_url": sms_url, "sms_api_secret": SecretStr(SMS_SECRET.decode())}
        )
        c = await _campus(pool, live)
        await _watch(pool, c["school"].id, big_spend={"absolute": 20000})
        async with pool.acquire() as conn:
            await make_user(conn, "phone-S1", "cardholder", c["school"].id, person_id=c["person"])
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run_forever(live, stop=stop))
        try:
            # a worker that has started: its first burst of periodic jobs (every job is due at
            # start) is behind it and the monitoring scan has run once, as on a running campus
            await _worker_settled(pool)
            with serve_in_thread(create_app(live)) as base:
                async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                    me = await login(client, "phone-S1", c["school"].code)
                    async with open_stream(client, "/api/v1/me/events", me) as phone:
                        # when a large payment is taken at the till
                        started = time.monotonic()
                        r = await pay(client, c["till"], c["card"], "260.00", pin=PIN)
                        assert r.status_code == 200, r.text
                        # then the phone hears the alert, and the SMS arrives, within 60 s
                        event = await phone.next("notification", timeout=60)
                        while event["kind"] != "monitoring_alert":
                            event = await phone.next("notification", timeout=60)
                        while not sms_app.state.sim.inbox("13800000009"):
                            assert time.monotonic() - started < 60, "no SMS within 60 s"
                            await asyncio.sleep(0.2)
                        elapsed = time.monotonic() - started
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(running, 10)
    assert elapsed < 60
    (sms,) = sms_app.state.sim.inbox("13800000009")
    assert "单笔消费 ¥260.00" in sms.text
    body = await pool.fetchval("SELECT body FROM notifications WHERE id = $1", event["id"])
    assert "One payment of CN¥260.00" in i18n.word("en", body)


async def test_payment_rules_fire_on_what_they_are_for_and_not_on_an_ordinary_meal(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    c = await _campus(pool, settings)
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    night = {"start": (local - timedelta(hours=1)).strftime("%H:%M")}
    night["end"] = (local + timedelta(hours=1)).strftime("%H:%M")
    await _watch(
        pool,
        c["school"].id,
        big_spend={"min_baseline": 5},
        rapid_payments={"count": 4, "minutes": 10},
        far_apart={},
        delivery={"weekly_budget": 10, "cooldown_hours": 0},
    )
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO monitoring_places(school_id, outlet_id, x_m, y_m) "
            "VALUES ($1, $2, 0, 0), ($1, $3, 2500, 0)",
            c["school"].id,
            c["window"],
            c["counter"],
        )
    # an ordinary day of meals: nothing
    for amount in ("8.50", "9.00", "12.00", "7.50", "10.00"):
        await pool.execute("UPDATE payments SET created_at = created_at - interval '1 hour'")
        assert (await pay(client, c["till"], c["card"], amount)).status_code == 200
    assert (await events.scan_school(pool, c["school"].id)).alerts == 0
    assert await _alerts(pool, c["school"].id) == []
    # a payment far above the student's own baseline, at a shop 2.5 km away a minute later
    assert (await pay(client, c["shop_till"], c["card"], "180.00", pin=PIN)).status_code == 200
    result = await events.scan_school(pool, c["school"].id)
    assert result.payments == 1
    found = dict(await _alerts(pool, c["school"].id))
    assert set(found) == {"big_spend", "far_apart"}
    assert "180.00" in found["big_spend"] and "倍" in found["big_spend"]
    assert "2500 米" in found["far_apart"]
    # four small payments within minutes
    for _ in range(3):
        assert (await pay(client, c["shop_till"], c["card"], "3.00", pin=PIN)).status_code == 200
    await events.scan_school(pool, c["school"].id)
    assert [r for r, _ in await _alerts(pool, c["school"].id)].count("rapid_payments") == 1
    # scanning again reads nothing twice
    assert (await events.scan_school(pool, c["school"].id)).payments == 0
    # night spending, with the night window set around now
    await _watch(pool, c["school"].id, night_spend=night)
    assert (await pay(client, c["till"], c["card"], "6.00", pin=PIN)).status_code == 200
    await events.scan_school(pool, c["school"].id)
    assert "night_spend" in dict(await _alerts(pool, c["school"].id))


async def test_low_balance_once_per_fall_and_the_parents_own_thresholds(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    c = await _campus(pool, settings, cash=6000)
    school_id = c["school"].id
    await _watch(pool, school_id, low_balance={"below": 2000})
    async with pool.acquire() as conn:
        parent = await make_user(conn, "13900000003", "guardian", school_id)
        await conn.execute(
            "INSERT INTO guardian_links(user_id, person_id, school_id) VALUES ($1, $2, $3)",
            parent,
            c["person"],
            school_id,
        )
    parent_actor = Actor("p", user_id=parent, grants=frozenset({Grant("guardian", school_id)}))
    student_actor = Actor("s", person_id=c["person"], school_id=school_id)
    await consent.do_set_guardian_prefs(
        pool,
        parent_actor,
        c["person"],
        enabled=True,
        rules=[],
        low_balance=3000,
        single_spend=2500,
        sms=False,
        quiet_start=None,
        quiet_end=None,
    )
    await consent.do_set_consent(pool, student_actor, parent, given=True)

    async def parent_inbox() -> list[str]:
        rows = await pool.fetch(
            "SELECT body FROM notifications WHERE user_id = $1 ORDER BY id", parent
        )
        return [i18n.word("zh-CN", r["body"]) for r in rows]

    # 60.00 -> 35.00: above both thresholds but at the parent's large-spend amount
    assert (await pay(client, c["till"], c["card"], "25.00")).status_code == 200
    await events.scan_school(pool, school_id)
    assert await _alerts(pool, school_id) == []
    assert len(await parent_inbox()) == 1 and "您设定的 ¥25.00" in (await parent_inbox())[0]
    # 35.00 -> 28.00: below the parent's 30.00, above the school's 20.00
    assert (await pay(client, c["till"], c["card"], "7.00")).status_code == 200
    await events.scan_school(pool, school_id)
    assert await _alerts(pool, school_id) == []
    assert "低于 ¥30.00" in (await parent_inbox())[-1]
    # 28.00 -> 16.00 -> 12.00: one student alert for the fall, with days left at the pace
    for amount in ("12.00", "4.00"):
        assert (await pay(client, c["till"], c["card"], amount)).status_code == 200
        await events.scan_school(pool, school_id)
    alerts = await _alerts(pool, school_id)
    assert [r for r, _ in alerts] == ["low_balance"]
    assert "可用余额 ¥16.00，低于 ¥20.00" in alerts[0][1] and "约可用" in alerts[0][1]
    # the parent's own threshold told them once for this fall; the school's alert reaches them too
    told = await parent_inbox()
    assert len(told) == 3 and sum("低于 ¥30.00" in t for t in told) == 1


async def test_daily_pass_no_canteen_meal_for_days_while_the_card_is_used(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    c = await _campus(pool, settings)
    school_id = c["school"].id
    await _watch(pool, school_id, no_meal={"days": 3, "min_other_uses": 2})
    async with pool.acquire() as conn:
        _, card2 = await make_cardholder(conn, school_id, "S2", cash=10_000)
    # S1: a meal six days ago, then only the shop; S2: meals every other day
    for days_ago, till, card in (
        (6, "till", c["card"]),
        (4, "shop_till", c["card"]),
        (2, "shop_till", c["card"]),
        (6, "till", card2),
        (4, "till", card2),
        (2, "till", card2),
        (1, "shop_till", card2),
    ):
        r = await pay(client, c[till], card, "9.00")
        assert r.status_code == 200, r.text
        await pool.execute(
            "UPDATE payments SET business_date = business_date - $1::int "
            "WHERE id = (SELECT max(id) FROM payments)",
            days_ago,
        )
    today = await pool.fetchval("SELECT cc_business_date($1)", school_id)
    assert await daily.run_school(pool, school_id, today=today - timedelta(days=1)) == 1
    ((rule, reason),) = await _alerts(pool, school_id)
    assert rule == "no_meal" and "5 天没有食堂就餐记录" in reason
    # the same day is passed over once
    assert await daily.run_school(pool, school_id, today=today - timedelta(days=1)) == 0
