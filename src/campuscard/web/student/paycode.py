"""The payment-code screen on the student's phone (/m/paycode): bind this phone, then show a
code that refreshes by itself (computed in the page, so it works with the network off),
live results, confirmations above the PIN threshold, and a server-minted code as fallback."""

from __future__ import annotations

from fastapi import APIRouter, Form
from fastapi.responses import Response

from campuscard.edge.deps import AppSettings, Pool
from campuscard.payments import codes
from campuscard.web import menu
from campuscard.web.core import PostPage, UserPage, redirect, render

router = APIRouter(prefix="/m", include_in_schema=False)

menu.add("student", "m.paycode", "/m/paycode", {"cardholder"}, 15)


@router.get("/paycode")
async def paycode_page(page: UserPage, pool: Pool, settings: AppSettings) -> Response:
    actor = page.require("m.paycode")
    person_id = codes.require_cardholder(actor)
    async with pool.acquire() as conn:
        devices = await codes.list_devices(conn, actor, person_id)
    active = next((d for d in devices if d["status"] == "active"), None)
    return render(
        page,
        "student/paycode.html",
        person_id=person_id,
        active=active,
        step_seconds=settings.paycode_step_seconds,
    )


@router.post("/paycode/unbind")
async def unbind(page: PostPage, pool: Pool, device_id: int = Form(ge=1, le=2**62)) -> Response:
    actor = page.require("m.paycode")
    async with pool.acquire() as conn:
        await codes.do_unbind_device(conn, actor, device_id, reason="")
    return redirect("/m/paycode", request=page.request)
