"""Bills: a student's (or a linked parent's) bills, a bill with its lines, paying from the card
through the tuition channel's admission limit or online through the provider (the student or
a linked parent), a receipt; arrears for the finance office and teachers. docs/bills.md"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.admission import Limiter
from campuscard.api.deps import Body, CurrentActor
from campuscard.bills import payments, sheets, views
from campuscard.edge.deps import AppSettings, Pool, school_id_for
from campuscard.edge.limits import accepts_upload, read_framed_upload
from campuscard.issuing.import_rules import MAX_FILE_BYTES
from campuscard.ledger.money import Money
from campuscard.platform.idempotency import check_client_id

router = APIRouter(prefix="/api/v1/schools/{school}", tags=["bills"])
Id = Annotated[int, Path(ge=1, le=2**62)]


class BillOut(BaseModel):
    id: int
    person_id: int
    term: str
    due_date: str
    total: str
    paid: str
    owed: str
    status: str
    deferred_until: str | None
    deferral_reason: str | None
    days_overdue: int
    bucket: str | None


class LineOut(BaseModel):
    id: int
    kind: str
    name: str
    original: str
    amount: str
    paid: str
    owed: str
    due_date: str


class InstalmentOut(BaseModel):
    seq: int
    due_date: str
    amount: str
    late_fee_charged: bool


class PaymentOut(BaseModel):
    id: int
    bill_id: int | None
    person_id: int
    method: str
    amount: str
    applied: str
    returned: str
    reference: str
    receipt_no: str
    payer_name: str
    created_at: str


class AdjustmentOut(BaseModel):
    line_id: int
    kind: str
    before: str
    after: str
    reason: str
    returned: str
    created_at: str


class BillDetailOut(BillOut):
    person_name: str
    person_number: str
    class_name: str | None
    payment_reference: str = Field(description="quote it on a bank transfer to pay by itself")
    lines: list[LineOut]
    instalments: list[InstalmentOut]
    payments: list[PaymentOut]
    adjustments: list[AdjustmentOut]
    holds: list[str]


class ReceiptLineOut(BaseModel):
    name: str
    kind: str
    amount: str


class ReceiptOut(PaymentOut):
    school_name: str
    school_name_en: str
    person_name: str
    person_number: str
    term: str | None
    lines: list[ReceiptLineOut]


class BucketOut(BaseModel):
    bucket: str
    bills: int
    owed: str


class CountOut(BaseModel):
    bills: int
    owed: str


class ClassArrearsOut(BaseModel):
    class_id: int | None
    class_name: str
    bills: int
    owed: str


class ArrearsOut(BaseModel):
    as_of: str
    buckets: list[BucketOut]
    not_yet_due: CountOut
    deferred: CountOut
    by_class: list[ClassArrearsOut]
    active_holds: int


class CardPaymentIn(Body):
    client_id: str = Field(description="client-generated id; a retry returns the same payment")
    amount: Money


@router.get("/persons/{person_id}/bills", response_model=list[BillOut])
async def bills_of(school: str, person_id: Id, pool: Pool, actor: CurrentActor) -> list[BillOut]:
    """The student's bills, newest term first (the student, a linked parent, finance)."""
    school_id = await school_id_for(pool, actor, school)
    return [BillOut(**b) for b in await views.bills_of(pool, actor, school_id, person_id)]


@router.get("/bills/{bill_id}", response_model=BillDetailOut)
async def bill(school: str, bill_id: Id, pool: Pool, actor: CurrentActor) -> BillDetailOut:
    school_id = await school_id_for(pool, actor, school)
    return BillDetailOut(**await views.bill(pool, actor, school_id, bill_id))


