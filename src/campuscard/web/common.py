"""Pages every audience shares: sign in, sign out, the language switch, the landing redirect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from campuscard.edge.deps import AppSettings, Pool
from campuscard.edge.session import clear_session_cookie, session_token, set_session_cookie
from campuscard.platform import auth
from campuscard.platform.errors import DomainError
from campuscard.web import core, i18n, menu
from campuscard.web.core import AnyPage, PostPage, UserPage, redirect, render, safe_next

router = APIRouter(include_in_schema=False)

SCHOOL_COOKIE = "cc_school"  # remembers the school code typed at the last sign-in
YEAR = 365 * 24 * 3600


@router.get("/")
async def landing(page: AnyPage) -> Response:
    if page.user is None:
        return redirect("/login")
    return redirect(menu.home_for(page.user))


@router.get("/login")
async def login_form(
    page: AnyPage,
    next_url: Annotated[str | None, Query(alias="next", max_length=500)] = None,
    expired: Annotated[int, Query(ge=0, le=1)] = 0,
    school: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    if page.user is not None:
        return redirect(safe_next(next_url, menu.home_for(page.user)))
    return _login_page(
        page,
        next_url=safe_next(next_url, ""),
        school=school or page.request.cookies.get(SCHOOL_COOKIE, ""),
        notice="login.expired" if expired else "",
    )


def _login_page(
    page: AnyPage,
    *,
    next_url: str,
    school: str,
    username: str = "",
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> Response:
    pre_csrf = page.request.cookies.get(core.PRE_CSRF_COOKIE) or core.new_pre_csrf()
    response = render(
        page,
        "login.html",
        status=status,
        next_url=next_url,
        school=school,
        username=username,
        error=error,
        notice=notice,
        pre_csrf=pre_csrf,
    )
    response.set_cookie(
        core.PRE_CSRF_COOKIE,
        pre_csrf,
        httponly=True,
        samesite="strict",
        secure=core.is_secure(page.request),
        path="/login",
    )
    return response


@router.post("/login")
async def login_submit(
    page: AnyPage,
    pool: Pool,
    settings: AppSettings,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    school: Annotated[str, Form(max_length=32)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=500)] = "",
) -> Response:
    school = school.strip()
    core.check_pre_csrf(page.request, csrf_token)
    try:
        session = await auth.login(
            pool,
            settings,
            username=username.strip(),
            password=password,
            school_code=school or None,
            kind="web",
        )
    except DomainError as err:
        key = {
            "LOGIN_FAILED": "login.failed",
            "ACCOUNT_LOCKED": "login.locked",
            "FIELD_REQUIRED": f"login.required.{err.field}",
        }.get(err.code, "login.failed")
        return _login_page(
            page,
            next_url=safe_next(next_url, ""),
            school=school,
            username=username,
            error=key,
            status=err.status,
        )
    response = redirect(safe_next(next_url, menu.home_for(session.actor)))
    set_session_cookie(response, session.token, secure=core.is_secure(page.request))
    response.set_cookie(SCHOOL_COOKIE, school, max_age=YEAR, samesite="lax", path="/")
    response.delete_cookie(core.PRE_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(page: PostPage, pool: Pool) -> Response:
    token = session_token(page.request)
    if token:
        await auth.logout(pool, token)
    response = redirect("/login")
    clear_session_cookie(response)
    return response


@router.get("/lang/{locale}")
async def switch_language(
    page: AnyPage,
    pool: Pool,
    locale: str,
    next_url: Annotated[str | None, Query(alias="next", max_length=500)] = None,
) -> Response:
    """The switch on every page: a preference (cookie, and for someone signed in the language
    their SMS is worded in), so a plain link is safe."""
    if locale not in i18n.LOCALES:
        raise DomainError(
            f"unsupported language {locale!r}", code="UNKNOWN_LOCALE", field="locale", status=404
        )
    if page.user is not None and page.user.user_id is not None:
        await auth.set_locale(pool, page.user.user_id, locale)
    response = redirect(safe_next(next_url, "/"))
    response.set_cookie(i18n.LANG_COOKIE, locale, max_age=YEAR, samesite="lax", path="/")
    return response


@router.get("/account")
async def account(page: UserPage) -> Response:
    """Signed in but with no area of the site (e.g. a role not granted yet)."""
    return render(page, "account.html")
