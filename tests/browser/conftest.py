"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium) against CampusCard
served on a free loopback port. Screenshots of each main page go to test-artifacts/."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from campuscard.app import create_app
from campuscard.config import Settings
from tests.servers import serve_in_thread

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """CampusCard on 127.0.0.1 with its own pool (it runs in the server thread's loop)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run make browsers")
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[BrowserContext]:
    profile = tempfile.mkdtemp(prefix="cc-chromium-")
    try:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                locale="zh-CN",
                viewport={"width": 390, "height": 844},
            )
            try:
                yield context
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


async def key_in(page: Page, amount: str) -> None:
    """Clear the till's keypad and type ``amount`` as a cashier does, once the page's script has bound
    the keypad (a click before that is lost: the amount would be short of a digit), and see it
    on the display."""
    await expect(page.locator("[data-keypad][data-bound='1']")).to_have_count(1)
    for key in "C" + amount:  # cleared first, as after a refusal the amount stays
        await page.click(f"[data-key='{key}']")
    await expect(page.get_by_test_id("amount-display")).to_have_text(amount)


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page, base: str, username: str, school: str | None, password: str) -> None:
    await page.goto(f"{base}/login")
    if school:
        await page.fill("input[name=school]", school)
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit].primary")
    await page.wait_for_load_state("domcontentloaded")
