"""The till's customer-facing display (/pos/display/<terminal>): a screen turned to the student
shows the amount the cashier typed before paying, then the result (seed 000: 支付信息展示).
Live by server-sent events; the merchant's staff open it on the screen next to the till."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from campuscard.edge.deps import Pool
from campuscard.payments import display as customer_display
from campuscard.web import menu
from campuscard.web.core import UserPage, render

router = APIRouter(prefix="/pos", include_in_schema=False)

menu.add("merchant", "p.display", "/pos/display", {"merchant_staff", "merchant_manager"}, 60)


@router.get("/display")
async def displays(page: UserPage, pool: Pool) -> Response:
    actor = page.require("p.display")
    async with pool.acquire() as conn:
        tills = await customer_display.tills_for(conn, actor)
    return render(page, "merchant/displays.html", tills=tills)


@router.get("/display/{terminal_id}")
async def display(page: UserPage, pool: Pool, terminal_id: int) -> Response:
    actor = page.require("p.display")
    if not 1 <= terminal_id < 2**62:
        terminal_id = 0  # answers "no such terminal" below
    async with pool.acquire() as conn:
        terminal = await customer_display.access_terminal(conn, actor, terminal_id)
        pending = await customer_display.pending_amount(conn, terminal)
    return render(page, "merchant/display.html", terminal=terminal, pending=pending)
