"""Four eyes on money: proposals waiting for a second person, the decision, and the school's
money limits (caps and the deposit threshold)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.ledger import money_limits
from campuscard.platform import four_eyes

router = APIRouter(prefix="/api/v1/admin/schools/{school}", tags=["approvals"])
ApprovalId = Annotated[int, Path(ge=1, le=2**62)]


class DecisionIn(Body):
    approve: bool
    note: str = Field(default="", max_length=300, description="why (required to reject)")


class MoneyLimitsIn(Body):
    purse_cap: str | None = Field(default=None, max_length=20, description='yuan, e.g. "1000.00"')
    counter_op_cap: str | None = Field(default=None, max_length=20)
    deposit_approval_over: str | None = Field(default=None, max_length=20)
    drawer_float_cap: str | None = Field(default=None, max_length=20)


class ApprovalOut(BaseModel):
    id: int
    kind: str = Field(description='what waits, e.g. "adjustment", "counter_op", "bill_waiver"')
    status: str = Field(description='"pending", "approved" or "rejected"')
    summary: str
    amount: str | None = Field(description='yuan, e.g. "80.00"; none for a change of settings')
    payload: dict[str, Any] = Field(description="what runs on approval, as proposed")
    proposed_by: int
    proposed_by_name: str
    proposed_at: str
    decided_by: int | None
    decided_by_name: str | None
    decided_at: str | None
    note: str | None
    result: dict[str, Any] | None = Field(description="what the approved work returned")


class MoneyLimitsOut(BaseModel):
    purse_cap: str = Field(description="yuan: cash + subsidy one person may hold")
    counter_op_cap: str = Field(description="yuan: one deposit, grant or withdrawal at the counter")
    deposit_approval_over: str = Field(description="yuan: a larger deposit needs a second person")
    drawer_float_cap: str = Field(description="yuan: the most a drawer may open with")


@router.get("/approvals")
async def list_approvals(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    pending: Annotated[bool, Query(description="only those waiting for a decision")] = True,
) -> list[ApprovalOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await four_eyes.list_approvals(conn, actor, school_id, pending_only=pending)
    return [ApprovalOut.model_validate(r) for r in rows]


@router.get("/approvals/{approval_id}")
async def get_approval(
    school: str, approval_id: ApprovalId, pool: Pool, actor: CurrentActor
) -> ApprovalOut:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        row = await four_eyes.get_approval(conn, actor, school_id, approval_id)
    return ApprovalOut.model_validate(row)


@router.post("/approvals/{approval_id}/decision")
async def decide(
    school: str, approval_id: ApprovalId, body: DecisionIn, pool: Pool, actor: CurrentActor
) -> ApprovalOut:
    """A second person approves (the money moves now) or rejects a proposal."""
    school_id = await school_id_for(pool, actor, school)
    decided = await four_eyes.do_decide(
        pool, actor, school_id, approval_id, approve=body.approve, note=body.note
    )
    return ApprovalOut.model_validate(decided)


@router.get("/money-limits")
async def get_money_limits(school: str, pool: Pool, actor: CurrentActor) -> MoneyLimitsOut:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        limits = await money_limits.get_money_limits(conn, actor, school_id)
    return MoneyLimitsOut.model_validate(limits)


@router.put("/money-limits")
async def set_money_limits(
    school: str, body: MoneyLimitsIn, pool: Pool, actor: CurrentActor
) -> MoneyLimitsOut:
    """Change the school's caps (school admin only); amounts in yuan."""
    school_id = await school_id_for(pool, actor, school)
    limits = await money_limits.do_set_money_limits(
        pool, actor, school_id, body.model_dump(exclude_none=True)
    )
    return MoneyLimitsOut.model_validate(limits)
