"""The cardholder's and parent's phone pages (/m/…): balance by purse, the statement with
filters and a monthly spending chart, notifications, the card, a parent's children."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response

from campuscard.cards import lifecycle
from campuscard.db.pool import Conn, PgPool
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.payments import pay_settings
from campuscard.people import queries
from campuscard.platform import notifications
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed
from campuscard.web import charts, menu
from campuscard.web.core import (
    Page,
    PostPage,
    UserPage,
    opt_choice,
    opt_date,
    redirect,
    render,
)

router = APIRouter(prefix="/m", include_in_schema=False)

HOLDERS = {"cardholder", "guardian"}
CHILD_COOKIE = "cc_child"  # the child a parent looked at last (re-checked on every request)
PAGE_SIZE = 30

menu.add("student", "m.home", "/m/", HOLDERS, 10)
menu.add("student", "m.transactions", "/m/transactions", HOLDERS, 20)
menu.add("student", "m.card", "/m/card", HOLDERS, 40)
menu.add("student", "m.settings", "/m/settings", {"cardholder"}, 60)
menu.add("student", "m.notifications", "/m/notifications", HOLDERS, 80)
menu.add("student", "m.children", "/m/children", {"guardian"}, 90)

PersonQ = Annotated[int | None, Query(alias="person", ge=1, le=2**62)]


async def holder(page: Page, conn: Conn, person: int | None) -> dict[str, Any] | None:
    """The person these pages are about: ?person=, else a parent's chosen child (or only
    child), else the cardholder themself. None: a parent who has not chosen a child yet."""
    actor = page.require("m.home")
    if person is None and actor.person_id is None:
        chosen = page.request.cookies.get(CHILD_COOKIE, "")
        if chosen.isdigit() and len(chosen) < 19:
            try:
                subject = await queries.access_person(conn, actor, int(chosen))
            except NotFound:  # unlinked since it was chosen: choose again
                return None
            page.extra["on_behalf"] = True
            return subject
        else:
            children = await queries.linked_children(conn, actor)
            if len(children) != 1:
                return None
            person = children[0]["id"]
    subject = await queries.access_person(conn, actor, person)
    page.extra["on_behalf"] = subject["id"] != actor.person_id
    return subject


CHOOSE_CHILD = "/m/children"


@router.get("/")
async def home(page: UserPage, pool: Pool, person: PersonQ = None) -> Response:
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
        balances = await queries.purses(conn, subject["id"])
        held = await queries.held(conn, subject["id"])
        recent = await queries.statement(conn, subject["id"], queries.StatementFilter(), limit=5)
        card_rows = await queries.cards(conn, subject["id"])
        unread = await notifications.unread_count(
            conn,
            person_id=subject["id"],
            user_id=page.user.user_id if page.user else None,
        )
    return render(
        page,
        "student/home.html",
        subject=subject,
        balances=balances,
        total=sum(balances.values()),
        held=held,
        recent=recent,
        cards=card_rows,
        unread=unread,
    )


@router.get("/transactions")
async def transactions(
    page: UserPage,
    pool: Pool,
    person: PersonQ = None,
    purse: Annotated[str, Query(max_length=10)] = "",
    direction: Annotated[str, Query(max_length=10)] = "",
    kind: Annotated[str, Query(max_length=40, pattern=r"^[a-z0-9_.]*$")] = "",
    date_from: Annotated[str, Query(alias="from", max_length=10)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=10)] = "",
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    flt = queries.StatementFilter(
        purse=opt_choice(purse, "purse", ("cash", "subsidy")),
        direction=opt_choice(direction, "direction", queries.DIRECTIONS),
        kind=kind or None,
        date_from=opt_date(date_from, "from"),
        date_to=opt_date(date_to, "to"),
    )
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
        rows = await queries.statement(conn, subject["id"], flt, limit=PAGE_SIZE + 1, offset=offset)
        kinds = await queries.statement_kinds(conn, subject["id"])
        months = await queries.monthly_spending(conn, subject["id"], months=6)
    chart = charts.bar_chart(
        [m["month"].strftime("%Y-%m") for m in months],
        [charts.Series(page.t("m.spent"), [m["fen"] for m in months])],
        title=page.t("m.chart_title"),
        height=220,
        width=360,  # drawn at phone width: its labels stay readable on a 360 px screen
    )
    return render(
        page,
        "student/transactions.html",
        subject=subject,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        offset=offset,
        page_size=PAGE_SIZE,
        base_qs=urlencode([(k, v) for k, v in page.request.query_params.items() if k != "offset"]),
        flt=flt,
        kinds=kinds,
        months=months,
        chart=chart,
    )


@router.get("/card")
async def card(page: UserPage, pool: Pool, person: PersonQ = None, done: str = "") -> Response:
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
        card_rows = await queries.cards(conn, subject["id"])
    return render(
        page,
        "student/card.html",
        subject=subject,
        cards=card_rows,
        done=done[:20],
        is_holder=subject["id"] == (page.user.person_id if page.user else None),
    )


@router.post("/card/{card_id}/loss")
async def card_loss(
    page: PostPage, pool: Pool, card_id: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    """The cardholder reports their card lost: payments with it are refused at once."""
    actor = page.require("m.card")
    async with pool.acquire() as conn:
        await lifecycle.report_loss(conn, actor, card_id, channel="online", reason="web")
    return redirect("/m/card?done=loss", request=page.request)


@router.get("/settings")
async def settings_page(page: UserPage, pool: Pool, done: str = "") -> Response:
    return await _settings(page, pool, done=done[:20])


async def _settings(
    page: Page, pool: PgPool, *, error: DomainError | None = None, done: str = ""
) -> Response:
    actor = page.require("m.settings")
    async with pool.acquire() as conn:
        subject = await queries.access_person(conn, actor, None)
        current = await pay_settings.get_settings(conn, actor, subject["id"])
    return render(
        page,
        "student/settings.html",
        status=error.status if error else 200,
        subject=subject,
        current=current,
        error=error,
        done=done,
    )


@router.post("/settings/limits")
async def settings_limits(
    page: PostPage,
    pool: Pool,
    per_tx_limit: Annotated[str, Form(max_length=16)] = "",
    daily_limit: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    actor = page.require("m.settings")
    try:
        per_tx = (
            Money.parse(per_tx_limit.strip(), field="per_tx_limit")
            if per_tx_limit.strip()
            else None
        )
        daily = (
            Money.parse(daily_limit.strip(), field="daily_limit") if daily_limit.strip() else None
        )
        async with pool.acquire() as conn:
            await pay_settings.set_limits(
                conn,
                actor,
                person_id=actor.person_id or 0,
                per_tx_limit=per_tx.fen if per_tx else None,
                daily_limit=daily.fen if daily else None,
            )
    except DomainError as err:
        return await _settings(page, pool, error=err)
    return redirect("/m/settings?done=limits", request=page.request)


@router.post("/settings/pin")
async def settings_pin(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    new_pin: Annotated[str, Form(max_length=12)] = "",
    new_pin_again: Annotated[str, Form(max_length=12)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    actor = page.require("m.settings")
    try:
        if new_pin != new_pin_again:
            raise ValidationFailed(
                "the two PINs differ", code="PIN_MISMATCH", field="new_pin_again"
            )
        async with pool.acquire() as conn:
            await pay_settings.set_pin(
                conn,
                actor,
                settings,
                person_id=actor.person_id or 0,
                new_pin=new_pin,
                password=password,
            )
    except DomainError as err:
        return await _settings(page, pool, error=err)
    return redirect("/m/settings?done=pin", request=page.request)


@router.get("/notifications")
async def inbox(page: UserPage, pool: Pool) -> Response:
    actor = page.require("m.notifications")
    async with pool.acquire() as conn:
        if actor.person_id is not None:
            items = await notifications.list_for_person(conn, actor.person_id)
        else:
            items = await notifications.list_for_user(conn, actor.user_id or 0)
    return render(page, "student/notifications.html", items=items)


@router.post("/notifications/read")
async def inbox_read(page: PostPage, pool: Pool) -> Response:
    actor = page.require("m.notifications")
    async with pool.acquire() as conn:
        await notifications.mark_read(conn, person_id=actor.person_id, user_id=actor.user_id)
    return redirect("/m/notifications", request=page.request)


@router.get("/children")
async def children(page: UserPage, pool: Pool) -> Response:
    actor = page.require("m.children")
    async with pool.acquire() as conn:
        kids = await queries.linked_children(conn, actor)
    return render(page, "student/children.html", children=kids)


@router.post("/children/{person_id}")
async def choose_child(page: PostPage, pool: Pool, person_id: int) -> Response:
    actor = page.require("m.children")
    async with pool.acquire() as conn:
        await queries.access_person(conn, actor, person_id)
    response = redirect("/m/")
    response.set_cookie(CHILD_COOKIE, str(person_id), httponly=True, samesite="lax", path="/m")
    return response
