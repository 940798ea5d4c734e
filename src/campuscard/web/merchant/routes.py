"""The merchant's POS page (/pos/…): amount keypad, card input from a keyboard-wedge reader
(it types the chip UID and Enter), a clear result (colour and sound), receipt, refund for
those allowed, today's takings per window and terminal. The browser is bound to one
registered POS terminal (payments/browser_pos.py, decision 0051)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path
from fastapi.responses import Response

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.offline import queries as offline_queries
from campuscard.payments import booking, browser_pos, code_payments
from campuscard.payments import queries as payments_queries
from campuscard.payments.terminals import TerminalRow
from campuscard.people import queries as people_queries
from campuscard.platform.errors import DomainError, NotFound
from campuscard.web import menu
from campuscard.web.admin import devices as devices_page
from campuscard.web.core import Page, PostPage, UserPage, opt_date, redirect, render

router = APIRouter(prefix="/pos", include_in_schema=False)

POS_COOKIE = "cc_pos"
STAFF = {"merchant_staff", "merchant_manager"}
menu.add("merchant", "p.till", "/pos/", STAFF, 10)
menu.add("merchant", "p.takings", "/pos/takings", STAFF, 20)
menu.add("merchant", "p.offline", "/pos/offline", {"merchant_manager"}, 30)
menu.add("merchant", "p.setup", "/pos/setup", {"merchant_manager"}, 90)

PaymentId = Annotated[int, Path(ge=1, le=2**62)]


def _client_id() -> str:
    return "web-" + secrets.token_hex(10)


async def _bound(page: Page, pool: PgPool, settings: Settings) -> TerminalRow | None:
    actor = page.require("p.till")
    terminal_id = browser_pos.open_binding(settings, page.request.cookies.get(POS_COOKIE))
    if terminal_id is None:
        return None
    async with pool.acquire() as conn:
        return await browser_pos.bound_terminal(conn, actor, terminal_id)


def _till(page: Page, terminal: TerminalRow, recent: list[dict[str, Any]], **ctx: Any) -> Response:
    ctx.setdefault("result", None)
    ctx.setdefault("error", None)
    ctx.setdefault("pin_for", None)
    ctx.setdefault("keep", "")
    ctx.setdefault("waiting", None)
    ctx.setdefault("offline", None)
    template = (
        "merchant/_till.html" if page.request.headers.get("hx-request") else "merchant/pos.html"
    )
    return render(
        page,
        template,
        status=200,
        terminal=terminal,
        recent=recent,
        client_id=_client_id(),
        **ctx,
    )


@router.get("/")
async def till(page: UserPage, pool: Pool, settings: AppSettings) -> Response:
    terminal = await _bound(page, pool, settings)
    if terminal is None:
        return redirect("/pos/setup")
    async with pool.acquire() as conn:
        recent = await browser_pos.recent_payments(conn, terminal)
        offline = await offline_queries.device_state(conn, terminal.school_id, terminal.id)
    return _till(page, terminal, recent, offline=offline)


@router.post("/pay")
async def pay(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    amount: Annotated[str, Form(max_length=16)] = "",
    scan: Annotated[str, Form(max_length=64)] = "",
    client_id: Annotated[str, Form(max_length=64)] = "",
    pin: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    terminal = await _bound(page, pool, settings)
    if terminal is None:
        return redirect("/pos/setup", request=page.request)
    result: dict[str, Any] | None = None
    error: DomainError | None = None
    pin_for: dict[str, str] | None = None
    waiting: dict[str, str] | None = None
    async with pool.acquire() as conn:
        try:
            money = Money.parse(amount.strip(), field="amount")
            if browser_pos.is_payment_code(scan):
                # the code path of the paycodes engineer: preview first, so a refusal does not
                # spend the code; above the PIN threshold the student confirms on the phone
                answer = await code_payments.do_pay_with_code(
                    pool,
                    settings,
                    browser_pos.as_signed(terminal),
                    client_id=client_id,
                    code=scan.strip(),
                    amount=money,
                    pin=pin.strip() or None,
                )
            else:
                payer = await browser_pos.card_payer(conn, terminal.school_id, scan)
                answer = await booking.book_payment(
                    conn,
                    settings,
                    browser_pos.as_signed(terminal),
                    client_id=client_id,
                    payer=payer,
                    amount=money,
                    pin=pin.strip() or None,
                )
            if answer.status == 202:  # waiting for the student to confirm on the phone
                waiting = {"amount": amount.strip(), "scan": scan.strip(), "client_id": client_id}
            elif answer.ok:
                result = answer.body
            else:
                err = answer.body.get("error", {})
                error = DomainError(
                    str(err.get("message", "refused")),
                    code=str(err.get("code", "REFUSED")),
                    field=err.get("field"),
                    status=answer.status,
                )
                if error.code in ("PIN_REQUIRED", "PIN_WRONG", "PIN_FORMAT"):
                    pin_for = {"amount": amount.strip(), "scan": scan.strip()}
        except DomainError as err:
            error = err
            if err.code == "PIN_FORMAT":
                pin_for = {"amount": amount.strip(), "scan": scan.strip()}
        recent = await browser_pos.recent_payments(conn, terminal)
    # after a refusal the amount stays, so the cashier can take another card or code
    keep = amount.strip() if error is not None and pin_for is None else ""
    return _till(
        page,
        terminal,
        recent,
        result=result,
        error=error,
        pin_for=pin_for,
        keep=keep,
        waiting=waiting,
    )


@router.get("/receipt/{payment_id}")
async def receipt(
    page: UserPage, pool: Pool, settings: AppSettings, payment_id: PaymentId
) -> Response:
    return await _receipt(page, pool, settings, payment_id)


async def _receipt(
    page: Page,
    pool: PgPool,
    settings: Settings,
    payment_id: int,
    *,
    error: DomainError | None = None,
    refunded: bool = False,
) -> Response:
    actor = page.require("p.till")
    async with pool.acquire() as conn:
        payment = await booking.get_payment(conn, actor, payment_id)
        if payment["merchant_id"] not in actor.merchant_ids():
            raise NotFound("no such payment", field="payment_id")
        may_refund = await booking.can_refund(
            conn, actor, payment["school_id"], payment["merchant_id"]
        )
    left = (
        Money.parse(payment["amount"]).fen - Money.parse(payment["refunded"], allow_zero=True).fen
    )
    return render(
        page,
        "merchant/receipt.html",
        status=error.status if error else 200,
        payment=payment,
        may_refund=may_refund and payment["status"] == "booked" and left > 0,
        left=left,
        client_id=_client_id(),
        error=error,
        refunded=refunded,
    )


@router.post("/receipt/{payment_id}/refund")
async def refund(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    payment_id: PaymentId,
    amount: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
    client_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    actor = page.require("p.till")
    terminal = await _bound(page, pool, settings)
    try:
        money = Money.parse(amount.strip(), field="amount")
        outcome = await booking.refund_payment(
            pool,
            actor,
            payment_id=payment_id,
            amount=money,
            client_id=client_id,
            reason=reason,
            terminal=browser_pos.as_signed(terminal) if terminal is not None else None,
        )
    except DomainError as err:
        if err.status == 404:
            raise
        return await _receipt(page, pool, settings, payment_id, error=err)
    if outcome.status != 200:
        stored = outcome.body.get("error", {})
        failure = DomainError(
            str(stored.get("message", "refused")),
            code=str(stored.get("code", "REFUSED")),
            field=stored.get("field"),
            status=outcome.status,
        )
        return await _receipt(page, pool, settings, payment_id, error=failure)
    return redirect(f"/pos/receipt/{payment_id}?refunded=1", request=page.request)


@router.get("/takings")
async def takings(page: UserPage, pool: Pool, settings: AppSettings) -> Response:
    actor = page.require("p.takings")
    terminal = await _bound(page, pool, settings)
    if terminal is not None and terminal.merchant_id is not None:
        merchant_id, school_id = terminal.merchant_id, terminal.school_id
    else:
        grant = min(
            (g for g in actor.grants if g.role in STAFF and g.merchant_id and g.school_id),
            key=lambda g: g.merchant_id or 0,
            default=None,
        )
        if grant is None or grant.merchant_id is None or grant.school_id is None:
            raise NotFound("no merchant is linked to this sign-in", field="merchant")
        merchant_id, school_id = grant.merchant_id, grant.school_id
    async with pool.acquire() as conn:
        day = await people_queries.business_date(conn, school_id)
        rows = await browser_pos.takings(conn, actor, merchant_id, school_id, day)
        name = await payments_queries.merchant_name(conn, merchant_id)
    return render(
        page,
        "merchant/takings.html",
        rows=rows,
        day=day,
        merchant=name,
        total=sum(r["net"] for r in rows),
        count=sum(int(r["payments"]) for r in rows),
    )


@router.get("/offline")
async def offline_report(page: UserPage, pool: Pool, day: str = "") -> Response:
    """The merchant's tills that sold offline: uploads per day, gaps, resends, refusals, chain
    breaks and overdrafts, in the words of the console's report."""
    actor = page.require("p.offline")
    grant = min(
        (g for g in actor.grants if g.role == "merchant_manager" and g.merchant_id and g.school_id),
        key=lambda g: g.merchant_id or 0,
        default=None,
    )
    if grant is None or grant.merchant_id is None or grant.school_id is None:
        raise NotFound("no merchant is linked to this sign-in", field="merchant")
    async with pool.acquire() as conn:
        report = await devices_page.offline_report(
            page, conn, grant.school_id, opt_date(day, "day"), merchant_id=grant.merchant_id
        )
        name = await payments_queries.merchant_name(conn, grant.merchant_id)
    return render(page, "merchant/offline.html", merchant=name, **report)


@router.get("/setup")
async def setup(page: UserPage, pool: Pool, settings: AppSettings) -> Response:
    actor = page.require("p.till")
    current = await _bound(page, pool, settings)
    async with pool.acquire() as conn:
        choices = await browser_pos.pos_terminals(conn, actor)
    return render(
        page,
        "merchant/setup.html",
        choices=choices,
        current=current,
        is_manager="merchant_manager" in actor.roles,
    )


@router.post("/setup")
async def setup_bind(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    terminal_id: Annotated[int, Form(ge=1, le=2**62)],
) -> Response:
    actor = page.require("p.setup")
    async with pool.acquire() as conn:
        terminal = await browser_pos.do_bind_terminal(conn, actor, terminal_id)
    response = redirect("/pos/")
    response.set_cookie(
        POS_COOKIE,
        browser_pos.seal_binding(settings, terminal.id, terminal.merchant_id or 0),
        max_age=400 * 24 * 3600,
        httponly=True,
        samesite="strict",
        path="/pos",
    )
    return response
