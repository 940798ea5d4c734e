"""The payment-code screen in Chromium: bind the phone, the page's own JavaScript makes the
code the server accepts, the QR and Code 128 on screen decode back to it, a new code is made
with the network off, and a payment shows up live."""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import asyncpg
import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import BrowserContext, expect

from campuscard.config import Settings
from campuscard.payments import codes
from campuscard.platform import notifications
from tests.browser.conftest import ARTIFACTS, shot, sign_in
from tests.support import PASSWORD, make_school, make_student, make_user
from tests.support_paycodes import make_holder

pytestmark = pytest.mark.browser

BIND_WAIT_MS = 20_000


def decode(png: bytes) -> list[tuple[str, str]]:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return [(b.text, b.format.name) for b in found]


async def test_bind_show_code_offline_and_see_the_payment_live(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a student signed in on the phone
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S100", cash=10_000, name="李雷")
    await make_user(conn, "S100", "cardholder", school.id, person_id=person)
    page = await browser.new_page()
    await sign_in(page, live_url, "S100", school.code, PASSWORD)
    await page.click("[data-menu='m.paycode']")
    await expect(page.get_by_test_id("paycode-bind")).to_be_visible()
    # when the phone is bound
    await page.get_by_test_id("paycode-bind").click()
    digits = page.get_by_test_id("paycode-digits")
    # binding is a round trip to the server, then Web Crypto derives the first code: under a
    # loaded test machine this takes longer than an ordinary expectation's 5 s
    await expect(digits).to_have_text(re.compile(r"^6\d{3}( \d{4}){4}$"), timeout=BIND_WAIT_MS)
    root = page.get_by_test_id("paycode")
    code = await root.get_attribute("data-code")
    assert code is not None and len(code) == 20
    # then the server accepts the code the page computed
    verified = await codes.check_code(conn, settings, school_id=school.id, code=code)
    assert verified.person_id == person
    # and what is on the screen decodes back to it: QR and Code 128
    assert decode(await page.get_by_test_id("paycode-qr").screenshot()) == [(code, "QRCode")]
    bar_png = await page.get_by_test_id("paycode-bar").screenshot(
        path=str(ARTIFACTS / "paycode-bar.png")
    )
    assert decode(bar_png) == [(code, "Code128")]
    await shot(page, "paycode-bound")

    # when a payment commits, the page shows it at once (server-sent events)
    await expect(root).to_have_attribute("data-online", "yes")
    async with conn.transaction():
        await notifications.publish_event(
            conn,
            {
                "type": "payment",
                "school_id": school.id,
                "person_id": person,
                "amount": "12.50",
                "merchant": "二食堂",
                "outlet": "3号窗口",
                "balance": "87.50",
            },
        )
    live = page.get_by_test_id("paycode-live")
    await expect(live).to_have_text("已在 二食堂 3号窗口 支付 ¥12.50，余额 ¥87.50")
    # the spent code was replaced by a fresh one (counter 1 in the same step)
    await expect(root).not_to_have_attribute("data-code", code)
    await shot(page, "paycode-paid")
    # a payment the engine refused is shown as such
    async with conn.transaction():
        await notifications.publish_event(
            conn,
            {
                "type": "paycode.result",
                "person_id": person,
                "ok": False,
                "amount": "5.00",
                "merchant": "二食堂",
                "outlet": "3号窗口",
                "error": "密码错误",
            },
        )
    await expect(live).to_have_text("二食堂 3号窗口 收款 ¥5.00 未成功：密码错误")

    # with the network off the page still makes codes the server accepts
    await browser.set_offline(True)
    before = await root.get_attribute("data-code")
    await page.get_by_role("button", name="换一个码").click()
    await expect(root).not_to_have_attribute("data-code", before or "")
    offline_code = await root.get_attribute("data-code")
    await browser.set_offline(False)
    assert offline_code is not None
    assert before is not None
    shown_before = await codes.check_code(
        conn, settings, school_id=school.id, code=before, now=time.time()
    )
    verified = await codes.check_code(
        conn, settings, school_id=school.id, code=offline_code, now=time.time()
    )
    assert verified.person_id == person
    # the button moved to the next code of the same time step; when the step turned over in
    # between, the page began the new step's codes instead (the test must not depend on the
    # clock's second)
    if verified.step == shown_before.step:
        assert verified.counter == shown_before.counter + 1
    else:
        assert verified.step > shown_before.step


async def test_a_phone_bound_before_scheme_6_keeps_making_codes_that_pay(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a phone bound with a salted secret before scheme 6: what its page stored then has
    # no scheme
    school = await make_school(conn)
    old = await make_holder(conn, settings, school.id, "S300", salted=True)
    page = await browser.new_page()
    await sign_in(page, live_url, "uS300", school.code, PASSWORD)
    stored = {
        "secret": old.device.secret.hex(),
        "token": old.device.token,
        "stepSeconds": old.device.step_seconds,
        "deviceId": old.device.id,
        "offsetMs": 0,
        "counter": 0,
        "counterStep": -1,
    }
    await page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [f"cc.paycode.{old.person_id}", json.dumps(stored)],
    )
    # when the student opens the payment code
    await page.goto(f"{live_url}/m/paycode")
    root = page.get_by_test_id("paycode")
    # then the page makes scheme-7 codes, as it did, and the server accepts them
    await expect(root).to_have_attribute("data-code", re.compile(r"^7\d{19}$"))
    code = await root.get_attribute("data-code")
    verified = await codes.check_code(conn, settings, school_id=school.id, code=code)
    assert (verified.person_id, verified.device_id) == (old.person_id, old.device.id)


async def test_binding_elsewhere_forgets_the_old_secret_and_unbinding_works(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S200", cash=100)
    await make_user(conn, "S200", "cardholder", school.id, person_id=person)
    page = await browser.new_page()
    await sign_in(page, live_url, "S200", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/paycode")
    await page.get_by_test_id("paycode-bind").click()
    await expect(page.get_by_test_id("paycode-digits")).not_to_be_empty(timeout=BIND_WAIT_MS)
    # the student unbinds on the page: the codes stop and the page asks to bind again
    await page.reload()
    await page.get_by_test_id("paycode-unbind").click()
    await expect(page.get_by_test_id("paycode-bind")).to_be_visible()
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM paycode_devices WHERE person_id = $1 AND status = 'active'",
            person,
        )
        == 0
    )
    # a one-time code minted by the server, for phones that cannot compute one
    await page.get_by_test_id("paycode-mint").click()
    minted = page.get_by_test_id("paycode-minted")
    await expect(minted.locator("svg")).to_have_count(2)
    assert decode(await minted.screenshot())[0][0].startswith("8")


async def test_customer_display_shows_the_amount_then_the_result(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    # given a canteen till and its cashier signed in on the display screen
    school = await make_school(conn)
    merchant_id = await conn.fetchval(
        "INSERT INTO merchants(school_id, name, channel, status) "
        "VALUES ($1, '二食堂', 'canteen', 'approved') RETURNING id",
        school.id,
    )
    outlet_id = await conn.fetchval(
        "INSERT INTO outlets(school_id, merchant_id, name) VALUES ($1, $2, '3号窗口') RETURNING id",
        school.id,
        merchant_id,
    )
    terminal_id = await conn.fetchval(
        "INSERT INTO terminals(school_id, sn, kind, merchant_id, outlet_id) "
        "VALUES ($1, 'POS-DISPLAY-1', 'pos', $2, $3) RETURNING id",
        school.id,
        merchant_id,
        outlet_id,
    )
    await make_user(conn, "cashier", "merchant_staff", school.id, merchant_id=merchant_id)
    page = await browser.new_page()
    await sign_in(page, live_url, "cashier", school.code, PASSWORD)
    await page.goto(f"{live_url}/pos/display")
    await page.click(f"a[href='/pos/display/{terminal_id}']")
    display = page.get_by_test_id("display")
    await expect(display).to_have_attribute("data-online", "yes")
    # when the cashier types 12.50 at the till
    token = await page.context.cookies()
    session = next(c["value"] for c in token if c["name"] == "cc_session")
    # as the till's keypad does: the session cookie plus the page's CSRF token
    csrf = json.loads(await page.get_attribute("body", "hx-headers") or "{}")["X-CSRF-Token"]
    async with httpx.AsyncClient(base_url=live_url, cookies={"cc_session": session}) as api:
        r = await api.put(
            f"/api/v1/terminals/{terminal_id}/display/pending",
            json={"amount": "12.50"},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200, r.text
    # then the student sees it before paying
    await expect(page.get_by_test_id("display-amount")).to_have_text("¥12.50")
    await shot(page, "display-pending")
    # and the result once the code payment is booked
    async with conn.transaction():
        await notifications.publish_event(
            conn,
            {
                "type": "paycode.result",
                "terminal_id": terminal_id,
                "school_id": school.id,
                "ok": True,
                "amount": "12.50",
                "balance": "87.50",
                "merchant": "二食堂",
                "outlet": "3号窗口",
            },
        )
    await expect(page.get_by_test_id("display-result")).to_have_text("已支付 ¥12.50，余额 ¥87.50")
    await shot(page, "display-paid")


async def test_above_the_pin_threshold_the_student_confirms_on_the_phone_page(
    live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    from tests.support_payments import device_call, make_device, make_merchant, set_pin

    # given a bound phone with 500.00, a PIN, and a canteen till
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S300", cash=50_000)
    await make_user(conn, "S300", "cardholder", school.id, person_id=person)
    await set_pin(conn, settings, person, "135790")
    merchant_id, outlet_id = await make_merchant(conn, school.id, "二食堂")
    till = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
    page = await browser.new_page()
    await sign_in(page, live_url, "S300", school.code, PASSWORD)
    await page.goto(f"{live_url}/m/paycode")
    await page.get_by_test_id("paycode-bind").click()
    root = page.get_by_test_id("paycode")
    await expect(root).to_have_attribute("data-online", "yes")
    await expect(root).to_have_attribute("data-code", re.compile(r"^6\d{19}$"))
    code = await root.get_attribute("data-code")
    assert code
    # when the till scans it for 80.00 (above the PIN threshold) without a PIN
    body = {"client_id": "qr-browser-confirm", "code": code, "amount": "80.00"}
    async with httpx.AsyncClient(base_url=live_url) as api:
        waiting = await device_call(api, till, "POST", "/api/v1/terminal/paycode/pay", body)
        assert waiting.status_code == 202, waiting.text
        # then the phone asks; the student types the PIN and confirms
        box = page.get_by_test_id("paycode-confirm")
        await expect(box).to_be_visible()
        await expect(box).to_contain_text("80.00")
        await shot(page, "paycode-confirm")
        await box.locator("input[name=pin]").fill("135790")
        await box.get_by_role("button", name="确认支付").click()
        await expect(page.get_by_test_id("paycode-live")).to_contain_text("余额 ¥420.00")
        # and the till, repeating its request, gets the receipt
        done = await device_call(api, till, "POST", "/api/v1/terminal/paycode/pay", body)
        assert done.status_code == 200, done.text
        assert done.json()["balance"] == "420.00"
