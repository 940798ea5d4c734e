"""Payroll for the finance office: upload a payroll sheet (the framed handshake of the student
import), the school's batches, one batch's report. A batch is approved by a second person
through the approvals (``/approvals/{id}/decision``). docs/payroll.md"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import unquote

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from campuscard.api.deps import CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.edge.limits import accepts_upload, read_framed_upload
from campuscard.issuing.import_rules import MAX_FILE_BYTES
from campuscard.payroll import batches, queries

router = APIRouter(prefix="/api/v1/schools/{school}", tags=["payroll"])
Id = Annotated[int, Path(ge=1, le=2**62)]


class PayrollSheetOut(BaseModel):
    batch_id: int
    approval_id: int = Field(description="the proposal a second person approves")
    period: str
    sha256: str = Field(description="of the file inside the frame, as the server received it")
    rows: int
    total: str
    canonical: list[str] = Field(description="the stored lines, 工号\\t发放方式\\t金额")
    canonical_sha256: str
    replayed: bool


class PayrollBatchOut(BaseModel):
    id: int
    period: str
    filename: str
    sha256: str
    lines: int
    total: str
    approval_id: int
    approval_status: str
    uploaded_by: int
    uploaded_by_name: str
    uploaded_at: str
    decided_by_name: str | None
    paid_at: str | None
    state: str = Field(description="waiting_approval, rejected, paying, paid or paid_with_failures")


class PayrollRepayOut(BaseModel):
    failed_transfer_id: int = Field(description="the bank payout that failed")
    failed_status: str = Field(description="failed (the bank refused it) or reversed")
    response_code: str | None = Field(description="the bank's answer to the failed payout")
    route: str = Field(description="how the line was paid again: bank or campus")
    repaid_by_name: str
    repaid_at: str


class PayrollLineOut(BaseModel):
    row: int
    person_id: int
    number: str
    name: str
    amount: str
    route: str
    memo: str
    state: str = Field(description="waiting, paid, pending (at the bank) or failed")
    transfer_id: int | None = Field(description="bank lines: the payout (name it to pay again)")
    transfer_status: str | None = Field(
        description="bank lines: pending, unknown, reversing, posted, failed or reversed"
    )
    rrn: str | None
    response_code: str | None
    settled_at: str | None
    repays: list[PayrollRepayOut] = Field(description="earlier payouts that failed, paid again")


class PayrollReportOut(PayrollBatchOut):
    counts: dict[str, int]
    amounts: dict[str, str]
    line_rows: list[PayrollLineOut]


@router.post(
    "/payroll-sheets",
    response_model=PayrollSheetOut,
    responses={422: {"description": "IMPORT_ROWS_INVALID with details.errors: every bad row"}},
)
@accepts_upload(MAX_FILE_BYTES)
async def upload_payroll_sheet(
    school: str,
    request: Request,
    pool: Pool,
    actor: CurrentActor,
    period: Annotated[str, Query(max_length=7, description="the pay month, e.g. 2026-11")],
) -> PayrollSheetOut:
    """Body: the frame ``CCIMPORT/1 START <length>\\n<file>\\nCCIMPORT/1 END <sha256>\\n``
    around a CSV or xlsx with 工号, 实发金额 (and optionally 姓名, 发放方式, 备注), ending in a
    合计 row; header ``X-Filename`` (URL-encoded). All rows or none; the same file for the same
    month again is the same batch."""
    school_id = await school_id_for(pool, actor, school)
    result = await batches.do_upload_sheet(
        pool,
        actor,
        school_id,
        period=period,
        frame=await read_framed_upload(request, MAX_FILE_BYTES),
        filename=unquote(request.headers.get("x-filename", "")),
    )
    return PayrollSheetOut(**result.as_dict())


@router.get("/payroll-batches", response_model=list[PayrollBatchOut])
async def payroll_batches(school: str, pool: Pool, actor: CurrentActor) -> list[PayrollBatchOut]:
    """The school's payroll batches, newest first."""
    school_id = await school_id_for(pool, actor, school)
    return [PayrollBatchOut(**b) for b in await queries.list_batches(pool, actor, school_id)]


@router.get("/payroll-batches/{batch_id}", response_model=PayrollReportOut)
async def payroll_report(
    school: str, batch_id: Id, pool: Pool, actor: CurrentActor
) -> PayrollReportOut:
    """One batch: its lines and their state, and per state how many lines and how much."""
    school_id = await school_id_for(pool, actor, school)
    return PayrollReportOut(**await queries.batch_report(pool, actor, school_id, batch_id))


class RepayIn(BaseModel):
    failed_transfer_id: int = Field(ge=1, le=2**62, description="the line's failed bank payout")
    route: Literal["bank", "campus"] = Field(
        description="bank: the staff member's bank card again (sent by a job); campus: the "
        "campus account, at once"
    )


class RepayOut(BaseModel):
    batch_id: int
    row: int
    failed_transfer_id: int
    route: str
    tx_id: int | None = Field(description="campus: the booking")
    transfer_id: int | None = Field(description="bank: the new payout, pending until the bank")
    repaid_by_name: str
    repaid_at: str
    replayed: bool = Field(description="true when this failed payout was already paid again")


@router.post(
    "/payroll-batches/{batch_id}/lines/{row}/repay",
    response_model=RepayOut,
    responses={
        409: {
            "description": "PAYROLL_LINE_NOT_FAILED, PAYROLL_NOT_THIS_LINE, NO_BANK_CARD or "
            "ACCOUNT_NOT_ACTIVE"
        }
    },
)
async def repay_payroll_line(
    school: str,
    batch_id: Id,
    row: Annotated[int, Path(ge=1, le=1_000_000)],
    body: RepayIn,
    pool: Pool,
    actor: CurrentActor,
) -> RepayOut:
    """Pay a line whose bank payout failed again, once: to the bank card or the campus
    account. The same request again answers what the first did (``replayed``)."""
    school_id = await school_id_for(pool, actor, school)
    return RepayOut(
        **await batches.do_repay_line(
            pool,
            actor,
            school_id,
            batch_id,
            row,
            failed_transfer_id=body.failed_transfer_id,
            route=body.route,
        )
    )
