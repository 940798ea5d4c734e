"""The finance console's payroll (工资管理): upload a payroll sheet through the browser uploader
(the student import's framed handshake; a refused sheet names every bad row in the page's
language), the batch as uploaded for a second person to approve or reject, then its report as
the lines are paid (paid, at the bank, failed, totals) with CSV/XLSX exports. docs/payroll.md"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path
from fastapi.responses import Response

from campuscard.adapters.bank import iso
from campuscard.db.pool import PgPool
from campuscard.documents.exports import to_csv, to_xlsx
from campuscard.edge.deps import Pool
from campuscard.payroll import batches, queries
from campuscard.people import queries as people_queries
from campuscard.platform import four_eyes
from campuscard.platform.errors import DomainError
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, PostPage, UserPage, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)
menu.add("admin", "a.payroll", BASE + "/payroll", {"settlement", "school_admin"}, 64)

BatchId = Annotated[int, Path(ge=1, le=2**62)]
# every code a refused row can carry (payroll/rules.py, payroll/batches.py), worded by the page
ROW_CODES = (
    "NUMBER_FORMAT",
    "AMOUNT_INVALID",
    "ROUTE_INVALID",
    "MEMO_LENGTH",
    "DUPLICATE_ROW",
    "TOTAL_TWICE",
    "AFTER_TOTAL",
    "TOTAL_MISSING",
    "TOTAL_MISMATCH",
    "NO_STAFF",
    "NOT_STAFF",
    "STAFF_LEFT",
    "NAME_MISMATCH",
    "NO_ACCOUNT",
    "NO_BANK_CARD",
)


@router.get("/s/{code}/payroll")
async def payroll_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.payroll")
    assert page.user is not None
    today = await people_queries.business_date(pool, school_id)
    return render(
        page,
        "admin/payroll.html",
        batches=await queries.list_batches(pool, page.user, school_id),
        period=today.strftime("%Y-%m"),
        row_codes=ROW_CODES,
    )


async def _batch_view(
    page: Page, pool: PgPool, school_id: int, batch_id: int, *, error: DomainError | None = None
) -> Response:
    assert page.user is not None
    report = await queries.batch_report(pool, page.user, school_id, batch_id)
    return render(
        page,
        "admin/payroll_batch.html",
        status=error.status if error else 200,
        b=report,
        me=page.user.user_id,
        can_repay=page.user.has(*batches.UPLOADER_ROLES, school_id=school_id),
        bank_worded=iso.WORDED,
        error=error,
    )


@router.get("/s/{code}/payroll/{batch_id}")
async def batch_page(page: UserPage, pool: Pool, code: SchoolCode, batch_id: BatchId) -> Response:
    school_id = await enter(page, pool, code, "a.payroll")
    return await _batch_view(page, pool, school_id, batch_id)


@router.post("/s/{code}/payroll/{batch_id}/decide")
async def batch_decide(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    batch_id: BatchId,
    decision: Annotated[Literal["approve", "reject"], Form()],
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """A second person approves (every line is paid now) or rejects with a reason."""
    school_id = await enter(page, pool, code, "a.payroll")
    assert page.user is not None
    report = await queries.batch_report(pool, page.user, school_id, batch_id)
    try:
        await four_eyes.do_decide(
            pool,
            page.user,
            school_id,
            report["approval_id"],
            approve=decision == "approve",
            note=note,
        )
    except DomainError as err:
        return await _batch_view(page, pool, school_id, batch_id, error=err)
    return redirect(f"/admin/s/{code}/payroll/{batch_id}")


@router.post("/s/{code}/payroll/{batch_id}/lines/{row}/repay")
async def line_repay(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    batch_id: BatchId,
    row: Annotated[int, Path(ge=1, le=1_000_000)],
    failed_transfer_id: Annotated[int, Form(ge=1, le=2**62)],
    route: Annotated[Literal["bank", "campus"], Form()],
) -> Response:
    """A line whose bank payout failed, paid again to the bank card or the campus account."""
    school_id = await enter(page, pool, code, "a.payroll")
    assert page.user is not None
    try:
        await batches.do_repay_line(
            pool,
            page.user,
            school_id,
            batch_id,
            row,
            failed_transfer_id=failed_transfer_id,
            route=route,
        )
    except DomainError as err:
        return await _batch_view(page, pool, school_id, batch_id, error=err)
    return redirect(f"/admin/s/{code}/payroll/{batch_id}")


def _columns(page: Page) -> list[tuple[str, str]]:
    t = page.t
    return [
        ("row", t("a.pr.row")),
        ("number", t("a.pr.number")),
        ("name", t("a.pr.name")),
        ("amount", t("a.pr.amount")),
        ("route_text", t("a.pr.route")),
        ("state_text", t("a.status")),
        ("rrn", t("a.pr.rrn")),
        ("settled_at", t("a.pr.settled_at")),
        ("memo", t("a.pr.memo")),
    ]


@router.get("/s/{code}/payroll/{batch_id}/export.{fmt_}")
async def batch_export(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    batch_id: BatchId,
    fmt_: Literal["csv", "xlsx"],
) -> Response:
    """The batch's report, one row per line, formula-safe (documents/exports.py)."""
    school_id = await enter(page, pool, code, "a.payroll")
    assert page.user is not None
    report = await queries.batch_report(pool, page.user, school_id, batch_id)
    t = page.t
    rows: list[dict[str, Any]] = [
        line
        | {
            "route_text": t(f"a.pr.route.{line['route']}"),
            "state_text": t(f"a.pr.state.{line['state']}"),
            "rrn": line["rrn"] or "",
            "settled_at": line["settled_at"] or "",
        }
        for line in report["line_rows"]
    ]
    name = f"{code}-payroll-{report['period']}-{batch_id}"
    if fmt_ == "csv":
        return Response(
            to_csv(_columns(page), rows),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        to_xlsx("payroll", _columns(page), rows, frozenset({"amount"})),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"content-disposition": f'attachment; filename="{name}.xlsx"'},
    )
