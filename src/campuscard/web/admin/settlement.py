"""Console pages of the settlement center: closing business days (statements, payout file),
reconciliation with the bank and the provider (imports, suspense cases, resolution), and the
consumption report per class and category with its chart. Each page calls one service."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.edge.limits import accepts_upload
from campuscard.ledger.money import Money
from campuscard.people import queries as people_queries
from campuscard.platform.errors import DomainError, ValidationFailed
from campuscard.settlement import clearing, reconciliation, reconciliation_rules, reports
from campuscard.web import charts, menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, PostPage, UserPage, opt_choice, opt_date, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)
SETTLERS = {"school_admin", "settlement"}
menu.add("admin", "a.settlement", BASE + "/settlement", SETTLERS, 82)
menu.add("admin", "a.reconciliation", BASE + "/reconciliation", SETTLERS, 84)
menu.add("admin", "a.consumption", BASE + "/consumption", SETTLERS, 86)


@router.get("/s/{code}/settlement")
async def settlement_page(page: UserPage, pool: Pool, code: SchoolCode, day: str = "") -> Response:
    school_id = await enter(page, pool, code, "a.settlement")
    return await _settlement(page, pool, code, school_id, opt_date(day, "day"))


async def _settlement(
    page: Page,
    pool: PgPool,
    code: str,
    school_id: int,
    wanted: date | None,
    *,
    error: str = "",
    closing: DomainError | None = None,
    early: bool = False,
    close_day: date | None = None,
) -> Response:
    async with pool.acquire() as conn:
        days = await clearing.list_days(conn, school_id)
        today: date = await people_queries.business_date(conn, school_id)
        shown = None
        if wanted is not None or days:
            try:
                shown = await clearing.day_view(
                    conn, school_id, wanted or date.fromisoformat(days[0]["business_date"])
                )
            except DomainError as err:
                error = error or page.err(err)
    chart = None
    if shown and shown["merchants"]:
        chart = charts.bar_chart(
            [m["merchant"] for m in shown["merchants"]],
            [
                charts.Series(
                    page.t("a.gross"),
                    [Money.parse(m["gross"], allow_zero=True).fen for m in shown["merchants"]],
                ),
                charts.Series(
                    page.t("a.payout"),
                    [
                        max(Money.parse(m["payout"].lstrip("-"), allow_zero=True).fen, 0)
                        for m in shown["merchants"]
                    ],
                ),
            ],
            title=page.t("a.settlement"),
            height=200,
        )
    return render(
        page,
        "admin/settlement.html",
        days=days,
        shown=shown,
        chart=chart,
        # the day to close: the last one that is over, unless the operator chose one
        close_day=(close_day or today - timedelta(days=1)).isoformat(),
        today=today.isoformat(),
        early=early,
        error=page.err(closing) if closing else error,
        status=closing.status if closing else 200,
        api=f"/api/v1/admin/schools/{code}/settlement",
    )


@router.post("/s/{code}/settlement/close")
async def settlement_close(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    day: Annotated[str, Form(max_length=10)],
    early: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.settlement")
    actor = page.user
    assert actor is not None
    wanted = opt_date(day, "day")
    if wanted is None:
        raise ValidationFailed("day is required", code="FIELD_REQUIRED", field="day")
    try:
        await clearing.do_close_day(pool, actor, school_id, wanted, early=early == "on")
    except DomainError as err:  # stay on the page, in its language, with the form kept
        return await _settlement(
            page, pool, code, school_id, None, closing=err, early=early == "on", close_day=wanted
        )
    return redirect(f"/admin/s/{code}/settlement?day={wanted.isoformat()}", request=page.request)


@router.get("/s/{code}/reconciliation")
async def reconciliation_page(
    page: UserPage, pool: Pool, code: SchoolCode, status: str = "open"
) -> Response:
    school_id = await enter(page, pool, code, "a.reconciliation")
    wanted = opt_choice(status or None, "status", ("open", "pending_approval", "resolved"))
    async with pool.acquire() as conn:
        balances = await reconciliation.balances(conn, school_id)
        imports = await reconciliation.list_imports(conn, school_id, limit=20)
        cases = await reconciliation.list_cases(conn, school_id, status=wanted)
    return render(
        page,
        "admin/reconciliation.html",
        balances=balances,
        imports=imports,
        cases=cases,
        case_status=wanted or "",
    )


@router.post("/s/{code}/reconciliation/import")
@accepts_upload(reconciliation_rules.MAX_FILE_BYTES)
async def reconciliation_import(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    source: Annotated[str, Form(max_length=10)],
    file: Annotated[UploadFile, File()],
    statement_date: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.reconciliation")
    actor = page.user
    assert actor is not None
    content = await file.read(20 * 1024 * 1024)
    await reconciliation.do_import_statement(
        pool,
        actor,
        school_id,
        source=opt_choice(source, "source", ("bank", "provider")) or "",
        content=content,
        file_name=file.filename or "",
        statement_date=opt_date(statement_date, "statement_date"),
    )
    return redirect(f"/admin/s/{code}/reconciliation", request=page.request)


@router.post("/s/{code}/reconciliation/cases/{case_id}")
async def reconciliation_case(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    case_id: int,
    action: Annotated[str, Form(max_length=20)],
    note: Annotated[str, Form(max_length=200)] = "",
    target_account: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.reconciliation")
    actor = page.user
    assert actor is not None
    if action in ("approve", "reject"):
        await reconciliation.do_decide_write_off(
            pool, actor, school_id, case_id, approve=action == "approve", note=note or action
        )
    else:
        target = int(target_account) if target_account.strip().isdigit() else None
        await reconciliation.do_resolve_case(
            pool, actor, school_id, case_id, action=action, note=note, target_account=target
        )
    return redirect(f"/admin/s/{code}/reconciliation", request=page.request)


@router.get("/s/{code}/consumption")
async def consumption_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    date_from: Annotated[str, Query(alias="from", max_length=10)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=10)] = "",
    group_by: str = "class",
) -> Response:
    school_id = await enter(page, pool, code, "a.consumption")
    group = opt_choice(group_by, "group_by", ("class", "category")) or "class"
    async with pool.acquire() as conn:
        today: date = await people_queries.business_date(conn, school_id)
        d_to = opt_date(date_to, "to") or today
        d_from = opt_date(date_from, "from") or d_to.replace(day=1)
        data = await reports.consumption(conn, school_id, d_from, d_to, group_by=group)
    groups = sorted({r["group"] for r in data["rows"]})
    channels = sorted({r["channel"] for r in data["rows"]})
    by = {
        (r["group"], r["channel"]): Money.parse(r["spent"].lstrip("-"), allow_zero=True).fen
        for r in data["rows"]
    }
    chart = charts.bar_chart(
        groups,
        [
            charts.Series(page.t(f"channel.{ch}"), [by.get((g, ch), 0) for g in groups])
            for ch in channels
        ],
        title=page.t("a.consumption"),
        height=220,
    )
    qs = f"date_from={d_from}&date_to={d_to}&group_by={group}&lang={page.locale}"
    return render(
        page,
        "admin/consumption.html",
        rows=data["rows"],
        chart=chart,
        date_from=d_from.isoformat(),
        date_to=d_to.isoformat(),
        group_by=group,
        export=f"/api/v1/admin/schools/{code}/reports/consumption?{qs}",
    )
