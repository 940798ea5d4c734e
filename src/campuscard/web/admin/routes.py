"""The console (/admin/…): dashboard, people and classes, cards, merchants and terminals,
reports with export, the audit log. Every page is under /admin/s/<school code>/ so the school
is checked once (another school's pages answer 404) and menus are per school."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response
from openpyxl import Workbook

from campuscard.cards import lifecycle
from campuscard.db.pool import PgPool
from campuscard.documents.exports import safe_row, workbook_bytes
from campuscard.edge.deps import AppSettings, Pool, school_id_for
from campuscard.ledger.money import Money
from campuscard.payments import merchants as merchants_svc
from campuscard.payments import queries as payments_queries
from campuscard.payments import terminals as terminals_svc
from campuscard.people import directory
from campuscard.people import queries as people_queries
from campuscard.platform.errors import DomainError, NotFound
from campuscard.settlement import dashboard
from campuscard.web import charts, menu
from campuscard.web.core import Page, PostPage, UserPage, opt_date, opt_int, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)

BASE = "/admin/s/{school}"
MONEY_READERS = {"school_admin", "settlement", "card_center"}
menu.add("admin", "a.dashboard", BASE + "/", MONEY_READERS, 10)
menu.add(
    "admin",
    "a.people",
    BASE + "/people",
    {"school_admin", "card_center", "teacher", "settlement"},
    20,
)
menu.add("admin", "a.classes", BASE + "/classes", {"school_admin", "card_center", "teacher"}, 30)
menu.add("admin", "a.cards", BASE + "/cards", {"school_admin", "card_center"}, 40)
menu.add("admin", "a.merchants", BASE + "/merchants", MONEY_READERS, 50)
menu.add("admin", "a.reports", BASE + "/reports", {"school_admin", "settlement"}, 80)
menu.add("admin", "a.audit", BASE + "/audit", MONEY_READERS, 90)

SchoolCode = Annotated[str, "school code"]


async def enter(page: Page, pool: PgPool, code: str, key: str) -> int:
    """Check the school in the path and that the page is on this actor's menu there."""
    if page.user is None:  # UserPage guarantees it; keeps mypy exact
        raise NotFound("unknown school", field="school")
    school_id = await school_id_for(pool, page.user, code)
    page.school_id, page.school_code = school_id, code
    page.require(key)
    return school_id


@router.get("/")
async def console_home(page: UserPage, pool: Pool) -> Response:
    actor = page.user
    assert actor is not None
    if actor.is_platform_admin:
        schools = await people_queries.all_schools(pool)
        return render(page, "admin/schools.html", schools=schools)
    for school_id in sorted(actor.schools()):
        items = menu.menu_for(actor, "admin", school_id)
        if items:
            code = await people_queries.school_code(pool, school_id)
            return redirect(items[0].href.format(school=code))
    return redirect(menu.home_for(actor) if menu.home_for(actor) != "/admin/" else "/account")


@router.get("/s/{code}/")
async def dashboard_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.dashboard")
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        today = await dashboard.business_date(conn, school_id)
        channels = await dashboard.volume_by_channel(conn, actor, school_id, today, today)
        days = await dashboard.volume_by_day(
            conn, actor, school_id, today - timedelta(days=13), today
        )
        counts = await dashboard.counts(conn, actor, school_id)
    channel_chart = charts.bar_chart(
        [page.t(f"channel.{c['channel']}") for c in channels],
        [charts.Series(page.t("a.net"), [c["net"] for c in channels])],
        title=page.t("a.today_by_channel"),
        height=200,
    )
    day_chart = _days_chart(page, days)
    return render(
        page,
        "admin/dashboard.html",
        today=today,
        channels=channels,
        counts=counts,
        channel_chart=channel_chart,
        day_chart=day_chart,
        total=sum(c["net"] for c in channels),
    )


def _days_chart(page: Page, days: list[dict[str, Any]]) -> Any:
    return charts.bar_chart(
        [d["day"].strftime("%m-%d") for d in days],
        [charts.Series(page.t(f"channel.{c}"), [d[c] for d in days]) for c in dashboard.CHANNELS],
        title=page.t("a.daily_volume"),
        height=240,
    )


