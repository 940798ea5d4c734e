"""Four eyes on money: proposals waiting for a second person, the decision, and the school's
money limits (caps and the deposit threshold)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

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


@router.get("/approvals")
async def list_approvals(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    pending: Annotated[bool, Query(description="only those waiting for a decision")] = True,
) -> list[dict[str, Any]]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await four_eyes.list_approvals(conn, actor, school_id, pending_only=pending)


@router.get("/approvals/{approval_id}")
async def get_approval(
    school: str, approval_id: ApprovalId, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await four_eyes.get_approval(conn, actor, school_id, approval_id)


@router.post("/approvals/{approval_id}/decision")
async def decide(
    school: str, approval_id: ApprovalId, body: DecisionIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    """A second person approves (the money moves now) or rejects a proposal."""
    school_id = await school_id_for(pool, actor, school)
    return await four_eyes.do_decide(
        pool, actor, school_id, approval_id, approve=body.approve, note=body.note
    )


@router.get("/money-limits")
async def get_money_limits(school: str, pool: Pool, actor: CurrentActor) -> dict[str, str]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await money_limits.get_money_limits(conn, actor, school_id)


@router.put("/money-limits")
async def set_money_limits(
    school: str, body: MoneyLimitsIn, pool: Pool, actor: CurrentActor
) -> dict[str, str]:
    """Change the school's caps (school admin only); amounts in yuan."""
    school_id = await school_id_for(pool, actor, school)
    return await money_limits.do_set_money_limits(
        pool, actor, school_id, body.model_dump(exclude_none=True)
    )
