"""The console's devices page, as a school's finance office reads it: a shower with its tier
ladder and limits and a session running (money on hold), and a day of offline uploads from a
till with a resend, a gap, a refusal, a chain break, an overdraft and a record still waiting,
each said in words, in Chinese and in English; the canteen's manager reads the same report for
the canteen's own tills."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from campuscard.db.tx import transaction
from campuscard.metering import sessions
from campuscard.metering.demo import TARIFFS
from campuscard.offline import ingest, rules
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_school, make_user
from tests.support_payments import Device, make_cardholder, make_device, make_merchant

pytestmark = pytest.mark.browser


def _rec(
    dev: Device, card: dict[str, Any], seq: int, amount: int, counter: int, before: int
) -> rules.Record:
    r = rules.Record(
        seq,
        card["number"],
        card["uid"],
        amount,
        1_795_000_000 + seq * 60,
        counter,
        before,
        before + amount,
        dev.key_version,
        "",
    )
    return rules.Record(**{**r.__dict__, "signature": rules.sign_record(dev.key, dev.sn, r)})


async def _upload(conn: asyncpg.Connection[Any], dev: Device, records: list[rules.Record]) -> Any:
    async with transaction(conn) as tx:
        return await ingest.ingest_verified(tx, dev.school_id, dev.id, records, [], len(records))


async def test_a_finance_office_reads_devices_holds_and_offline_uploads(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a shower with the demo ladder, a student showering now (5.00 on hold) ...
    school = await make_school(conn)
    merchant_id, _ = await make_merchant(conn, school.id)
    shower = await make_device(conn, settings, school.id, merchant_id, "SHOWER-T-1")
    async with transaction(conn) as tx:
        await sessions.do_configure_meter.in_tx(
            tx, school.id, shower.id, TARIFFS["SHOWER-DEMO-001"]
        )
    _, a = await make_cardholder(conn, school.id, "S001", cash=1_000)
    _, b = await make_cardholder(conn, school.id, "S002", cash=5_000)
    async with transaction(conn) as tx:
        await sessions.do_start_session.in_tx(
            tx,
            school.id,
            shower.id,
            session_key="t-shower-0001",
            card_number=b["number"],
            card_uid=b["uid"],
        )
    await make_user(conn, "ops", "school_admin", school.id)
    await make_user(conn, "boss", "merchant_manager", school.id, merchant_id=merchant_id)

    # ... and a till's day offline: A spends 5.00 then 8.00 with 10.00 (3.00 overdrawn), a
    # stranger's card, record 3 never sent, B's counter 1 used twice, B's sale no. 5 waiting;
    # record 1 comes twice
    till = await make_device(conn, settings, school.id, merchant_id, "POS-OFF-T1")
    stranger = {"number": "990000000001", "uid": "0BADCAFE"}
    first = [
        _rec(till, a, 1, 500, 1, 0),
        _rec(till, a, 2, 800, 2, 500),
        _rec(till, stranger, 4, 100, 1, 0),
        _rec(till, b, 5, 300, 1, 0),
    ]
    await _upload(conn, till, first)
    second = await _upload(
        conn, till, [first[0], _rec(till, b, 6, 200, 1, 0), _rec(till, b, 7, 100, 5, 300)]
    )
    assert (second.duplicates, second.chain_breaks, second.waiting) == (1, 1, 1)

    # when the school admin opens the devices page
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1280, "height": 900})
    await sign_in(page, live_url, "ops", school.code, PASSWORD)
    await page.goto(f"{live_url}/admin/s/{school.code}/devices")

    # then the shower's ladder and limits read as prices and caps, with its session running
    meter = page.get_by_test_id("meter-SHOWER-T-1")
    await expect(meter).to_contain_text("第0–600秒每秒 ¥0.005")
    await expect(meter).to_contain_text("1200秒以上每秒 ¥0.02")
    await expect(meter).to_contain_text("每次最多 ¥10.00")
    await expect(meter).to_contain_text("两次之间至少隔 300 秒")
    await expect(page.get_by_test_id("running-SHOWER-T-1")).to_have_text("1 个正在使用")
    hold = page.get_by_test_id("holds-table")
    await expect(hold).to_contain_text("浴室")
    await expect(hold).to_contain_text("S002")
    await expect(page.get_by_test_id("holds-total")).to_contain_text("1 笔")

    # and the day's uploads: received, stored, duplicates, refused, chain breaks, overdrafts
    day = page.locator("[data-testid^='day-2']").first
    await expect(day.locator("td")).to_have_text(["1", "7", "5", "1", "1", "1", "1 (¥3.00)"])
    await expect(page.get_by_test_id("day-till-POS-OFF-T1")).to_contain_text("还缺 1 笔")
    await expect(page.get_by_test_id("offline-debts")).to_contain_text(
        "1 位持卡人还欠离线透支 ¥3.00"
    )
    await expect(page.get_by_test_id("overdraft-POS-OFF-T1-2")).to_contain_text("透支 ¥3.00")
    await expect(page.get_by_test_id("break-POS-OFF-T1-6")).to_contain_text("卡上计数 1 已经用过")
    await expect(page.get_by_test_id("notable-POS-OFF-T1-4")).to_contain_text("本校没有这张卡")
    await expect(page.get_by_test_id("notable-POS-OFF-T1-7")).to_contain_text("第 5 笔之前")
    await shot(page, "console-devices-zh")

    # in English the same page speaks English
    await page.goto(f"{live_url}/lang/en?next=/admin/s/{school.code}/devices")
    await expect(meter).to_contain_text("0–600: ¥0.005 per second")
    await expect(page.get_by_test_id("break-POS-OFF-T1-6")).to_contain_text(
        "card counter 1 was used before"
    )
    await expect(page.get_by_test_id("offline-debts")).to_contain_text(
        "Holders still owing offline overdraft: 1, CN¥3.00 in all"
    )
    await shot(page, "console-devices-en")

    # the canteen's manager reads the same report for the canteen's own tills (no debts)
    await page.click("button.link")  # sign out
    await sign_in(page, live_url, "boss", school.code, PASSWORD)
    await page.goto(f"{live_url}/pos/offline")
    await expect(page.get_by_test_id("day-till-POS-OFF-T1")).to_contain_text("1 still missing")
    await expect(page.get_by_test_id("overdraft-POS-OFF-T1-2")).to_contain_text("¥3.00 overdrawn")
    await expect(page.get_by_test_id("offline-debts")).to_have_count(0)
    await shot(page, "pos-offline-report-en")
