"""Refunds, top-ups and offline uploads are events too: the worker's scan reads them past the
ledger cursor beside the payment cursor. An offline sale goes through the payment rules at the
instant the till made it; money coming in that still leaves the student below the school's
low-balance amount says so at once (under the key the next payment would use: never twice),
and money that lifts the balance above it alerts nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from campuscard.config import Settings
from campuscard.db import migrate
from campuscard.db.pool import PgPool
from campuscard.ledger.money import Money
from campuscard.moneyflows import counter
from campuscard.monitoring import events, school_rules
from campuscard.platform import i18n
from campuscard.platform.actors import Actor, Grant
from tests.support import login, make_school, make_user
from tests.support_offline import CardArea, record, upload
from tests.support_payments import make_cardholder, make_device, make_merchant, pay

MIGRATION = Path(migrate.__file__).parent / "migrations" / "0700_monitoring_ledger_events.sql"


async def _watch(pool: PgPool, school_id: int, **rules: dict[str, Any]) -> Actor:
    admin = Actor(
        "admin", school_id=school_id, grants=frozenset({Grant("school_admin", school_id)})
    )
    rules["delivery"] = {"quiet_start": "00:00", "quiet_end": "00:00", "cooldown_hours": 0}
    for rule, thresholds in rules.items():
        await school_rules.do_set_rule(
            pool, admin, school_id, rule, enabled=True, thresholds=thresholds
        )
    return admin


async def _alerts(pool: PgPool) -> list[tuple[str, str, str]]:
    rows = await pool.fetch("SELECT rule, source, reason FROM monitoring_alerts ORDER BY id")
    return [(r["rule"], r["source"], i18n.word("zh-CN", r["reason"])) for r in rows]


async def test_offline_sales_are_judged_when_uploaded_at_the_time_they_were_made(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given: large payments from 40.00 yuan, night spending 00:30-05:00 and low balance watched
    async with pool.acquire() as conn:
        school = await make_school(conn)
        canteen, window = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, canteen, "POS-OFF-M", outlet_id=window)
        _, card = await make_cardholder(conn, school.id, "S1", cash=6_000)
    await _watch(pool, school.id, big_spend={"absolute": 4000}, night_spend={}, low_balance={})
    # when: the till, offline, sold 45.00 at 01:10 and 8.00 at 12:00 yesterday (school time),
    # and uploads both now
    tz = ZoneInfo("Asia/Shanghai")
    day = datetime.now(tz).date().toordinal() - 1
    night = datetime.fromordinal(day).replace(hour=1, minute=10, tzinfo=tz)
    noon = night.replace(hour=12, minute=0)
    area = CardArea()
    records = [
        record(dev, card, area, 1, 4500, made_at=int(night.timestamp())),
        record(dev, card, area, 2, 800, made_at=int(noon.timestamp())),
    ]
    await upload(client, dev, records)
    # then: the payment scan sees nothing; the ledger scan judges each sale
    assert (await events.scan_school(pool, school.id)).alerts == 0
    result = await events.scan_ledger(pool, school.id)
    assert result.payments == 1  # one upload booking
    found = await _alerts(pool)
    assert [(r, s) for r, s, _ in found] == [
        ("big_spend", "offline:POS-OFF-M:1"),
        ("night_spend", "offline:POS-OFF-M:1"),
        ("low_balance", f"ledger:{await _offline_tx(pool)}"),
    ]
    assert "单笔消费 ¥45.00" in found[0][2] and "01:10 消费 ¥45.00" in found[1][2]
    assert "可用余额 ¥7.00" in found[2][2]
    occurred = await pool.fetchval(
        "SELECT occurred_at FROM monitoring_alerts WHERE rule = 'night_spend'"
    )
    assert occurred == night
    # read once: scanning again raises nothing
    assert (await events.scan_ledger(pool, school.id)).payments == 0


async def _offline_tx(pool: PgPool) -> int:
    tx_id: int = await pool.fetchval("SELECT DISTINCT tx_id FROM offline_records")
    return tx_id


async def test_money_in_that_leaves_the_balance_low_says_so_and_enough_money_says_nothing(
    pool: PgPool, settings: Settings, client: httpx.AsyncClient
) -> None:
    # given: a student with 30.00 yuan, low balance watched below 15.00, a refunding cashier
    # and a counter operator with an open drawer
    async with pool.acquire() as conn:
        school = await make_school(conn)
        canteen, window = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, canteen, "POS-MI-1", outlet_id=window)
        _, card = await make_cardholder(conn, school.id, "S1", cash=3_000)
        cashier = await make_user(conn, "cashier", "merchant_staff", school.id, merchant_id=canteen)
        await conn.execute(
            "INSERT INTO merchant_permissions(school_id, user_id, merchant_id, permission) "
            "VALUES ($1, $2, $3, 'refund')",
            school.id,
            cashier,
            canteen,
        )
        operator_id = await make_user(conn, "desk", "settlement", school.id)
    await _watch(pool, school.id, low_balance={"below": 1500})
    operator = Actor(
        "desk",
        user_id=operator_id,
        school_id=school.id,
        grants=frozenset({Grant("settlement", school.id)}),
    )
    await counter.do_open_drawer(pool, operator, school.id)
    staff = await login(client, "cashier", school.code)
    # a payment of 20.00 leaves 10.00: the low-balance alert of this fall
    paid = (await pay(client, dev, card, "20.00")).json()
    await events.scan_school(pool, school.id)
    assert [r for r, _, _ in await _alerts(pool)] == ["low_balance"]

    # when: 2.00 of it is refunded (12.00, still below 15.00)
    r = await client.post(
        f"/api/v1/payments/{paid['payment_id']}/refunds",
        json={"client_id": "refund-mi-01", "amount": "2.00"},
        headers=staff,
    )
    assert r.status_code == 200, r.text
    await events.scan_ledger(pool, school.id)
    # then: a new fall, said at once with the refund as its source
    second = (await _alerts(pool))[1]
    assert second[0] == "low_balance" and second[1].startswith("ledger:")
    assert "可用余额 ¥12.00，低于 ¥15.00" in second[2]
    # and the next payment in this fall does not say it again
    assert (await pay(client, dev, card, "1.00")).status_code == 200
    await events.scan_school(pool, school.id)
    assert len(await _alerts(pool)) == 2

    # when: 2.00 is topped up at the counter (13.00, still low), then 50.00 (63.00)
    for n, amount in enumerate(("2.00", "50.00")):
        await counter.do_counter_op(
            pool,
            operator,
            school.id,
            kind="deposit",
            client_id=f"desk-dep-{n:04d}",
            person_number="S1",
            amount=Money.parse(amount),
        )
        await events.scan_ledger(pool, school.id)
    # then: the first top-up says the balance is still low; the second says nothing
    found = await _alerts(pool)
    assert len(found) == 3 and "可用余额 ¥13.00" in found[2][2]


def test_the_scan_reads_the_kinds_its_index_holds() -> None:
    """The partial index over the journal lists the kinds the ledger scan reads."""
    text = MIGRATION.read_text(encoding="utf-8")
    assert f"WHERE kind IN ({events.LEDGER_KINDS_SQL})" in text
