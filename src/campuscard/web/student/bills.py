"""The student's and the parent's bills on the phone (/m/bills): the term's bills, a bill with
its lines, plan, holds and payments; paying from the card (the student, inside the tuition
channel's admission limit) or online through the provider (the student or a linked parent);
the payments so far and each one's printable electronic receipt. docs/bills.md"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response

from campuscard.bills import payments, rules, views
from campuscard.bills import queries as bill_queries
from campuscard.db.pool import PgPool
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.people import queries
from campuscard.platform.errors import DomainError
from campuscard.web import menu
from campuscard.web.core import Page, PostPage, UserPage, redirect, render
from campuscard.web.student.money import to_provider
from campuscard.web.student.routes import CHOOSE_CHILD, HOLDERS, PersonQ, holder

router = APIRouter(prefix="/m", include_in_schema=False)
menu.add("student", "m.bills", "/m/bills", HOLDERS, 16)

BillId = Annotated[int, Path(ge=1, le=2**62)]
ReceiptNo = Annotated[str, Path(max_length=48, pattern=r"^[A-Za-z0-9-]+$")]


@contextlib.asynccontextmanager
async def tuition_lane(page: Page) -> AsyncIterator[None]:
    """A card payment of a bill waits in the tuition channel's admission limit, like the API's
    (docs/channels.md): a registration-day queue cannot take the canteen's connections. The
    limiter is the app's own (``app.state.channel_limiter``)."""
    limiter: Any = getattr(page.request.app.state, "channel_limiter", None)
    if limiter is None:
        yield
        return
    async with limiter.admit("tuition"):
        yield


@router.get("/bills")
async def bills_page(page: UserPage, pool: Pool, person: PersonQ = None) -> Response:
    page.require("m.bills")
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
    assert page.user is not None
    school_id = subject["school_id"]
    bills = await views.bills_of(pool, page.user, school_id, subject["id"])
    history = await bill_queries.payments_of_person(pool, school_id, subject["id"])
    owed = sum(Money.parse(b["owed"]).fen for b in bills)
    return render(
        page,
        "student/bills.html",
        subject=subject,
        bills=bills,
        history=history,
        owed=owed,
        reference=rules.payment_reference(school_id, subject["id"]),
        person_qs=f"?person={subject['id']}" if page.extra.get("on_behalf") else "",
    )


async def _bill_view(
    page: Page,
    pool: PgPool,
    bill_id: int,
    *,
    error: DomainError | None = None,
    paid: str = "",
    amount: str = "",
) -> Response:
    actor = page.require("m.bills")
    school_id = await bill_queries.school_of_bill_for(pool, actor, bill_id)
    bill = await views.bill(pool, actor, school_id, bill_id)
    async with pool.acquire() as conn:
        subject = await holder(page, conn, bill["person_id"])
        if subject is None:
            return redirect(CHOOSE_CHILD)
        held = await queries.held(conn, subject["id"], school_id=subject["school_id"])
        balances = await queries.purses(conn, subject["id"], school_id=subject["school_id"])
    own = actor.person_id == subject["id"]
    return render(
        page,
        "student/bill.html",
        status=error.status if error else 200,
        subject=subject,
        bill=bill,
        own=own,
        cash=balances.get("cash", 0) - held,
        error=error,
        paid=paid,
        amount=amount or (bill["owed"] if bill["status"] == "open" else ""),
        client_id=secrets.token_hex(12),
        reference=bill["payment_reference"],
    )


@router.get("/bills/{bill_id}")
async def bill_page(
    page: UserPage,
    pool: Pool,
    bill_id: BillId,
    paid: Annotated[str, Query(max_length=48, pattern=r"^[A-Za-z0-9-]*$")] = "",
) -> Response:
    """``?paid=<receipt no>`` says the payment just made went through, with its receipt."""
    return await _bill_view(page, pool, bill_id, paid=paid)


def _refusal(status: int, body: dict[str, Any]) -> DomainError:
    err = body.get("error") or {}
    return DomainError(
        err.get("message", ""),
        code=err.get("code", "CONFLICT"),
        field=err.get("field"),
        status=status,
    )


@router.post("/bills/{bill_id}/card")
async def pay_from_card(
    page: PostPage,
    pool: Pool,
    bill_id: BillId,
    amount: Annotated[str, Form(max_length=20)] = "",
    client_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The student pays all or part of the bill from the card's cash purse."""
    actor = page.require("m.bills")
    try:
        money = Money.parse(amount.strip(), field="amount")
        school_id = await bill_queries.school_of_bill_for(pool, actor, bill_id)
        async with tuition_lane(page):
            outcome = await payments.do_pay_from_card(
                pool, actor, school_id, bill_id, amount=money, client_id=client_id
            )
        if outcome.status >= 400:
            raise _refusal(outcome.status, outcome.body)
    except DomainError as err:
        return await _bill_view(page, pool, bill_id, error=err, amount=amount)
    return redirect(f"/m/bills/{bill_id}?paid={outcome.body['receipt_no']}", request=page.request)


@router.post("/bills/{bill_id}/online")
async def pay_online(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    bill_id: BillId,
    amount: Annotated[str, Form(max_length=20)] = "",
    client_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The student or a linked parent opens a provider order for the bill and goes on to the
    provider's cashier page; the bill is paid when the provider says so."""
    actor = page.require("m.bills")
    try:
        money = Money.parse(amount.strip(), field="amount")
        school_id = await bill_queries.school_of_bill_for(pool, actor, bill_id)
        status, view = await payments.do_pay_online(
            pool, settings, actor, school_id, bill_id, amount=money, client_id=client_id
        )
        if status >= 400:
            raise _refusal(status, view)
    except DomainError as err:
        return await _bill_view(page, pool, bill_id, error=err, amount=amount)
    return to_provider(page, view["pay_url"], view["amount"])


@router.get("/receipts/{receipt_no}")
async def receipt_page(page: UserPage, pool: Pool, receipt_no: ReceiptNo) -> Response:
    """A payment's numbered electronic receipt, laid out to print on A5 or A4."""
    actor = page.require("m.bills")
    school_id = await bill_queries.school_of_receipt_for(pool, actor, receipt_no)
    receipt = await views.receipt(pool, actor, school_id, receipt_no)
    return render(page, "student/receipt.html", receipt=receipt)
