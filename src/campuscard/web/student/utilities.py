"""Dorm electricity and water on the phone (/m/utilities): each meter of the student's room
with its balance at the vendor, today's and the month's use and cost by day, the month's
top-ups; topping a meter up from the card (two-phase, exactly once: decision 0201) and the
automatic top-up below a threshold. docs/bills.md, "Dorm utilities"."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response
from markupsafe import Markup

from campuscard.bills import utilities
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.people import queries
from campuscard.platform.errors import DomainError, ValidationFailed
from campuscard.web import charts, menu
from campuscard.web.core import Page, PostPage, UserPage, redirect, render

router = APIRouter(prefix="/m", include_in_schema=False)
menu.add("student", "m.utilities", "/m/utilities", {"cardholder"}, 17)

QUICK_AMOUNTS = ("20", "50", "100")
MeterId = Annotated[int, Path(ge=1, le=2**62)]


def _month(value: str, today: date) -> str:
    value = value.strip()
    if not value:
        return today.strftime("%Y-%m")
    try:
        date.fromisoformat(f"{value}-01")
    except ValueError as err:
        raise ValidationFailed('month must look like "2026-09"', field="month") from err
    return value


def _chart(page: Page, state: dict[str, Any]) -> Markup:
    days = state["days"]
    last = len(days) - 1
    return charts.bar_chart(
        [d["date"][8:] if i == last or i % 5 == 0 else "" for i, d in enumerate(days)],
        [charts.Series(page.t("m.ut.cost"), [Money.parse(d["cost"]).fen for d in days])],
        title=page.t("m.ut.chart", kind=page.t(f"m.ut.kind.{state['kind']}")),
        height=180,
        width=360,
    )


async def _view(
    page: Page,
    pool: PgPool,
    settings: Settings,
    *,
    month: str = "",
    error: DomainError | None = None,
    notice: str = "",
) -> Response:
    actor = page.require("m.utilities")
    if actor.person_id is None or actor.school_id is None:
        return redirect("/m/")
    async with pool.acquire() as conn:
        subject = await queries.access_person(conn, actor, None)
        page.extra["on_behalf"] = False
        today = await queries.business_date(conn, subject["school_id"])
        meters = await utilities.meters_of(conn, subject["school_id"], subject["id"])
        topups = await utilities.topups_of(conn, subject["school_id"], subject["id"])
    chosen = _month(month, today)
    shown = []
    for m in meters:  # the vendor is asked outside any transaction, one meter at a time
        try:
            state = await utilities.meter_state(
                pool, settings, actor, subject["school_id"], m["id"], month=chosen
            )
            shown.append(m | {"state": state, "chart": _chart(page, state), "error": None})
        except DomainError as err:
            shown.append(m | {"state": None, "chart": None, "error": err})
    return render(
        page,
        "student/utilities.html",
        status=error.status if error else 200,
        subject=subject,
        meters=shown,
        topups=topups,
        month=chosen,
        this_month=today.strftime("%Y-%m"),
        error=error,
        notice=notice,
        client_id=secrets.token_hex(12),
        quick=QUICK_AMOUNTS,
    )


@router.get("/utilities")
async def utilities_page(
    page: UserPage,
    pool: Pool,
    settings: AppSettings,
    month: Annotated[str, Query(max_length=7)] = "",
    done: Annotated[str, Query(max_length=10, pattern=r"^[a-z]*$")] = "",
) -> Response:
    """``?month=2026-09`` shows that month's use and top-ups (the monthly summary)."""
    notice = page.t(f"m.ut.done.{done}") if done in ("done", "pending", "auto") else ""
    return await _view(page, pool, settings, month=month, notice=notice)


@router.post("/utilities/{meter_id}/topup")
async def top_up(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    meter_id: MeterId,
    amount: Annotated[str, Form(max_length=20)] = "",
    client_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    actor = page.require("m.utilities")
    try:
        answer = await utilities.do_top_up(
            pool,
            settings,
            actor,
            actor.school_id or 0,
            meter_id,
            amount=Money.parse(amount.strip(), field="amount"),
            client_id=client_id,
        )
        if answer.status >= 400:
            err = answer.body.get("error") or {}
            raise DomainError(
                err.get("message", ""),
                code=err.get("code", "CONFLICT"),
                field=err.get("field"),
                status=answer.status,
            )
        if answer.body["status"] == "failed":
            raise DomainError(
                "the utility vendor refused the top-up; nothing was taken",
                code="VENDOR_REFUSED",
                field="amount",
                status=409,
            )
    except DomainError as err:
        return await _view(page, pool, settings, error=err)
    done = "done" if answer.body["status"] == "done" else "pending"
    return redirect(f"/m/utilities?done={done}", request=page.request)


@router.post("/utilities/{meter_id}/auto")
async def set_auto(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    meter_id: MeterId,
    below: Annotated[str, Form(max_length=20)] = "",
    amount: Annotated[str, Form(max_length=20)] = "",
    enabled: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    actor = page.require("m.utilities")
    try:
        on = enabled == "on"
        await utilities.do_set_auto(
            pool,
            actor,
            actor.school_id or 0,
            meter_id,
            below=Money.parse(below.strip(), field="below") if on else None,
            amount=Money.parse(amount.strip(), field="amount") if on else None,
        )
    except DomainError as err:
        return await _view(page, pool, settings, error=err)
    return redirect("/m/utilities?done=auto", request=page.request)
