"""Builders for page tests: sign in through the real form, read CSRF tokens from pages."""

from __future__ import annotations

import re

import httpx

from tests.support import PASSWORD

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


async def web_login(
    client: httpx.AsyncClient, username: str, school: str | None, password: str = PASSWORD
) -> httpx.Response:
    """Sign in with the form (pre-session CSRF cookie included); returns the redirect."""
    client.cookies.clear()  # a signed-in browser is sent past the form
    form = await client.get("/login")
    assert form.status_code == 200, form.text
    r = await client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "school": school or "",
            "csrf_token": csrf_from(form.text),
        },
    )
    assert r.status_code == 303, r.text
    return r


async def page_csrf(client: httpx.AsyncClient, path: str = "/account") -> str:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    return csrf_from(r.text)
