"""Alert settings on the phone (/m/alerts, docs/monitoring.md). A student chooses quiet hours
and SMS, gives or withdraws consent for each linked parent, and may declare a diet (never a
hardship candidate then). A parent, per child, opts in and chooses which alerts, their own
low-balance and large-spend amounts, SMS and quiet hours."""

from __future__ import annotations

from datetime import time
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.ledger.money import Money
from campuscard.monitoring import consent, hardship
from campuscard.monitoring.rules import ALERT_RULES, rule_name
from campuscard.people import queries
from campuscard.platform.errors import DomainError, ValidationFailed
from campuscard.web import menu
from campuscard.web.core import Page, PostPage, UserPage, redirect, render
from campuscard.web.student.routes import CHOOSE_CHILD, HOLDERS, PersonQ, holder

router = APIRouter(prefix="/m", include_in_schema=False)
menu.add("student", "m.alerts", "/m/alerts", HOLDERS, 70)


def _clock(value: str, field: str) -> time | None:
    value = value.strip()
    if not value:
        return None
    try:
        return time.fromisoformat(value)
    except ValueError as err:
        raise ValidationFailed("must be a time like 22:30", field=field) from err


def _fen(value: str, field: str) -> int | None:
    value = value.strip()
    return Money.parse(value, field=field).fen if value else None


async def _view(
    page: Page,
    pool: PgPool,
    person: int | None,
    *,
    error: DomainError | None = None,
    done: str = "",
) -> Response:
    actor = page.require("m.alerts")
    lang = "en" if page.locale == "en" else "zh-CN"
    names = {r: rule_name(r, lang) for r in ALERT_RULES}
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
        need_consent = await consent.consent_needed(conn, subject["school_id"])
        if page.extra.get("on_behalf"):
            prefs = await consent.guardian_prefs_of(conn, actor, subject["id"])
            return render(
                page,
                "student/alerts_parent.html",
                status=error.status if error else 200,
                subject=subject,
                prefs=prefs,
                names=names,
                need_consent=need_consent,
                error=error,
                done=done,
            )
        mine = await consent.student_prefs_of(conn, actor)
        parents = await consent.parents_of(conn, actor)
        diet = await hardship.declared_diet(conn, subject["school_id"], subject["id"])
    return render(
        page,
        "student/alerts.html",
        status=error.status if error else 200,
        subject=subject,
        mine=mine,
        parents=parents,
        need_consent=need_consent,
        diet=diet,
        error=error,
        done=done,
    )


@router.get("/alerts")
async def alerts_page(
    page: UserPage, pool: Pool, person: PersonQ = None, done: str = ""
) -> Response:
    return await _view(page, pool, person, done=done[:20])


@router.post("/alerts/mine")
async def alerts_mine(
    page: PostPage,
    pool: Pool,
    sms: Annotated[str, Form(max_length=4)] = "",
    quiet_start: Annotated[str, Form(max_length=8)] = "",
    quiet_end: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """The student's own quiet hours and SMS."""
    actor = page.require("m.alerts")
    try:
        await consent.do_set_student_prefs(
            pool,
            actor,
            sms=sms == "on",
            quiet_start=_clock(quiet_start, "quiet_start"),
            quiet_end=_clock(quiet_end, "quiet_end"),
        )
    except DomainError as err:
        return await _view(page, pool, None, error=err)
    return redirect("/m/alerts?done=mine", request=page.request)


@router.post("/alerts/consent")
async def alerts_consent(
    page: PostPage,
    pool: Pool,
    guardian: Annotated[int, Form(ge=1, le=2**62)],
    give: Annotated[str, Form(max_length=4)] = "",
) -> Response:
    """The student lets one linked parent hear their alerts, or stops it."""
    actor = page.require("m.alerts")
    try:
        await consent.do_set_consent(pool, actor, guardian, given=give == "yes")
    except DomainError as err:
        return await _view(page, pool, None, error=err)
    return redirect("/m/alerts?done=consent", request=page.request)


@router.post("/alerts/diet")
async def alerts_diet(
    page: PostPage, pool: Pool, declare: Annotated[str, Form(max_length=4)] = ""
) -> Response:
    """The student's own declared diet keeps them out of hidden-hardship candidates."""
    actor = page.require("m.alerts")
    try:
        async with pool.acquire() as conn:
            me = await queries.access_person(conn, actor, None)
        if declare == "yes":
            await hardship.do_exclude(pool, actor, me["school_id"], me["id"], "diet")
        else:
            await hardship.do_withdraw_diet(pool, actor, me["school_id"], me["id"])
    except DomainError as err:
        return await _view(page, pool, None, error=err)
    return redirect("/m/alerts?done=diet", request=page.request)


@router.post("/alerts/child")
async def alerts_child(
    page: PostPage,
    pool: Pool,
    person: Annotated[int, Form(ge=1, le=2**62)],
    enabled: Annotated[str, Form(max_length=4)] = "",
    rule: Annotated[list[str] | None, Form()] = None,
    low_balance: Annotated[str, Form(max_length=16)] = "",
    single_spend: Annotated[str, Form(max_length=16)] = "",
    sms: Annotated[str, Form(max_length=4)] = "",
    quiet_start: Annotated[str, Form(max_length=8)] = "",
    quiet_end: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """A parent's own choices for one child."""
    actor = page.require("m.alerts")
    try:
        await consent.do_set_guardian_prefs(
            pool,
            actor,
            person,
            enabled=enabled == "on",
            rules=list(rule or []),
            low_balance=_fen(low_balance, "low_balance"),
            single_spend=_fen(single_spend, "single_spend"),
            sms=sms == "on",
            quiet_start=_clock(quiet_start, "quiet_start"),
            quiet_end=_clock(quiet_end, "quiet_end"),
        )
    except DomainError as err:
        return await _view(page, pool, person, error=err)
    return redirect(f"/m/alerts?person={person}&done=child", request=page.request)