@router.post(
    "/bills/{bill_id}/card-payments",
    status_code=201,
    response_model=PaymentOut,
    responses={
        409: {
            "description": "the purse lacks the amount, the bill is paid, or the channel is busy"
        },
        422: {"description": "the amount is more than the bill asks for"},
        429: {"description": "CHANNEL_BUSY: retry with the same client_id after Retry-After"},
    },
)
async def pay_from_card(
    school: str,
    bill_id: Id,
    body: CardPaymentIn,
    pool: Pool,
    actor: CurrentActor,
    limiter: Limiter,
) -> JSONResponse:
    """The student pays all or part of the bill from the card's cash purse, inside the tuition
    channel's admission limit (docs/channels.md)."""
    school_id = await school_id_for(pool, actor, school)
    async with limiter.admit("tuition"):
        outcome = await payments.do_pay_from_card(
            pool,
            actor,
            school_id,
            bill_id,
            amount=body.amount,
            client_id=check_client_id(body.client_id),
        )
    return JSONResponse(
        outcome.body,
        status_code=outcome.status,
        headers={"Idempotent-Replayed": str(outcome.replayed).lower()},
    )


class OnlinePaymentIn(Body):
    client_id: str = Field(description="client-generated id; a retry returns the same order")
    amount: Money


class OrderOut(BaseModel):
    id: int
    out_trade_no: str
    purpose: str
    person_id: int
    amount: str
    status: str
    pay_url: str | None = Field(description="the provider's cashier page: send the payer there")
    paid_via: str | None
    created_at: str
    expires_at: str
    paid_at: str | None


@router.post(
    "/bills/{bill_id}/online-payments",
    status_code=201,
    response_model=OrderOut,
    responses={
        409: {"description": "the bill is paid, or the provider refused the order"},
        422: {"description": "the amount is more than the bill asks for"},
    },
)
async def pay_online(
    school: str,
    bill_id: Id,
    body: OnlinePaymentIn,
    pool: Pool,
    settings: AppSettings,
    actor: CurrentActor,
) -> JSONResponse:
    """The student or a linked parent opens a provider order for all or part of the bill; the
    payer pays at ``pay_url`` and the bill is paid when the provider says so."""
    school_id = await school_id_for(pool, actor, school)
    status, view = await payments.do_pay_online(
        pool,
        settings,
        actor,
        school_id,
        bill_id,
        amount=body.amount,
        client_id=check_client_id(body.client_id),
    )
    return JSONResponse(view, status_code=status)


@router.get("/receipts/{receipt_no}", response_model=ReceiptOut)
async def receipt(
    school: str,
    receipt_no: Annotated[str, Path(max_length=48)],
    pool: Pool,
    actor: CurrentActor,
) -> ReceiptOut:
    """A payment's electronic receipt (printable)."""
    school_id = await school_id_for(pool, actor, school)
    return ReceiptOut(**await views.receipt(pool, actor, school_id, receipt_no))


@router.get("/arrears", response_model=ArrearsOut)
async def arrears(school: str, pool: Pool, actor: CurrentActor) -> ArrearsOut:
    """Arrears by age bucket and by class: the finance office and teachers."""
    school_id = await school_id_for(pool, actor, school)
    return ArrearsOut(**await views.arrears(pool, actor, school_id))


class SheetOut(BaseModel):
    import_id: int
    term: str
    sha256: str = Field(description="of the file inside the frame, as the server received it")
    rows: int
    added: int
    unchanged: int
    amount: str
    canonical: list[str] = Field(description="the stored lines, 学号\\t项目\\t金额")
    canonical_sha256: str
    replayed: bool


@router.post(
    "/bill-sheets",
    response_model=SheetOut,
    responses={422: {"description": "IMPORT_ROWS_INVALID with details.errors: every bad row"}},
)
@accepts_upload(MAX_FILE_BYTES)
async def import_bill_sheet(
    school: str,
    request: Request,
    pool: Pool,
    actor: CurrentActor,
    term: Annotated[str, Query(max_length=11, description="e.g. 2026-2027-1")],
) -> SheetOut:
    """Body: the frame ``CCIMPORT/1 START <length>\\n<file>\\nCCIMPORT/1 END <sha256>\\n``
    around a CSV or xlsx with 学号, 收费项目, 金额 (and optionally 姓名); header
    ``X-Filename`` (URL-encoded). All rows or none; the same file again changes nothing."""
    school_id = await school_id_for(pool, actor, school)
    frame = await read_framed_upload(request, MAX_FILE_BYTES)
    result = await sheets.do_import_sheet(
        pool,
        actor,
        school_id,
        term=term,
        frame=frame,
        filename=unquote(request.headers.get("x-filename", "")),
    )
    return SheetOut(**result.as_dict())
