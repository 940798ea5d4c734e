"""The merchant's orders (/pos/orders): the shop's orders as they happen (a live notice when one
is created, paid, shipped, released, refunded or disputed), a printable order slip and the same
slip as plain text for a small receipt printer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse, Response

from campuscard.edge.deps import Pool
from campuscard.orders import merchant, rules, slips
from campuscard.web import menu
from campuscard.web.core import SECURITY_HEADERS, UserPage, opt_choice, render

router = APIRouter(prefix="/pos", include_in_schema=False)
menu.add("merchant", "p.orders", "/pos/orders", set(merchant.STAFF), 15)

OrderId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/orders")
async def orders(
    page: UserPage, pool: Pool, state: Annotated[str | None, Query(max_length=24)] = None
) -> Response:
    actor = page.require("p.orders")
    chosen = opt_choice(state, "state", rules.STATES)
    merchant_id, rows = await merchant.list_orders(pool, actor, state=chosen)
    template = "merchant/_orders.html" if page.request.headers.get("hx-request") else None
    return render(
        page,
        template or "merchant/orders.html",
        area="merchant",
        orders=rows,
        merchant_id=merchant_id,
        state=chosen,
        states=rules.STATES,
        when=slips.local_minute,
    )


@router.get("/orders/{order_id}")
async def order_slip(page: UserPage, pool: Pool, order_id: OrderId) -> Response:
    actor = page.require("p.orders")
    order = await merchant.get_order(pool, actor, order_id)
    return render(
        page,
        "merchant/order_slip.html",
        order=order,
        text=slips.receipt_text(order, page.t),
        when=slips.local_minute,
    )


@router.get("/orders/{order_id}/receipt.txt")
async def order_receipt_text(page: UserPage, pool: Pool, order_id: OrderId) -> Response:
    actor = page.require("p.orders")
    order = await merchant.get_order(pool, actor, order_id)
    response = PlainTextResponse(slips.receipt_text(order, page.t))
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Disposition"] = f'inline; filename="order-{order["order_no"]}.txt"'
    return response
