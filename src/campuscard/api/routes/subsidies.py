"""Subsidy batches (file or rule, second-person approval, expiry) and the purse order."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.edge.limits import accepts_upload
from campuscard.ledger.money import Money
from campuscard.moneyflows import subsidies
from campuscard.platform.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/admin/schools/{school}", tags=["subsidies"])


class RuleBatchIn(Body):
    name: str = Field(min_length=1, max_length=64)
    amount: Money = Field(description="per person")
    expires_on: str | None = Field(
        default=None,
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="YYYY-MM-DD; the unspent part is clawed back after it",
    )
    class_ids: list[int] = Field(default_factory=list, max_length=500)
    grades: list[str] = Field(default_factory=list, max_length=50)
    categories: list[str] = Field(default_factory=list, max_length=50)
    kinds: list[Literal["student", "staff", "visitor"]] = Field(default_factory=list)


class RejectIn(Body):
    reason: str = Field(min_length=1, max_length=200)


class PurseOrderIn(Body):
    purse_order: Literal["subsidy_first", "cash_first"]


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as err:
        raise ValidationFailed("expires_on must be a date YYYY-MM-DD", field="expires_on") from err


class SubsidyBatchOut(BaseModel):
    id: int
    name: str
    source: str = Field(description='"file" (a list) or "rule" (everyone matching)')
    rule: dict[str, Any] | None = Field(description="the rule of a rule batch")
    status: str = Field(description='"pending_approval", "issued", "rejected" or "expired"')
    expires_on: str | None = Field(description="subsidy left on the card after this is taken back")
    total: str = Field(description="yuan")
    lines: int = Field(description="people in the batch")
    clawed_back: str = Field(description="yuan taken back at expiry")
    created_by: int
    approved_by: int | None
    reject_reason: str | None
    created_at: str
    issued_at: str | None


class SubsidyLineOut(BaseModel):
    person_id: int
    number: str
    name: str
    amount: str
    clawed_back: str
    memo: str


class SubsidyBatchDetailOut(SubsidyBatchOut):
    items: list[SubsidyLineOut] = Field(description="the batch's people (the first 5,000)")


class PurseOrderOut(BaseModel):
    purse_order: str = Field(description='"subsidy_first" or "cash_first"')


@router.post("/subsidies/batches/file", status_code=201)
@accepts_upload(subsidies.MAX_FILE_BYTES)
async def create_from_file(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    name: Annotated[str, Form(min_length=1, max_length=64)],
    file: Annotated[UploadFile, File(description=".xlsx or .csv: 学号/number, 金额/amount, 备注")],
    expires_on: Annotated[str, Form(description="YYYY-MM-DD or empty")] = "",
) -> SubsidyBatchOut:
    """A batch from a list; every bad row is reported and nothing is stored."""
    school_id = await school_id_for(pool, actor, school)
    expiry = _date(expires_on)
    content = await file.read(subsidies.MAX_FILE_BYTES + 1)
    return SubsidyBatchOut.model_validate(
        await subsidies.do_create_batch_from_file(
            pool,
            actor,
            school_id,
            name=name,
            expires_on=expiry,
            filename=file.filename or "",
            content=content,
        )
    )


@router.post("/subsidies/batches/rule", status_code=201)
async def create_from_rule(
    school: str, body: RuleBatchIn, pool: Pool, actor: CurrentActor
) -> SubsidyBatchOut:
    """A batch for everyone matching a rule (class, grade, category, kind)."""
    school_id = await school_id_for(pool, actor, school)
    return SubsidyBatchOut.model_validate(
        await subsidies.do_create_batch_from_rule(
            pool,
            actor,
            school_id,
            name=body.name,
            amount=body.amount,
            expires_on=_date(body.expires_on),
            class_ids=body.class_ids,
            grades=body.grades,
            categories=body.categories,
            kinds=list(body.kinds),
        )
    )


@router.get("/subsidies/batches")
async def list_batches(school: str, pool: Pool, actor: CurrentActor) -> list[SubsidyBatchOut]:
    school_id = await school_id_for(pool, actor, school)
    batches = await subsidies.list_batches(pool, actor, school_id)
    return [SubsidyBatchOut.model_validate(b) for b in batches]


@router.get("/subsidies/batches/{batch_id}")
async def get_batch(
    school: str, batch_id: int, pool: Pool, actor: CurrentActor
) -> SubsidyBatchDetailOut:
    school_id = await school_id_for(pool, actor, school)
    return SubsidyBatchDetailOut.model_validate(
        await subsidies.get_batch(pool, actor, school_id, batch_id)
    )


@router.post("/subsidies/batches/{batch_id}/approve")
async def approve(school: str, batch_id: int, pool: Pool, actor: CurrentActor) -> SubsidyBatchOut:
    """Approve (not the maker) and issue to the subsidy purses."""
    school_id = await school_id_for(pool, actor, school)
    return SubsidyBatchOut.model_validate(
        await subsidies.do_approve_batch(pool, actor, school_id, batch_id)
    )


@router.post("/subsidies/batches/{batch_id}/reject")
async def reject(
    school: str, batch_id: int, body: RejectIn, pool: Pool, actor: CurrentActor
) -> SubsidyBatchOut:
    school_id = await school_id_for(pool, actor, school)
    return SubsidyBatchOut.model_validate(
        await subsidies.do_reject_batch(pool, actor, school_id, batch_id, reason=body.reason)
    )


@router.get("/purse-order")
async def get_purse_order(school: str, pool: Pool, actor: CurrentActor) -> PurseOrderOut:
    school_id = await school_id_for(pool, actor, school)
    return PurseOrderOut.model_validate(
        {"purse_order": await subsidies.get_purse_order(pool, school_id)}
    )


@router.put("/purse-order")
async def set_purse_order(
    school: str, body: PurseOrderIn, pool: Pool, actor: CurrentActor
) -> PurseOrderOut:
    """Which purse pays first at merchants: subsidy_first (default) or cash_first."""
    school_id = await school_id_for(pool, actor, school)
    return PurseOrderOut.model_validate(
        await subsidies.do_set_purse_order(pool, actor, school_id, order=body.purse_order)
    )
