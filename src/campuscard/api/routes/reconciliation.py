"""Reconciliation API: import a bank or provider statement file, follow the cases in suspense,
resolve them (post / refund / write-off with a second approval)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.edge.limits import accepts_upload
from campuscard.platform.errors import ValidationFailed
from campuscard.settlement import reconciliation
from campuscard.settlement.reconciliation_rules import MAX_FILE_BYTES

router = APIRouter(prefix="/api/v1/admin/schools/{school}/reconciliation", tags=["reconciliation"])


class ResolveIn(Body):
    action: Literal["post", "refund", "write_off"]
    note: str = Field(min_length=1, max_length=200)
    target_account: int | None = Field(default=None, gt=0, description="for action 'post'")


class DecideIn(Body):
    approve: bool
    note: str = Field(min_length=1, max_length=200)


class CaseOut(BaseModel):
    id: int
    source: str = Field(description='"bank" or "provider"')
    import_id: int
    reference: str = Field(description="the outside party's reference of the line")
    reason: str = Field(description='"missing_ours", "missing_theirs" or "amount_differs"')
    their_amount: str = Field(description="yuan; 0.00 when missing on their side")
    our_amount: str = Field(description="yuan; 0.00 when missing on ours")
    difference: str = Field(description="theirs minus ours: what suspense holds for it")
    status: str = Field(description='"open", "pending_approval" or "resolved"')
    resolution: str | None = Field(description='"post", "refund", "write_off", "matched_late"')
    target_account: int | None
    note: str
    requested_by: int | None
    requested_at: str | None
    resolved_by: str | None
    approved_by: int | None
    resolved_at: str | None
    suspense_tx_id: int
    resolution_tx_id: int | None
    created_at: str


class ImportOut(BaseModel):
    id: int
    source: str
    statement_date: str
    file_name: str
    file_sha256: str
    lines: int
    total_in: str
    total_out: str
    matched: int
    matched_amount: str
    cases: list[CaseOut] = Field(description="lines that did not match, now in suspense")
    matched_late: int = Field(description="earlier cases this statement settled")
    imported_by: str
    imported_at: str


class ImportedOut(ImportOut):
    replayed: bool = Field(description="this statement was imported before: its stored result")


class ImportSummaryOut(BaseModel):
    id: int
    source: str
    statement_date: str
    line_count: int
    matched_count: int
    case_count: int
    late_count: int
    imported_by: str
    imported_at: str


class ReconBalancesOut(BaseModel):
    bank_clearing: str | None = Field(default=None, description="yuan; none before first use")
    provider_clearing: str | None = None
    bank_account: str | None = None
    provider_account: str | None = None
    suspense: str | None = None
    recon_writeoff: str | None = None
    open_cases: int


@router.post("/imports")
@accepts_upload(MAX_FILE_BYTES)
async def import_statement(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    source: Annotated[Literal["bank", "provider"], Form()],
    file: Annotated[UploadFile, File(description="the statement file as the party sent it")],
    statement_date: Annotated[date | None, Form()] = None,
) -> ImportedOut:
    school_id = await school_id_for(pool, actor, school)
    content = await file.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise ValidationFailed("the file is larger than 20 MB", field="file")
    return ImportedOut.model_validate(
        await reconciliation.do_import_statement(
            pool,
            actor,
            school_id,
            source=source,
            content=content,
            file_name=file.filename or "",
            statement_date=statement_date,
        )
    )


@router.get("/imports")
async def list_imports(school: str, pool: Pool, actor: CurrentActor) -> list[ImportSummaryOut]:
    school_id = await school_id_for(pool, actor, school)
    actor.require("settlement", school_id=school_id)
    async with pool.acquire() as conn:
        return [
            ImportSummaryOut.model_validate(i)
            for i in (await reconciliation.list_imports(conn, school_id))
        ]


@router.get("/imports/{import_id}")
async def get_import(school: str, import_id: int, pool: Pool, actor: CurrentActor) -> ImportOut:
    school_id = await school_id_for(pool, actor, school)
    actor.require("settlement", school_id=school_id)
    async with pool.acquire() as conn:
        return ImportOut.model_validate(
            await reconciliation.import_view(conn, school_id, import_id)
        )


@router.get("/cases")
async def list_cases(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    status: Annotated[Literal["open", "pending_approval", "resolved"] | None, Query()] = None,
) -> list[CaseOut]:
    school_id = await school_id_for(pool, actor, school)
    actor.require("settlement", school_id=school_id)
    async with pool.acquire() as conn:
        return [
            CaseOut.model_validate(c)
            for c in (await reconciliation.list_cases(conn, school_id, status=status))
        ]


@router.post("/cases/{case_id}/resolve")
async def resolve_case(
    school: str, case_id: int, body: ResolveIn, pool: Pool, actor: CurrentActor
) -> CaseOut:
    school_id = await school_id_for(pool, actor, school)
    return CaseOut.model_validate(
        await reconciliation.do_resolve_case(
            pool,
            actor,
            school_id,
            case_id,
            action=body.action,
            note=body.note,
            target_account=body.target_account,
        )
    )


@router.post("/cases/{case_id}/write-off-decision")
async def decide_write_off(
    school: str, case_id: int, body: DecideIn, pool: Pool, actor: CurrentActor
) -> CaseOut:
    school_id = await school_id_for(pool, actor, school)
    return CaseOut.model_validate(
        await reconciliation.do_decide_write_off(
            pool, actor, school_id, case_id, approve=body.approve, note=body.note
        )
    )


@router.get("/balances")
async def get_balances(school: str, pool: Pool, actor: CurrentActor) -> ReconBalancesOut:
    school_id = await school_id_for(pool, actor, school)
    actor.require("settlement", school_id=school_id)
    async with pool.acquire() as conn:
        return ReconBalancesOut.model_validate(await reconciliation.balances(conn, school_id))
