"""The finance console for bills and fees (/admin/s/{school}/bills…): the term's fee items with
their books and rates, issuing the term's bills, the bills with filters, one bill with its
instalment plan, green-channel deferral and proposed adjustments or waivers (a second person
approves them at the approvals page), arrears by age and class (teachers too), and receipts.
Each form calls the same use case as the API. docs/bills.md"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response

from campuscard.bills import adjustments, billing, rules, views
from campuscard.bills import queries as bill_queries
from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.ledger.money import Money
from campuscard.people import queries as people_queries
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import (
    Page,
    PostPage,
    UserPage,
    fen_of,
    opt_choice,
    opt_date,
    opt_int,
    redirect,
    render,
)

router = APIRouter(prefix="/admin", include_in_schema=False)
FINANCE_PAGES = {"school_admin", "settlement"}
menu.add("admin", "a.bills", BASE + "/bills", FINANCE_PAGES, 66)
menu.add("admin", "a.arrears", BASE + "/arrears", FINANCE_PAGES | {"teacher"}, 67)

BillId = Annotated[int, Path(ge=1, le=2**62)]
TermQ = Annotated[str, Query(max_length=11)]
PAGE_SIZE = 100
RATE_ROWS = 3  # rate lines offered on the new-item form


async def term_shown(pool: PgPool, school_id: int, term: str) -> tuple[str, list[str]]:
    """The term shown: the one asked for, else the newest with items, else this one."""
    known = await bill_queries.terms(pool, school_id)
    if term.strip():
        return rules.check_term(term.strip()), known
    if known:
        return known[0], known
    today = await people_queries.business_date(pool, school_id)
    return rules.term_of(today), known


async def _items_view(
    page: Page,
    pool: PgPool,
    school_id: int,
    term: str,
    *,
    error: DomainError | None = None,
    notice: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    chosen, known = await term_shown(pool, school_id, term)
    items = await bill_queries.items(pool, school_id, chosen)
    classes = await people_queries.school_classes(pool, school_id)
    waiting = await bill_queries.pending_adjustments(pool, school_id)
    return render(
        page,
        "admin/bills.html",
        status=error.status if error else 200,
        term=chosen,
        terms=sorted({*known, chosen}, reverse=True),
        items=items,
        classes=classes,
        kinds=rules.ITEM_KINDS,
        scopes=rules.SCOPES,
        rate_rows=range(RATE_ROWS),
        waiting=waiting,
        error=error,
        notice=notice,
        form=form or {},
    )


@router.get("/s/{code}/bills")
async def bills_home(
    page: UserPage, pool: Pool, code: SchoolCode, term: TermQ = "", done: str = ""
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    notice = page.t(f"a.bl.done.{done}") if done in ("item", "issued") else ""
    return await _items_view(page, pool, school_id, term, notice=notice)


@router.post("/s/{code}/bills/items")
async def create_item(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    term: Annotated[str, Form(max_length=11)] = "",
    kind: Annotated[str, Form(max_length=20)] = "",
    name: Annotated[str, Form(max_length=64)] = "",
    amount: Annotated[str, Form(max_length=20)] = "",
    due_date: Annotated[str, Form(max_length=10)] = "",
    rate_scope: Annotated[list[str] | None, Form(max_length=RATE_ROWS)] = None,
    rate_value: Annotated[list[str] | None, Form(max_length=RATE_ROWS)] = None,
    rate_amount: Annotated[list[str] | None, Form(max_length=RATE_ROWS)] = None,
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    assert page.user is not None
    form = {"kind": kind, "name": name, "amount": amount, "due_date": due_date}
    try:
        due = opt_date(due_date, "due_date")
        if due is None:
            raise ValidationFailed("due_date is required", code="FIELD_REQUIRED", field="due_date")
        rates = []
        for i, (scope, value, fen) in enumerate(
            zip(rate_scope or [], rate_value or [], rate_amount or [], strict=False)
        ):
            if not value.strip() and not fen.strip():
                continue  # an unused rate row
            rates.append(
                billing.Rate(
                    opt_choice(scope, f"rates[{i}].scope", rules.SCOPES) or "",
                    value,
                    Money.parse(fen.strip(), field=f"rates[{i}].amount", allow_zero=True),
                )
            )
        await billing.do_create_item(
            pool,
            page.user,
            school_id,
            term=term.strip(),
            kind=kind,
            name=name,
            amount=Money.parse(amount.strip(), field="amount", allow_zero=True)
            if amount.strip()
            else None,
            due_date=due,
            rates=rates,
        )
    except DomainError as err:
        return await _items_view(page, pool, school_id, term, error=err, form=form)
    return redirect(f"/admin/s/{code}/bills?term={term.strip()}&done=item", request=page.request)


@router.post("/s/{code}/bills/issue")
async def issue_bills(
    page: PostPage, pool: Pool, code: SchoolCode, term: Annotated[str, Form(max_length=11)] = ""
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    assert page.user is not None
    try:
        out = await billing.do_issue_bills(pool, page.user, school_id, term=term.strip())
    except DomainError as err:
        return await _items_view(page, pool, school_id, term, error=err)
    notice = page.t(
        "a.bl.issued",
        bills=out["bills_created"],
        lines=out["lines_added"],
        amount=page.money(fen_of(out["amount"])),
    )
    return await _items_view(page, pool, school_id, term, notice=notice)


@router.get("/s/{code}/bills/list")
async def bills_list(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    term: TermQ = "",
    status: Annotated[str, Query(max_length=10)] = "",
    class_id: Annotated[str, Query(alias="class", max_length=19)] = "",
    overdue: Annotated[str, Query(max_length=3)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    chosen, known = await term_shown(pool, school_id, term)
    chosen_status = opt_choice(status, "status", ("open", "paid"))
    chosen_class = opt_int(class_id, "class")
    flt: dict[str, Any] = {
        "status": chosen_status,
        "class_id": chosen_class,
        "overdue": overdue == "on",
    }
    rows = await bill_queries.bills_list(
        pool,
        school_id,
        term=chosen,
        status=chosen_status,
        class_id=chosen_class,
        overdue_only=overdue == "on",
        limit=PAGE_SIZE + 1,
        offset=offset,
    )
    return render(
        page,
        "admin/bills_list.html",
        term=chosen,
        terms=sorted({*known, chosen}, reverse=True),
        bills=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        offset=offset,
        page_size=PAGE_SIZE,
        flt=flt,
        classes=await people_queries.school_classes(pool, school_id),
    )


async def _bill_view(
    page: Page,
    pool: PgPool,
    school_id: int,
    bill_id: int,
    *,
    error: DomainError | None = None,
    notice: str = "",
) -> Response:
    assert page.user is not None
    bill = await views.bill(pool, page.user, school_id, bill_id)
    return render(
        page,
        "admin/bill.html",
        status=error.status if error else 200,
        bill=bill,
        error=error,
        notice=notice,
    )


@router.get("/s/{code}/bills/{bill_id:int}")
async def bill_page(
    page: UserPage, pool: Pool, code: SchoolCode, bill_id: BillId, done: str = ""
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    notice = page.t(f"a.bl.done.{done}") if done in ("plan", "defer", "proposed") else ""
    return await _bill_view(page, pool, school_id, bill_id, notice=notice)


@router.post("/s/{code}/bills/{bill_id:int}/plan")
async def set_plan(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    bill_id: BillId,
    instalments: Annotated[str, Form(max_length=3)] = "",
    first_due: Annotated[str, Form(max_length=10)] = "",
    every_days: Annotated[str, Form(max_length=4)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    assert page.user is not None
    try:
        count = opt_int(instalments, "instalments")
        every = opt_int(every_days, "every_days")
        first = opt_date(first_due, "first_due")
        if count is None:
            raise ValidationFailed("instalments is required", field="instalments")
        if first is None:
            raise ValidationFailed("first_due is required", field="first_due")
        if every is None:
            raise ValidationFailed("every_days is required", field="every_days")
        await billing.do_set_plan(
            pool,
            page.user,
            school_id,
            bill_id,
            instalments=count,
            first_due=first,
            every_days=every,
        )
    except DomainError as err:
        return await _bill_view(page, pool, school_id, bill_id, error=err)
    return redirect(f"/admin/s/{code}/bills/{bill_id}?done=plan", request=page.request)


@router.post("/s/{code}/bills/{bill_id:int}/defer")
async def defer(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    bill_id: BillId,
    until: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    assert page.user is not None
    try:
        day = opt_date(until, "until")
        if day is None:
            raise ValidationFailed("until is required", code="FIELD_REQUIRED", field="until")
        await billing.do_defer(pool, page.user, school_id, bill_id, until=day, reason=reason)
    except DomainError as err:
        return await _bill_view(page, pool, school_id, bill_id, error=err)
    return redirect(f"/admin/s/{code}/bills/{bill_id}?done=defer", request=page.request)


@router.post("/s/{code}/bills/{bill_id:int}/adjust")
async def propose_adjustment(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    bill_id: BillId,
    line_id: Annotated[str, Form(max_length=19)] = "",
    kind: Annotated[str, Form(max_length=12)] = "",
    new_amount: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Propose a line's new amount or its waiver; another person decides at the approvals page."""
    school_id = await enter(page, pool, code, "a.bills")
    assert page.user is not None
    try:
        line = opt_int(line_id, "line_id")
        if line is None or not await bill_queries.line_of_bill(pool, school_id, bill_id, line):
            raise NotFound("no such line on this bill", field="line_id")
        await adjustments.do_propose(
            pool,
            page.user,
            school_id,
            line,
            kind=opt_choice(kind, "kind", adjustments.KINDS) or "",
            new_amount=Money.parse(new_amount.strip(), field="new_amount", allow_zero=True)
            if new_amount.strip()
            else None,
            reason=reason,
        )
    except DomainError as err:
        return await _bill_view(page, pool, school_id, bill_id, error=err)
    return redirect(f"/admin/s/{code}/bills/{bill_id}?done=proposed", request=page.request)


@router.get("/s/{code}/arrears")
async def arrears_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    """Arrears by age bucket and by class: the finance office, and teachers (supervision)."""
    school_id = await enter(page, pool, code, "a.arrears")
    assert page.user is not None
    summary: dict[str, Any] = await views.arrears(pool, page.user, school_id)
    return render(
        page,
        "admin/arrears.html",
        summary=summary,
        finance=menu.allowed(page.user, menu.item("a.bills"), school_id),
    )


@router.get("/s/{code}/receipts/{receipt_no}")
async def receipt_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    receipt_no: Annotated[str, Path(max_length=48, pattern=r"^[A-Za-z0-9-]+$")],
) -> Response:
    school_id = await enter(page, pool, code, "a.bills")
    assert page.user is not None
    receipt = await views.receipt(pool, page.user, school_id, receipt_no)
    return render(page, "admin/bill_receipt.html", receipt=receipt)
