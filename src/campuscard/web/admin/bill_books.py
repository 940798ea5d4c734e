"""The finance console's books for bills: a day's receipts per fee item and method against the
bank's and the provider's statements, each fee item's ledger, CSV/XLSX exports (items with
their books, the term's bills, a day's receipts, arrears by class), and bill sheet imports
through the browser uploader (the same framed handshake as the student import). docs/bills.md"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from campuscard.bills import queries as bill_queries
from campuscard.bills import views
from campuscard.db.pool import PgPool
from campuscard.documents.exports import to_csv, to_xlsx
from campuscard.edge.deps import Pool
from campuscard.people import queries as people_queries
from campuscard.settlement import reconciliation
from campuscard.web.admin.bills import term_shown
from campuscard.web.admin.routes import SchoolCode, enter
from campuscard.web.core import Page, UserPage, opt_date, render

router = APIRouter(prefix="/admin", include_in_schema=False)

DayQ = Annotated[str, Query(max_length=10)]
EXPORT_LIMIT = 50_000


async def _day(pool: PgPool, school_id: int, day: str) -> Any:
    return opt_date(day, "day") or await people_queries.business_date(pool, school_id)


@router.get("/s/{code}/bills/reports")
async def reports_page(page: UserPage, pool: Pool, code: SchoolCode, day: DayQ = "") -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    chosen = await _day(pool, school_id, day)
    rows = await bill_queries.daily_reconciliation(pool, school_id, chosen)
    async with pool.acquire() as conn:
        statements = [
            s
            for s in await reconciliation.list_imports(conn, school_id)
            if s["statement_date"] == chosen.isoformat()
        ]
    return render(
        page,
        "admin/bill_reports.html",
        day=chosen.isoformat(),
        rows=rows,
        statements=statements,
    )


@router.get("/s/{code}/bills/items/{item_id}")
async def item_ledger_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    item_id: Annotated[int, Path(ge=1, le=2**62)],
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    ledger = await bill_queries.item_ledger(pool, school_id, item_id)
    return render(page, "admin/bill_ledger.html", ledger=ledger)


@router.get("/s/{code}/bills/imports")
async def imports_page(page: UserPage, pool: Pool, code: SchoolCode, term: str = "") -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    chosen, _ = await term_shown(pool, school_id, term[:11])
    return render(
        page,
        "admin/bill_imports.html",
        term=chosen,
        imports=await bill_queries.sheet_imports(pool, school_id),
    )


def _columns(page: Page, kind: str) -> tuple[list[tuple[str, str]], frozenset[str]]:
    t = page.t
    if kind == "items":
        cols = [
            ("term", t("a.bl.term")),
            ("name", t("a.bl.item")),
            ("kind_text", t("a.bl.kind")),
            ("due_date", t("a.bl.due")),
            ("bills", t("a.bl.bills_n")),
            ("billed", t("a.bl.billed")),
            ("adjusted", t("a.bl.adjusted")),
            ("paid", t("a.bl.paid")),
            ("owed", t("a.bl.owed")),
        ]
        return cols, frozenset({"billed", "adjusted", "paid", "owed"})
    if kind == "bills":
        cols = [
            ("person_number", t("a.bl.number")),
            ("person_name", t("a.bl.student")),
            ("class_name", t("a.class")),
            ("term", t("a.bl.term")),
            ("total", t("a.bl.total")),
            ("paid", t("a.bl.paid")),
            ("owed", t("a.bl.owed")),
            ("due_date", t("a.bl.due")),
            ("status_text", t("a.status")),
            ("days_overdue", t("a.bl.days_overdue")),
            ("deferred_until", t("a.bl.defer_until")),
        ]
        return cols, frozenset({"total", "paid", "owed"})
    if kind == "daily":
        cols = [
            ("item", t("a.bl.item")),
            ("method_text", t("m.bill.method")),
            ("payments", t("a.bl.payments_n")),
            ("amount", t("a.bl.amount")),
            ("matched", t("a.bl.matched")),
            ("waiting", t("a.bl.waiting_statement")),
        ]
        return cols, frozenset({"amount"})
    cols = [
        ("class_name", t("a.class")),
        ("bills", t("a.bl.bills_n")),
        ("owed", t("a.bl.owed")),
    ]
    return cols, frozenset({"owed"})


async def _rows(
    page: Page, pool: PgPool, school_id: int, kind: str, term: str, day: str
) -> tuple[str, list[dict[str, Any]]]:
    t = page.t
    if kind == "items":
        chosen, _ = await term_shown(pool, school_id, term)
        items = await bill_queries.items(pool, school_id, chosen)
        return chosen, [i | {"kind_text": t(f"bill.kind.{i['kind']}")} for i in items]
    if kind == "bills":
        chosen, _ = await term_shown(pool, school_id, term)
        bills = await bill_queries.bills_list(pool, school_id, term=chosen, limit=EXPORT_LIMIT)
        return chosen, [
            b
            | {"status_text": t(f"bill.status.{b['status']}"), "class_name": b["class_name"] or ""}
            for b in bills
        ]
    if kind == "daily":
        chosen_day = await _day(pool, school_id, day)
        rows = await bill_queries.daily_reconciliation(pool, school_id, chosen_day)
        return chosen_day.isoformat(), [
            r
            | {
                "item": r["item"] or t("a.bl.returned"),
                "method_text": t(f"bill.method.{r['method']}"),
                "matched": r["matched"] or "",
                "waiting": r["waiting"] or "",
            }
            for r in rows
        ]
    assert page.user is not None
    summary = await views.arrears(pool, page.user, school_id)
    return summary["as_of"], [
        c | {"class_name": c["class_name"] or t("a.bl.no_class")} for c in summary["by_class"]
    ]


@router.get("/s/{code}/bills/export.{fmt_}")
async def export(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    fmt_: Literal["csv", "xlsx"],
    kind: Annotated[Literal["items", "bills", "daily", "arrears"], Query()] = "items",
    term: Annotated[str, Query(max_length=11)] = "",
    day: DayQ = "",
) -> Response:
    """Formula-safe exports (documents/exports.py) of what the pages show."""
    school_id = await enter(page, pool, code, "a.bills")
    which, rows = await _rows(page, pool, school_id, kind, term, day)
    columns, money = _columns(page, kind)
    name = f"{code}-bills-{kind}-{which}"
    if fmt_ == "csv":
        return Response(
            to_csv(columns, rows),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        to_xlsx(kind, columns, rows, money),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"content-disposition": f'attachment; filename="{name}.xlsx"'},
    )
