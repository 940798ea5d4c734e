"""The shop's orders in a browser: the merchant's staff see the orders with their state, hear
live when a buyer pays (a notice, the list refreshed in place), open a printable slip and the
same slip as plain text for a 58 mm receipt printer."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.orders import buying, shop
from campuscard.orders.slips import WIDTH, columns
from tests.browser.conftest import shot, sign_in
from tests.support import PASSWORD, make_user
from tests.support_orders import campus_store, cid, new_order

pytestmark = pytest.mark.browser


async def test_the_shop_sees_its_orders_live_and_prints_a_slip(
    live_url: str, browser: BrowserContext, pool: PgPool, conn: Conn, settings: Settings
) -> None:
    # given a campus store with one order waiting for payment and one finished
    s = await campus_store(conn, settings)
    await make_user(conn, "store", "merchant_staff", s.school_id, merchant_id=s.merchant_id)
    waiting = await shop.do_create_order(conn, s.shop, new_order("SO-7001"))
    done = await shop.do_create_order(conn, s.shop, new_order("SO-7002", "B002"))
    await buying.do_pay(pool, s.holders[1], s.school_id, done["id"], client_id=cid())
    await buying.do_confirm(pool, s.holders[1], s.school_id, done["id"], client_id=cid())
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1024, "height": 800})
    await sign_in(page, live_url, "store", "TST", PASSWORD)
    await page.goto(f"{live_url}/pos/orders")
    await expect(page.get_by_test_id("state-SO-7001")).to_have_text("等待买家付款")
    await expect(page.get_by_test_id("state-SO-7002")).to_have_text("交易完成")
    # when the buyer pays the waiting order on the phone
    await expect(page.locator("[data-order-events][data-ready]")).to_have_count(1)
    paid = await buying.do_pay(pool, s.holders[0], s.school_id, waiting["id"], client_id=cid())
    assert paid.status == 200
    # then the page says so and the row changes without a reload
    await expect(page.get_by_test_id("order-notice")).to_contain_text("SO-7001", timeout=10_000)
    await expect(page.get_by_test_id("state-SO-7001")).to_have_text("买家已付款，等待发货")
    await shot(page, "merchant-orders-live")
    # the slip shows the lines, the money held and the plain-text layout
    await page.click("a:text('SO-7001')")
    await expect(page.get_by_test_id("slip-amount")).to_have_text("¥60.00")
    await expect(page.get_by_test_id("slip-history")).to_contain_text("买家付款（冻结）")
    text = await page.get_by_test_id("slip-text").inner_text()
    assert "高等数学（上）" in text and "¥60.00" in text
    await shot(page, "merchant-order-slip")
    # the .txt is the same slip, 32 columns wide at most
    cookies = {c["name"]: c["value"] for c in await browser.cookies(live_url)}
    async with httpx.AsyncClient(base_url=live_url, cookies=cookies) as client:
        r = await client.get(f"/pos/orders/{waiting['id']}/receipt.txt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert all(columns(line) <= WIDTH for line in r.text.splitlines())
    assert "SO-7001" in r.text
