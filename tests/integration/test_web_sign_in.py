"""Sign-in, sign-out, CSRF, idle timeout, the language switch and error pages."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.support import make_school, make_student, make_user
from tests.support_web import csrf_from, page_csrf, web_login


async def test_student_signs_in_and_lands_on_the_phone_home(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # given
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S001", cash=12345, subsidy=500)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    # when
    r = await web_login(client, "S001", school.code)
    # then
    assert r.headers["location"] == "/m/"
    cookie = r.headers["set-cookie"]
    assert "cc_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = await client.get("/m/")
    assert home.status_code == 200
    assert 'data-testid="balance-total">¥128.45<' in home.text
    assert 'data-testid="purse-cash">¥123.45<' in home.text
    assert 'data-testid="purse-subsidy">¥5.00<' in home.text
    assert home.headers["content-security-policy"].startswith("default-src 'self'")


async def test_wrong_password_shows_the_form_again_and_sets_no_session(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "ops", "school_admin", school.id)
    form = await client.get("/login")
    r = await client.post(
        "/login",
        data={
            "username": "ops",
            "password": "nope-nope",
            "school": school.code,
            "csrf_token": csrf_from(form.text),
        },
    )
    assert r.status_code == 401
    assert 'data-testid="login-error"' in r.text
    assert "cc_session" not in r.headers.get("set-cookie", "")


async def test_login_form_without_its_csrf_cookie_is_refused(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "ops", "school_admin", school.id)
    r = await client.post(
        "/login",
        data={
            "username": "ops",
            "password": "correct-horse-battery",
            "school": school.code,
            "csrf_token": "forged",
        },
    )
    assert r.status_code == 403
    assert "CSRF_FAILED" in r.text


async def test_post_without_csrf_token_changes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # given a signed-in admin
    school = await make_school(conn)
    await make_user(conn, "ops", "school_admin", school.id)
    await web_login(client, "ops", school.code)
    # when a forged form posts without the token
    r = await client.post(f"/admin/s/{school.code}/classes", data={"name": "伪造班"})
    # then it is refused with a page, and no class exists
    assert r.status_code == 403
    assert 'data-testid="error-page"' in r.text
    assert await conn.fetchval("SELECT count(*) FROM classes WHERE name = '伪造班'") == 0
    # and with the token it works
    token = await page_csrf(client, f"/admin/s/{school.code}/classes")
    ok = await client.post(
        f"/admin/s/{school.code}/classes", data={"name": "真班", "csrf_token": token}
    )
    assert ok.status_code == 303
    assert await conn.fetchval("SELECT count(*) FROM classes WHERE name = '真班'") == 1


async def test_logout_revokes_the_session(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "ops", "school_admin", school.id)
    await web_login(client, "ops", school.code)
    token = await page_csrf(client, f"/admin/s/{school.code}/")
    old_cookie = client.cookies.get("cc_session")
    r = await client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303
    # the old cookie no longer works even if replayed
    client.cookies.set("cc_session", old_cookie or "")
    again = await client.get(f"/admin/s/{school.code}/")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/login?next=")


async def test_idle_session_is_sent_to_sign_in_with_a_notice(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "ops", "school_admin", school.id)
    await web_login(client, "ops", school.code)
    await conn.execute("UPDATE auth_sessions SET expires_at = now() - interval '1 second'")
    r = await client.get(f"/admin/s/{school.code}/people")
    assert r.status_code == 303
    assert "expired=1" in r.headers["location"]
    login = await client.get(r.headers["location"])
    assert "长时间未操作" in login.text


async def test_language_follows_browser_then_switch(
    client: httpx.AsyncClient,
) -> None:
    zh = await client.get("/login", headers={"accept-language": "zh-TW,zh;q=0.9,en;q=0.5"})
    assert '<html lang="zh-CN">' in zh.text and "登录" in zh.text
    en = await client.get("/login", headers={"accept-language": "en-GB,en;q=0.8"})
    assert '<html lang="en">' in en.text and "Sign in" in en.text
    switch = await client.get("/lang/en?next=/login")
    assert switch.status_code == 303 and switch.headers["location"] == "/login"
    after = await client.get("/login", headers={"accept-language": "zh-CN"})
    assert '<html lang="en">' in after.text


async def test_language_switch_never_redirects_off_site(client: httpx.AsyncClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil"):
        r = await client.get("/lang/zh-CN", params={"next": target})
        assert r.headers["location"] == "/"


async def test_error_pages_use_the_layout(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    await make_user(conn, "ops", "school_admin", school.id)
    await web_login(client, "ops", school.code)
    missing = await client.get("/no/such/page")
    assert missing.status_code == 404 and 'data-testid="error-page"' in missing.text
    bad = await client.get(f"/admin/s/{school.code}/people/not-a-number")
    assert bad.status_code == 422 and 'data-testid="error-page"' in bad.text
    other = await client.get("/admin/s/NOPE/")
    assert other.status_code == 404
    # the API keeps answering JSON
    api = await client.get("/api/v1/nothing")
    assert api.status_code == 404 and api.json()["error"]["code"] == "NOT_FOUND"


async def test_filter_forms_with_untouched_fields_work(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    """Browsers submit empty strings for untouched fields; they mean "no filter"."""
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S001", cash=100)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    await make_user(conn, "ops", "school_admin", school.id)
    await web_login(client, "S001", school.code)
    r = await client.get("/m/transactions?purse=&direction=&kind=&from=&to=")
    assert r.status_code == 200
    bad = await client.get("/m/transactions?from=2026-13-01")
    assert bad.status_code == 422 and "from" in bad.text
    await web_login(client, "ops", school.code)
    assert (await client.get(f"/admin/s/{school.code}/people?q=&class=")).status_code == 200
    assert (await client.get(f"/admin/s/{school.code}/reports?from=&to=")).status_code == 200
    flipped = await client.get(f"/admin/s/{school.code}/reports?from=2026-02-01&to=2026-01-01")
    assert flipped.status_code == 422


async def test_api_writes_signed_in_by_the_cookie_need_the_pages_csrf_token(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    # the browser sends the session cookie to the API by itself; another site's form or
    # script must not be able to write with it
    school = await make_school(conn)
    person = await make_student(conn, school.id, "S001", cash=1000)
    await make_user(conn, "S001", "cardholder", school.id, person_id=person)
    await web_login(client, "S001", school.code)
    token = await page_csrf(client)
    # reads need no token
    assert (await client.get("/api/v1/me/paycode/devices")).status_code == 200
    # a write without the token, or with another, changes nothing
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        r = await client.post("/api/v1/me/paycode/devices", json={"label": "x"}, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == {
            "code": "CSRF_FAILED",
            "field": "X-CSRF-Token",
            "message": r.json()["error"]["message"],
        }
    assert await conn.fetchval("SELECT count(*) FROM paycode_devices") == 0
    # with the page's token it works
    r = await client.post(
        "/api/v1/me/paycode/devices", json={"label": "x"}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 201, r.text