@router.get("/s/{code}/people")
async def people_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    q: Annotated[str, Query(max_length=64)] = "",
    class_text: Annotated[str, Query(alias="class", max_length=20)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    school_id = await enter(page, pool, code, "a.people")
    class_id = opt_int(class_text, "class")
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        rows = await directory.search_persons(
            conn, actor, school_id, query=q.strip(), class_id=class_id, limit=51, offset=offset
        )
        classes = await dashboard.classes(conn, actor, school_id)
    return render(
        page,
        "admin/people.html",
        rows=rows[:50],
        more=len(rows) > 50,
        q=q,
        class_id=class_id,
        classes=classes,
        offset=offset,
    )


@router.get("/s/{code}/people/{person_id}")
async def person_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    person_id: Annotated[int, Path(ge=1, le=2**62)],
    saved: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    school_id = await enter(page, pool, code, "a.people")
    return await _person_form(page, pool, school_id, person_id, saved=bool(saved))


async def _person_form(
    page: Page,
    pool: PgPool,
    school_id: int,
    person_id: int,
    *,
    error: DomainError | None = None,
    saved: bool = False,
) -> Response:
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        person = await directory.get_person(conn, actor, person_id)
        if person["school_id"] != school_id:
            raise NotFound("person not found", field="person_id")
        classes = await dashboard.classes(conn, actor, school_id)
        balances = await people_queries.purses(conn, person_id, school_id=school_id)
        held = await people_queries.held(conn, person_id, school_id=school_id)
    can_edit = actor.has("school_admin", "card_center", "teacher", school_id=school_id)
    return render(
        page,
        "admin/person.html",
        status=error.status if error else 200,
        person=person,
        classes=classes,
        balances=balances,
        balance_total=sum(balances.values()),
        held=held,
        can_edit=can_edit,
        error=error,
        saved=saved,
    )


@router.post("/s/{code}/people/{person_id}")
async def person_save(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    person_id: Annotated[int, Path(ge=1, le=2**62)],
    name: Annotated[str, Form(max_length=64)] = "",
    phone: Annotated[str, Form(max_length=21)] = "",
    category: Annotated[str, Form(max_length=32)] = "",
    class_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.people")
    actor = page.user
    assert actor is not None
    changes: dict[str, Any] = {
        "name": name.strip(),
        "phone": phone.strip() or None,
        "category": category.strip() or "regular",
        "class_id": int(class_id) if class_id.isdigit() and len(class_id) < 19 else None,
    }
    try:
        if not changes["name"]:
            raise DomainError("name is required", code="FIELD_REQUIRED", field="name", status=422)
        if changes["phone"] and not (
            changes["phone"].lstrip("+").isdigit() and 5 <= len(changes["phone"]) <= 21
        ):
            raise DomainError("phone must be 5 to 20 digits", field="phone", status=422)
        async with pool.acquire() as conn:
            person = await directory.get_person(conn, actor, person_id)
            if person["school_id"] != school_id:
                raise NotFound("person not found", field="person_id")
            await directory.update_person(conn, actor, person_id, changes)
    except DomainError as err:
        if err.status in (403, 404):
            raise
        return await _person_form(page, pool, school_id, person_id, error=err)
    return redirect(f"/admin/s/{code}/people/{person_id}?saved=1")


@router.get("/s/{code}/classes")
async def classes_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.classes")
    assert page.user is not None
    async with pool.acquire() as conn:
        rows = await dashboard.classes(conn, page.user, school_id)
    return render(page, "admin/classes.html", rows=rows)


@router.post("/s/{code}/classes")
async def class_create(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    name: Annotated[str, Form(max_length=64)] = "",
    grade: Annotated[str, Form(max_length=16)] = "",
    kind: Annotated[Literal["class", "department"], Form()] = "class",
) -> Response:
    school_id = await enter(page, pool, code, "a.classes")
    assert page.user is not None
    if not name.strip():
        raise DomainError("name is required", code="FIELD_REQUIRED", field="name", status=422)
    async with pool.acquire() as conn:
        await directory.create_class(
            conn, page.user, school_id, name=name.strip(), kind=kind, grade=grade.strip()
        )
    return redirect(f"/admin/s/{code}/classes")


@router.get("/s/{code}/cards")
async def cards_page(
    page: UserPage, pool: Pool, code: SchoolCode, q: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    school_id = await enter(page, pool, code, "a.cards")
    assert page.user is not None
    async with pool.acquire() as conn:
        rows = await dashboard.find_cards(conn, page.user, school_id, query=q.strip())
    return render(page, "admin/cards.html", rows=rows, q=q)


CARD_ACTIONS = ("report_loss", "unblock", "freeze", "unfreeze", "replace", "cancel")


@router.get("/s/{code}/cards/{card_id}")
async def card_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    card_id: Annotated[int, Path(ge=1, le=2**62)],
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.cards")
    return await _card_form(page, pool, school_id, card_id, done=done)


async def _card_form(
    page: Page,
    pool: PgPool,
    school_id: int,
    card_id: int,
    *,
    error: DomainError | None = None,
    done: str = "",
) -> Response:
    assert page.user is not None
    async with pool.acquire() as conn:
        card = await lifecycle.get_card(conn, page.user, card_id)
        if card["school_id"] != school_id:
            raise NotFound("no such card", field="card_id")
        holder = await directory.get_person(conn, page.user, card["person_id"])
    return render(
        page,
        "admin/card.html",
        status=error.status if error else 200,
        card=card,
        holder=holder,
        error=error,
        done=done if done in CARD_ACTIONS else "",
    )


@router.post("/s/{code}/cards/{card_id}/{action}")
async def card_action(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    card_id: Annotated[int, Path(ge=1, le=2**62)],
    action: Literal["report_loss", "unblock", "freeze", "unfreeze", "replace", "cancel"],
    reason: Annotated[str, Form(max_length=200)] = "",
    number: Annotated[str, Form(max_length=20)] = "",
    uid: Annotated[str, Form(max_length=20)] = "",
    fee_source: Annotated[Literal["purse", "cash_desk"], Form()] = "purse",
    route: Annotated[Literal["cash_desk", "bank_clearing", "provider_clearing"], Form()] = (
        "cash_desk"
    ),
) -> Response:
    """Card center: 挂失 / 解挂 (after checking the holder's identity) / freeze / unfreeze /
    补卡 (a new card for the same account, fee charged) / 注销 (deposit and balance paid out)."""
    school_id = await enter(page, pool, code, "a.cards")
    actor = page.user
    assert actor is not None
    try:
        async with pool.acquire() as conn:
            card = await lifecycle.get_card(conn, actor, card_id)
            if card["school_id"] != school_id:
                raise NotFound("no such card", field="card_id")
            if action == "report_loss":
                await lifecycle.report_loss(conn, actor, card_id, channel="counter", reason=reason)
            elif action == "unblock":
                await lifecycle.unblock_card(conn, actor, card_id, verification=reason)
            elif action == "freeze":
                await lifecycle.freeze_card(conn, actor, card_id, reason=reason)
            elif action == "unfreeze":
                await lifecycle.unfreeze_card(conn, actor, card_id, reason=reason)
            elif action == "replace":
                new_card = await lifecycle.replace_card(
                    conn,
                    actor,
                    card_id,
                    number=number.strip(),
                    uid=uid.strip().upper(),
                    fee_source=fee_source,
                    reason=reason,
                )
                card_id = int(new_card["id"])
            else:
                await lifecycle.cancel_card(conn, actor, card_id, route=route, reason=reason)
    except DomainError as err:
        if err.status in (403, 404):
            raise
        return await _card_form(page, pool, school_id, card_id, error=err)
    return redirect(f"/admin/s/{code}/cards/{card_id}?done={action}", request=page.request)


@router.get("/s/{code}/merchants")
async def merchants_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.merchants")
    return await _merchants(page, pool, school_id)


async def _merchants(
    page: Page,
    pool: PgPool,
    school_id: int,
    *,
    error: DomainError | None = None,
    key: dict[str, Any] | None = None,
    done: str = "",
) -> Response:
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        merchants = await dashboard.merchants(conn, actor, school_id)
        terminals = await dashboard.terminals(conn, actor, school_id)
        outlets = await payments_queries.school_outlets(conn, school_id)
    return render(
        page,
        "admin/merchants.html",
        status=error.status if error else 200,
        merchants=merchants,
        terminals=terminals,
        outlets=[dict(o) for o in outlets],
        can_manage=actor.has("school_admin", "settlement", school_id=school_id),
        channels=dashboard.CHANNELS,
        error=error,
        key=key,
        done=done,
    )


def _basis_points(text: str) -> int:
    """ "1.50" (per cent) → 150 basis points, exactly."""
    value = Money.parse(text.strip() or "0", field="commission", allow_zero=True).fen
    if value > 10000:
        raise DomainError("commission is at most 100 %", field="commission", status=422)
    return value


@router.post("/s/{code}/merchants")
async def merchant_create(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    name: Annotated[str, Form(max_length=64)] = "",
    name_en: Annotated[str, Form(max_length=128)] = "",
    channel: Annotated[str, Form(max_length=16)] = "",
    commission: Annotated[str, Form(max_length=8)] = "0",
) -> Response:
    school_id = await enter(page, pool, code, "a.merchants")
    assert page.user is not None
    try:
        if not name.strip():
            raise DomainError("name is required", code="FIELD_REQUIRED", field="name", status=422)
        async with pool.acquire() as conn:
            await merchants_svc.create_merchant(
                conn,
                page.user,
                school_id,
                name=name.strip(),
                name_en=name_en.strip(),
                channel=channel,
                commission_bp=_basis_points(commission),
                shards=8,
            )
    except DomainError as err:
        if err.status in (403, 404):
            raise
        return await _merchants(page, pool, school_id, error=err)
    return redirect(f"/admin/s/{code}/merchants")


@router.post("/s/{code}/merchants/{merchant_id}/{decision}")
async def merchant_decide(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    merchant_id: Annotated[int, Path(ge=1, le=2**62)],
    decision: Literal["approve", "reject", "suspend"],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.merchants")
    assert page.user is not None
    async with pool.acquire() as conn:
        found = await payments_queries.merchant_in_school(conn, merchant_id, school_id)
        if not found:
            raise NotFound("no such merchant", field="merchant_id")
        try:
            await merchants_svc.decide_merchant(
                conn, page.user, merchant_id, decision=decision, note=note
            )
        except DomainError as err:
            if err.status in (403, 404):
                raise
            return await _merchants(page, pool, school_id, error=err)
    return redirect(f"/admin/s/{code}/merchants")


@router.post("/s/{code}/terminals")
async def terminal_register(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    code: SchoolCode,
    sn: Annotated[str, Form(max_length=40)] = "",
    kind: Annotated[str, Form(max_length=8)] = "pos",
    merchant_id: Annotated[str, Form(max_length=20)] = "",
    outlet_id: Annotated[str, Form(max_length=20)] = "",
    location: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.merchants")
    assert page.user is not None
    try:
        if kind not in ("pos", "kiosk", "door", "shop"):
            raise DomainError("kind must be pos, kiosk, door or shop", field="kind", status=422)
        async with pool.acquire() as conn:
            answer = await terminals_svc.register_terminal(
                conn,
                page.user,
                settings,
                school_id,
                sn=sn.strip(),
                kind=kind,
                merchant_id=opt_int(merchant_id, "merchant_id"),
                outlet_id=opt_int(outlet_id, "outlet_id"),
                location=location.strip(),
            )
    except DomainError as err:
        if err.status == 403:
            raise
        return await _merchants(page, pool, school_id, error=err)
    # the key is shown once, on this answer only (it is derived, never stored)
    return await _merchants(page, pool, school_id, key=answer, done="registered")


@router.post("/s/{code}/terminals/{terminal_id}/{action}")
async def terminal_action(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    code: SchoolCode,
    terminal_id: Annotated[int, Path(ge=1, le=2**62)],
    action: Literal["rotate", "disable", "enable"],
) -> Response:
    school_id = await enter(page, pool, code, "a.merchants")
    assert page.user is not None
    async with pool.acquire() as conn:
        found = await payments_queries.terminal_in_school(conn, terminal_id, school_id)
        if not found:
            raise NotFound("no such terminal", field="terminal_id")
        if action == "rotate":
            answer = await terminals_svc.rotate_key(conn, page.user, settings, terminal_id)
        else:
            await terminals_svc.set_status(
                conn,
                page.user,
                terminal_id,
                status="disabled" if action == "disable" else "active",
                reason="console",
            )
    if action == "rotate":
        return await _merchants(page, pool, school_id, key=answer, done="rotated")
    return redirect(f"/admin/s/{code}/merchants")


@router.get("/s/{code}/audit")
async def audit_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    action: Annotated[str, Query(max_length=64)] = "",
    who: Annotated[str, Query(max_length=64)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    school_id = await enter(page, pool, code, "a.audit")
    assert page.user is not None
    async with pool.acquire() as conn:
        rows = await dashboard.audit_log(
            conn, page.user, school_id, action=action.strip(), who=who.strip(), before_id=before
        )
    return render(page, "admin/audit.html", rows=rows, action=action, who=who)


ReportFrom = Annotated[str, Query(alias="from", max_length=10)]
ReportTo = Annotated[str, Query(alias="to", max_length=10)]


async def _report(
    page: Page, pool: PgPool, code: str, from_text: str, to_text: str
) -> dict[str, Any]:
    school_id = await enter(page, pool, code, "a.reports")
    date_from, date_to = opt_date(from_text, "from"), opt_date(to_text, "to")
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        today = await dashboard.business_date(conn, school_id)
        date_to = date_to or today
        date_from = date_from or date_to - timedelta(days=13)
        return {
            "date_from": date_from,
            "date_to": date_to,
            "days": await dashboard.volume_by_day(conn, actor, school_id, date_from, date_to),
            "channels": await dashboard.volume_by_channel(
                conn, actor, school_id, date_from, date_to
            ),
            "merchants": await dashboard.volume_by_merchant(
                conn, actor, school_id, date_from, date_to
            ),
        }


@router.get("/s/{code}/reports")
async def reports_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    date_from: ReportFrom = "",
    date_to: ReportTo = "",
) -> Response:
    data = await _report(page, pool, code, date_from, date_to)
    merchant_chart = charts.bar_chart(
        [
            (m["name_en"] if page.locale == "en" and m["name_en"] else m["name"])
            for m in data["merchants"]
        ],
        [charts.Series(page.t("a.net"), [m["net"] for m in data["merchants"]])],
        title=page.t("a.by_merchant"),
        height=200,
    )
    channel_chart = charts.bar_chart(
        [page.t(f"channel.{c['channel']}") for c in data["channels"]],
        [charts.Series(page.t("a.net"), [c["net"] for c in data["channels"]])],
        title=page.t("a.by_channel"),
        height=200,
    )
    return render(
        page,
        "admin/reports.html",
        **data,
        day_chart=_days_chart(page, data["days"]),
        merchant_chart=merchant_chart,
        channel_chart=channel_chart,
        qs=f"from={data['date_from']}&to={data['date_to']}",
    )


def _table(page: Page, kind: str, data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The rows of one report as plain values: yuan as text with two decimals (exact)."""
    from campuscard.ledger.money import fmt

    if kind == "daily":
        head = [page.t("a.day")] + [page.t(f"channel.{c}") for c in dashboard.CHANNELS]
        head += [page.t("a.payments"), page.t("a.total")]
        body = [
            [str(d["day"])]
            + [fmt(d[c]) for c in dashboard.CHANNELS]
            + [d["payments"], fmt(d["total"])]
            for d in data["days"]
        ]
    elif kind == "merchant":
        head = [
            page.t("a.merchant"),
            page.t("a.channel"),
            page.t("a.payments"),
            page.t("a.gross"),
            page.t("a.refunds"),
            page.t("a.net"),
        ]
        body = [
            [
                m["name"],
                page.t(f"channel.{m['channel']}"),
                m["payments"],
                fmt(m["gross"]),
                fmt(m["refunds"]),
                fmt(m["net"]),
            ]
            for m in data["merchants"]
        ]
    else:
        head = [
            page.t("a.channel"),
            page.t("a.payments"),
            page.t("a.gross"),
            page.t("a.refunds"),
            page.t("a.net"),
        ]
        body = [
            [
                page.t(f"channel.{c['channel']}"),
                c["payments"],
                fmt(c["gross"]),
                fmt(c["refunds"]),
                fmt(c["net"]),
            ]
            for c in data["channels"]
        ]
    return head, body


@router.get("/s/{code}/reports/export.{fmt_}")
async def reports_export(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    fmt_: Literal["csv", "xlsx"],
    kind: Annotated[Literal["daily", "merchant", "channel"], Query()] = "daily",
    date_from: ReportFrom = "",
    date_to: ReportTo = "",
) -> Response:
    data = await _report(page, pool, code, date_from, date_to)
    head, body = _table(page, kind, data)
    name = f"{code}-{kind}-{data['date_from']}-{data['date_to']}"
    if fmt_ == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(safe_row(head))
        writer.writerows(safe_row(row) for row in body)
        # BOM so Excel opens the Chinese headers as UTF-8
        return Response(
            "\ufeff" + out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}.csv"'},
        )
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = kind
    sheet.append(head)
    for row in body:
        sheet.append(row)
    return Response(
        workbook_bytes(book),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"content-disposition": f'attachment; filename="{name}.xlsx"'},
    )
