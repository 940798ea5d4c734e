"""The cardholder's and parent's phone pages (/m/…): balance by purse, the statement with
filters and a monthly spending chart, notifications, the card, a parent's children."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response
from markupsafe import Markup

from campuscard.cards import lifecycle
from campuscard.db.pool import Conn, PgPool
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.payments import pay_settings
from campuscard.people import queries
from campuscard.platform import notifications
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed
from campuscard.web import charts, i18n, menu
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


QUICK_TOPUPS = ("20", "50", "100", "200")  # yuan: the amounts a student tops up most
CHART_DAYS = (7, 30)

# A small line icon per phone tile (24 × 24, stroke only, drawn in the text colour).
TILE_ICONS = {
    "m.topup": '<path d="M12 5v14M5 12h14"/>',
    "m.paycode": '<path d="M4 4h6v6H4zM14 4h6v6h-6zM4 14h6v6H4zM14 14h2v2h-2zM18 18h2v2h-2z"/>',
    "m.transactions": '<path d="M5 4h14v16H5zM8 8h8M8 12h8M8 16h5"/>',
    "m.card": '<path d="M3 6h18v12H3zM3 10h18M7 15h4"/>',
    "m.card_apply": '<path d="M3 6h18v12H3zM12 9v6M9 12h6"/>',
    "m.settings": '<path d="M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8zM12 2v3M12 19v3M2 12h3M19 12h3"/>',
    "m.notifications": '<path d="M6 16V11a6 6 0 0 1 12 0v5l2 2H4zM10 20h4"/>',
    "m.leave": '<path d="M4 6h16v14H4zM4 10h16M8 3v5M16 3v5M9 15l2 2 4-4"/>',
    "m.children": (
        '<path d="M9 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM3 20a6 6 0 0 1 12 0'
        'M17 11a2.5 2.5 0 1 0 0-5M16 14a5 5 0 0 1 5 6"/>'
    ),
}


def tile_icon(key: str) -> Markup:
    path = TILE_ICONS.get(key, '<path d="M5 12h14M13 6l6 6-6 6"/>')
    return Markup(  # noqa: S704 - constant markup from TILE_ICONS above, no user text
        '<svg class="icon" viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" '
        'fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" '
        f'stroke-linejoin="round">{path}</svg>'
    )


def by_day(page: Page, rows: list[dict[str, Any]], today: date | None) -> list[dict[str, Any]]:
    """Statement rows grouped by business day, newest first: 今天 / 昨天 / the date as the
    page's language writes it (12月3日周四 / Thu, Dec 3)."""
    groups: list[dict[str, Any]] = []
    for row in rows:
        day = row["business_date"]
        if not groups or groups[-1]["day"] != day:
            if today is not None and day == today:
                label = page.t("m.today")
            elif today is not None and day == today - timedelta(days=1):
                label = page.t("m.yesterday")
            else:
                label = page.day(day)
            groups.append({"day": day, "label": label, "rows": []})
        groups[-1]["rows"].append(row)
    return groups


def spending_chart(page: Page, days: list[dict[str, Any]]) -> Markup:
    last = len(days) - 1
    every = 1 if len(days) <= 7 else 5  # 30 bars: a date under every fifth one and the last
    labels = [
        page.day(d["day"], "Md") if i == last or (i % every == 0 and last - i >= every) else ""
        for i, d in enumerate(days)
    ]
    return charts.bar_chart(
        labels,
        [charts.Series(page.t("m.spent"), [d["fen"] for d in days])],
        title=page.t("m.daily_chart_title", days=len(days)),
        height=200,
        width=360,
    )


@router.get("/")
async def home(
    page: UserPage,
    pool: Pool,
    person: PersonQ = None,
    days: Annotated[str, Query(max_length=2)] = "7",
) -> Response:
    if days not in {str(n) for n in CHART_DAYS}:
        raise ValidationFailed("days must be 7 or 30", field="days")
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
        person_id, school_id = subject["id"], subject["school_id"]
        balances = await queries.purses(conn, person_id, school_id=school_id)
        held = await queries.held(conn, person_id, school_id=school_id)
        recent = await queries.statement(
            conn, person_id, queries.StatementFilter(), school_id=school_id, limit=6
        )
        card_rows = await queries.cards(conn, person_id, school_id=school_id)
        spent = await queries.spent_today_and_month(conn, person_id, school_id=school_id)
        daily = await queries.daily_spending(conn, person_id, school_id=school_id, days=int(days))
        unread = await notifications.unread_count(
            conn,
            person_id=subject["id"],
            user_id=page.user.user_id if page.user else None,
        )
    today = daily[-1]["day"] if daily else None
    return render(
        page,
        "student/home.html",
        subject=subject,
        balances=balances,
        total=sum(balances.values()),
        held=held,
        groups=by_day(page, recent, today),
        cards=card_rows,
        unread=unread,
        spent=spent,
        days=int(days),
        chart_days=CHART_DAYS,
        chart=spending_chart(page, daily),
        quick_topups=QUICK_TOPUPS,
        tile_icon=tile_icon,
        person_qs=f"&person={subject['id']}" if page.extra.get("on_behalf") else "",
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
        person_id, school_id = subject["id"], subject["school_id"]
        rows = await queries.statement(
            conn, person_id, flt, school_id=school_id, limit=PAGE_SIZE + 1, offset=offset
        )
        today = await queries.business_date(conn, school_id)
        kinds = await queries.statement_kinds(conn, person_id, school_id=school_id)
        months = await queries.monthly_spending(conn, person_id, school_id=school_id, months=6)
    chart = charts.bar_chart(
        [page.day(m["month"], "MMM") for m in months],
        [charts.Series(page.t("m.spent"), [m["fen"] for m in months])],
        title=page.t("m.chart_title"),
        height=220,
        width=360,  # drawn at phone width: its labels stay readable on a 360 px screen
    )
    return render(
        page,
        "student/transactions.html",
        subject=subject,
        groups=by_day(page, rows[:PAGE_SIZE], today),
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
        card_rows = await queries.cards(conn, subject["id"], school_id=subject["school_id"])
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
    # each message worded in this page's language (older rows: their text in it)
    shown = [
        {
            **n,
            "title": i18n.word(page.locale, n["title"]),
            "body": i18n.word(page.locale, n["body"]),
        }
        for n in items
    ]
    return render(page, "student/notifications.html", items=shown)


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
