"""The browser session: its cookie and the CSRF check, the same for API calls and pages.

A browser sends the session cookie by itself, so a write signed in by the cookie must also
prove it comes from our page: the session's CSRF token in the ``X-CSRF-Token`` header (the
pages' scripts and HTMX send it) or, for a plain form, in its ``csrf_token`` field."""

from __future__ import annotations

import hmac

from fastapi import Request, Response

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform import auth
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Forbidden

SESSION_COOKIE = "cc_session"
CSRF_HEADER = "x-csrf-token"  # the page's token, sent by its scripts and by HTMX
CSRF_FIELD = "csrf_token"  # the same token in a form
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_token(request: Request) -> str | None:
    """The session cookie's token, if the browser sent one."""
    return request.cookies.get(SESSION_COOKIE) or None


async def resolve_cookie_session(pool: PgPool, settings: Settings, token: str) -> tuple[Actor, str]:
    """Who the cookie's session belongs to, and the session's CSRF token (raises when the
    session is unknown or expired)."""
    return await auth.resolve_session(pool, settings, token, "web")


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/"
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def csrf_matches(sent: str | None, expected: str) -> bool:
    """Whether the token sent with a write is the session's (compared in constant time)."""
    return bool(sent) and bool(expected) and hmac.compare_digest(sent or "", expected)


def check_csrf(sent: str | None, expected: str, *, message: str, field: str) -> None:
    """Refuse a write whose CSRF token is missing or is not the session's."""
    if not csrf_matches(sent, expected):
        raise Forbidden(message, code="CSRF_FAILED", field=field)
