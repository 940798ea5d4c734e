"""The kiosk's touch-screen pages (/…, served by the kiosk itself with `campuscard kiosk serve`):
pick up a card with a pickup code (seed 004), and self-service (seed 002) — balance and recent
transactions, report loss, change PIN, top up.

These pages run on the kiosk, next to its card dispenser and its terminal key, and talk to the
platform through the kiosk agent (clients/kiosk_agent.py): the code is checked against the
kiosk's local table first, and every platform request is signed by the kiosk.
"""

from __future__ import annotations

import base64
import secrets
from typing import Annotated, Any

import segno
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from campuscard.clients.kiosk_agent import KioskAgent
from campuscard.edge.session import CSRF_FIELD
from campuscard.ledger.money import Money
from campuscard.platform.errors import DomainError
from campuscard.web import core, i18n
from campuscard.web.core import PRE_CSRF_COOKIE, Page, check_pre_csrf, redirect, render

VISIT_COOKIE = "cc_kiosk_visit"


def _page(request: Request) -> Page:
    locale = i18n.choose_locale(
        request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language")
    )
    page = Page(request=request, locale=locale)
    page.csrf = request.cookies.get(PRE_CSRF_COOKIE) or core.new_pre_csrf()
    return page


def _show(page: Page, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    response = render(page, template, status=status, **context)
    response.set_cookie(PRE_CSRF_COOKIE, page.csrf, httponly=True, samesite="strict")
    return response


def _error(page: Page, data: dict[str, Any]) -> str:
    """The platform's refusal in the kiosk's language (by its code), never a raw code."""
    error = data.get("error") or {}
    return page.err(
        str(error.get("code") or ""), str(error.get("message") or ""), error.get("field")
    )


def _qr(url: str) -> str:
    svg = segno.make(url, error="m").svg_inline(scale=5)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def create_kiosk_app(agent: KioskAgent) -> FastAPI:
    app = FastAPI(title=f"Kiosk {agent.sn}", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=core.STATIC_DIR), name="static")
    app.state.agent = agent

    @app.exception_handler(DomainError)
    async def refused(request: Request, err: DomainError) -> Response:
        page = _page(request)
        return _show(page, "kiosk/error.html", message=page.err(err), status=err.status)

    async def form_csrf(request: Request) -> None:
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        check_pre_csrf(request, sent if isinstance(sent, str) else None)

    @app.get("/")
    async def home(request: Request) -> Response:
        page = _page(request)
        try:
            live = await agent.sync()
            online = True
        except Exception:  # the platform is unreachable: the kiosk says so, it does not crash
            live, online = len(agent.local), False
        return _show(page, "kiosk/home.html", sn=agent.sn, live=live, online=online)

    @app.get("/pickup")
    async def pickup_form(request: Request) -> Response:
        return _show(_page(request), "kiosk/pickup.html", result=None)

    @app.post("/pickup")
    async def pickup(request: Request, code: Annotated[str, Form(max_length=40)] = "") -> Response:
        await form_csrf(request)
        page = _page(request)
        result = await agent.pickup(code)
        return _show(page, "kiosk/pickup.html", result=result, status=200 if result.ok else 422)

    @app.get("/self")
    async def self_start(request: Request) -> Response:
        return _show(_page(request), "kiosk/self_start.html", message="")

    @app.post("/self/start")
    async def self_begin(
        request: Request,
        card_number: Annotated[str, Form(max_length=20)] = "",
        card_uid: Annotated[str, Form(max_length=20)] = "",
        pin: Annotated[str, Form(max_length=6)] = "",
        number: Annotated[str, Form(max_length=32)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        await form_csrf(request)
        if number:
            status, data = await agent.self_service(
                "start-password", {"number": number, "password": password}
            )
        else:
            status, data = await agent.self_service(
                "start-card", {"card_number": card_number, "card_uid": card_uid, "pin": pin}
            )
        if status != 200:
            page = _page(request)
            return _show(page, "kiosk/self_start.html", message=_error(page, data), status=422)
        response = redirect("/self/home")
        response.set_cookie(
            VISIT_COOKIE,
            data["visit"],
            httponly=True,
            samesite="strict",
            max_age=int(data["expires_in"]),
        )
        return response

    async def visit_or_start(request: Request) -> str | None:
        return request.cookies.get(VISIT_COOKIE)

    @app.get("/self/home")
    async def self_home(request: Request) -> Response:
        visit = await visit_or_start(request)
        if not visit:
            return redirect("/self")
        status, data = await agent.self_service("overview", {"visit": visit})
        if status != 200:
            page = _page(request)
            return _show(page, "kiosk/self_start.html", message=_error(page, data), status=401)
        notice = request.query_params.get("notice", "")
        return _show(_page(request), "kiosk/self_home.html", view=data, notice=notice, qr=None)

    @app.post("/self/loss")
    async def self_loss(request: Request, card_id: Annotated[int, Form(gt=0)]) -> Response:
        await form_csrf(request)
        status, _ = await agent.self_service(
            "report-loss", {"visit": await visit_or_start(request) or "", "card_id": card_id}
        )
        return redirect("/self/home?notice=" + ("k.lost_ok" if status == 200 else "k.failed"))

    @app.post("/self/pin")
    async def self_pin(
        request: Request,
        pin: Annotated[str, Form(max_length=6)] = "",
        new_pin: Annotated[str, Form(max_length=6)] = "",
    ) -> Response:
        await form_csrf(request)
        status, _ = await agent.self_service(
            "pin", {"visit": await visit_or_start(request) or "", "pin": pin, "new_pin": new_pin}
        )
        return redirect("/self/home?notice=" + ("k.pin_ok" if status == 200 else "k.pin_failed"))

    @app.post("/self/topup")
    async def self_topup(
        request: Request, amount: Annotated[str, Form(max_length=12)] = ""
    ) -> Response:
        await form_csrf(request)
        visit = await visit_or_start(request) or ""
        page = _page(request)
        Money.parse(amount, field="amount")  # a refusal renders the error page
        status, data = await agent.self_service(
            "topup",
            {"visit": visit, "client_id": f"{agent.sn}-{secrets.token_hex(8)}", "amount": amount},
        )
        if status != 201:
            return redirect("/self/home?notice=k.failed")
        _, view = await agent.self_service("overview", {"visit": visit})
        return _show(
            page,
            "kiosk/self_home.html",
            view=view,
            notice="k.topup_scan",
            qr=_qr(data["pay_url"]),
            order=data,
        )

    @app.post("/self/end")
    async def self_end(request: Request) -> Response:
        response = redirect("/")
        response.delete_cookie(VISIT_COOKIE)
        return response

    return app
