"""The HTTP edge both adapters share: the CSRF check, the session cookie, the error format with
and without a page renderer."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from campuscard.edge import errors, session
from campuscard.platform.errors import Forbidden, NotFound


def test_csrf_matches_only_the_sessions_token() -> None:
    assert session.csrf_matches("abc", "abc")
    assert not session.csrf_matches("abd", "abc")
    assert not session.csrf_matches("", "")
    assert not session.csrf_matches(None, "abc")
    assert not session.csrf_matches("abc", "")


def test_check_csrf_refuses_with_the_callers_message_and_field() -> None:
    with pytest.raises(Forbidden) as refused:
        session.check_csrf(None, "abc", message="reload the page", field="csrf_token")
    err = refused.value
    assert (err.code, err.message, err.field, err.status) == (
        "CSRF_FAILED",
        "reload the page",
        "csrf_token",
        403,
    )
    session.check_csrf("abc", "abc", message="unused", field="x")  # the right one passes


def _app(renderer: errors.PageRenderer | None) -> FastAPI:
    app = FastAPI()
    errors.install(app, page_renderer=renderer)

    @app.get("/api/thing")
    async def api_thing() -> None:
        raise NotFound("no such thing", field="thing")

    @app.get("/page")
    async def page() -> None:
        raise NotFound("no such page")

    @app.get("/cookie")
    async def cookie() -> Response:
        response = PlainTextResponse("ok")
        session.set_session_cookie(response, "tok", secure=False)
        return response

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_errors_answer_json_on_api_paths_and_call_the_page_renderer_elsewhere() -> None:
    seen: list[tuple[int, str, str, str | None]] = []

    async def render(
        request: Request, status: int, code: str, message: str, field: str | None
    ) -> Response:
        seen.append((status, code, message, field))
        return PlainTextResponse(f"page {status}", status_code=status)

    async with _client(_app(render)) as client:
        api = await client.get("/api/thing")
        page = await client.get("/page")
    assert api.status_code == 404
    assert api.json() == {
        "error": {"code": "NOT_FOUND", "message": "no such thing", "field": "thing"}
    }
    assert (page.status_code, page.text) == (404, "page 404")
    assert seen == [(404, "NOT_FOUND", "no such page", None)]


async def test_without_a_page_renderer_every_path_answers_json() -> None:
    async with _client(_app(None)) as client:
        page = await client.get("/page")
    assert page.json()["error"]["code"] == "NOT_FOUND"


async def test_the_session_cookie_is_http_only_same_site_and_site_wide() -> None:
    async with _client(_app(None)) as client:
        header = (await client.get("/cookie")).headers["set-cookie"]
    assert header.startswith(f"{session.SESSION_COOKIE}=tok;")
    assert "HttpOnly" in header and "SameSite=lax" in header and "Path=/" in header
