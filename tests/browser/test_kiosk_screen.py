"""The kiosk's touch screen as a new student meets it (issue 21, finding 9): the pickup answers
in one language — the screen's — and the card that comes out has a 12-digit number like
every other card."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from campuscard.adapters.dispenser.serial import SerialDispenser
from campuscard.adapters.dispenser.simulator import DispenserSimulator
from campuscard.clients.kiosk_agent import KioskAgent
from campuscard.config import Settings
from campuscard.platform.signing import derive_terminal_key
from campuscard.web.kiosk.routes import create_kiosk_app
from tests.browser.conftest import shot
from tests.integration.test_kiosk_pickup import parent_applies
from tests.servers import serve_in_thread
from tests.support_issuing import make_campus, make_kiosk

pytestmark = pytest.mark.browser

LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


async def test_the_kiosk_hands_out_a_card_speaking_only_the_screens_language(
    browser: BrowserContext,
    conn: asyncpg.Connection[Any],
    pool: Any,
    live_url: str,
    settings: Settings,
) -> None:
    # given a kiosk with a card dispenser, and two parents' pickup codes
    campus = await make_campus(conn)
    await make_kiosk(conn, campus, "KIOSK-S1")
    first = await parent_applies(pool, settings, campus, 1)
    second = await parent_applies(pool, settings, campus, 2)
    dispenser = DispenserSimulator()
    port = await dispenser.start()
    key = derive_terminal_key(settings.master_key.get_secret_value(), "KIOSK-S1", 1)
    # the agent runs in the kiosk server's thread: keep no connection open past a request, so
    # nothing of that thread's loop is left to close from this one
    platform = httpx.AsyncClient(
        base_url=live_url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    )
    agent = KioskAgent(
        platform, sn="KIOSK-S1", terminal_key=key, dispenser=SerialDispenser("127.0.0.1", port)
    )
    try:
        with serve_in_thread(create_kiosk_app(agent)) as kiosk_url:
            page = await browser.new_page()
            await page.set_viewport_size({"width": 1080, "height": 1920})

            # when a student types the first code on the Chinese screen
            await page.goto(f"{kiosk_url}/pickup")
            await page.get_by_test_id("code").fill(first)
            await page.get_by_role("button", name="取卡").click()
            # then the card comes out, the message is Chinese only, the number has 12 digits
            message = page.get_by_test_id("pickup-message")
            await expect(message).to_contain_text("取卡成功")
            text = await message.inner_text()
            assert not LATIN_WORD.search(text), text
            number = re.search(r"\d+", text)
            assert number is not None and len(number.group()) == 12, text
            assert dispenser.issued[0].number == number.group()
            await shot(page, "kiosk-pickup-zh")

            # when the next student switches the screen to English
            await page.context.add_cookies([{"name": "cc_lang", "value": "en", "url": kiosk_url}])
            await page.goto(f"{kiosk_url}/pickup")
            await page.get_by_test_id("code").fill(second)
            await page.get_by_role("button", name="Get my card").click()
            # then the same answer is English only
            await expect(message).to_contain_text("Card issued")
            text = await message.inner_text()
            assert not re.search(r"[\u4e00-\u9fff]", text), text
            await shot(page, "kiosk-pickup-en")
    finally:
        await platform.aclose()
        await dispenser.stop()
