"""Payroll for the finance office: upload a payroll sheet (the framed handshake of the student
import), the school's batches, one batch's report. A batch is approved by a second person
through the approvals (``/approvals/{id}/decision``). docs/payroll.md"""

from __future__ import annotations

from typing import Annotated
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


class PayrollLineOut(BaseModel):
    row: int
    person_id: int
    number: str
    name: str
    amount: str
    route: str
    memo: str
    state: str = Field(description="waiting, paid, pending (at the bank) or failed")
    rrn: str | None
    response_code: str | None
    settled_at: str | None


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
