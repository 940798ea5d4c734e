"""Every page of every role in both languages, in Chromium: a Chinese page shows no catalog key,
no raw enum or error code; an English page shows no Chinese interface text (names and other
data the school typed excepted). Screenshots of each area in both languages go to
test-artifacts/."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, Page

from tests.browser.conftest import shot, sign_in
from tests.integration.test_web_roles_crawl import ROLE_AREAS, SKIP, _campus
from tests.support import PASSWORD

pytestmark = pytest.mark.browser

CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]+")
KEY = re.compile(
    r"\b(?:[ampk]|tx|card|err|field|error|nav|login|purse|confirm)\.[a-z_]+(?:\.[a-zA-Z_]+)*\b"
)
SNAKE = re.compile(r"\b[a-z]+_[a-z_]+\b")
CODE = re.compile(r"\b[A-Z]{2,}_[A-Z_]{2,}\b")
PHONE_ROLES = {"cardholder", "guardian"}
MAX_PAGES = 40


async def _crawl(page: Page, base: str) -> list[str]:
    seen: list[str] = []
    queue = ["/"]
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        if url in seen or url.startswith(SKIP) or url.startswith("/api/") or "export" in url:
            continue
        response = await page.goto(base + url)
        if response is None or "text/html" not in (response.headers.get("content-type") or ""):
            continue
        here = page.url.removeprefix(base)
        if here != url and here in seen:
            continue
        seen.append(here)
        links = await page.eval_on_selector_all(
            "a[href^='/']", "els => els.map(e => e.getAttribute('href'))"
        )
        queue.extend(link for link in links if link not in seen)
    return seen


async def _visible_text(page: Page) -> str:
    """The page's words, without what is marked translate="no" (recorded data, such as the
    audit log's before/after)."""
    return str(
        await page.evaluate(
            """() => { const body = document.body.cloneNode(true);
                       body.querySelectorAll('[translate=no]').forEach(e => e.remove());
                       document.documentElement.appendChild(body); body.hidden = false;
                       const text = body.innerText; body.remove(); return text; }"""
        )
    )


@pytest.mark.parametrize("role", sorted(ROLE_AREAS))
async def test_no_page_mixes_languages(
    role: str, live_url: str, browser: BrowserContext, conn: asyncpg.Connection[Any]
) -> None:
    campus = await _campus(conn)
    username, school = campus["users"][role]
    # data the school typed: names of schools, people, classes, merchants, outlets, provinces
    data: set[str] = set()
    for sql in (
        "SELECT name FROM schools",
        "SELECT name FROM persons",
        "SELECT name FROM classes",
        "SELECT name FROM merchants",
        "SELECT name FROM outlets",
        "SELECT name FROM provinces",
    ):
        data |= {r["name"] for r in await conn.fetch(sql)}
    page = await browser.new_page()
    if role not in PHONE_ROLES:
        await page.set_viewport_size({"width": 1366, "height": 900})
    await sign_in(page, live_url, username, school, PASSWORD)
    pages = await _crawl(page, live_url)
    assert len(pages) > 1, pages
    leaks: list[tuple[str, str, str]] = []
    for lang in ("zh-CN", "en"):
        await page.goto(f"{live_url}/lang/{lang}?next=/")
        for url in pages:
            await page.goto(live_url + url)
            text = await _visible_text(page)
            if lang == "zh-CN":
                for pattern in (KEY, SNAKE, CODE):
                    leaks += [(lang, url, m) for m in pattern.findall(text)]
            else:
                for name in sorted(data, key=len, reverse=True):
                    text = text.replace(name, "")
                text = text.replace("中文", "")  # the language switch names its language
                leaks += [(lang, url, m) for m in CJK.findall(text)]
        await shot(page, f"languages-{role}-{lang}")
    assert not leaks, sorted(set(leaks))
