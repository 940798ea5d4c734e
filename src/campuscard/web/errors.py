"""Error pages in the site layout. The composition root hands ``error_page`` to the error
handlers (edge/errors.py), which call it for every path outside /api, so a refusal on a page
(403, 404, 422, 409 …) is a readable page, never JSON or a 500."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response

from campuscard.edge.session import clear_session_cookie
from campuscard.web import core

_TITLES = {
    401: "error.title.401",
    403: "error.title.403",
    404: "error.title.404",
    409: "error.title.409",
    422: "error.title.422",
    429: "error.title.429",
}


async def error_page(
    request: Request, status: int, code: str, message: str, field: str | None = None
) -> Response:
    if status == 401 and request.method == "GET":
        return core.redirect(f"/login?next={quote(request.url.path, safe='')}", request=request)
    page = await core._page(request, request.app.state.pool, request.app.state.settings)
    title = _TITLES.get(status, "error.title.other")
    path = request.url.path
    if path.startswith("/admin/s/"):  # keep the school's console menu around the refusal
        page.school_code = path.split("/")[3]
    return core.render(
        page,
        "error.html",
        area=core.area_of(path) if page.user is not None else "",
        status=status,
        title=page.t(title),
        code=code,
        message=message,
        field=field,
        status_code=status,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(core.LoginRequired)
    async def _login_required(request: Request, exc: core.LoginRequired) -> Response:
        url = f"/login?next={quote(exc.next_url, safe='')}"
        if exc.expired:
            url += "&expired=1"
        response = core.redirect(url, request=request)
        if exc.expired:
            clear_session_cookie(response)
        return response
