"""Credit lines over HTTP (docs/credit.md): the settlement center sets a person's limit; the
holder and the settlement center read the credit statement."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.credit import lines
from campuscard.edge.deps import Pool, school_id_for
from campuscard.ledger.money import Money

router = APIRouter(prefix="/api/v1/schools/{school}", tags=["credit"])
Id = Annotated[int, Path(ge=1, le=2**62)]


class CreditLineIn(Body):
    credit_limit: Money = Field(description="how far below zero the cash purse may go; 0 closes")
    repay_days: int = Field(ge=1, le=90, description="credit still owed after this is overdue")


class CreditStatementOut(BaseModel):
    person_id: int
    credit_limit: str
    state: str = Field(description="active, overdue (no further credit) or closed")
    balance: str
    credit_used: str
    credit_left: str
    in_debt_since: str | None
    due_at: str | None
    overdue_since: str | None
    repay_days: int


@router.put("/persons/{person_id}/credit-line", response_model=CreditStatementOut)
async def set_credit_line(
    school: str, person_id: Id, body: CreditLineIn, pool: Pool, actor: CurrentActor
) -> CreditStatementOut:
    """Give, change or close (0.00) a person's credit line (the settlement center)."""
    school_id = await school_id_for(pool, actor, school)
    statement = await lines.do_set_credit_line(
        pool,
        actor,
        school_id,
        person_id,
        credit_limit=body.credit_limit.fen,
        repay_days=body.repay_days,
    )
    return CreditStatementOut(**asdict(statement))


@router.get("/persons/{person_id}/credit", response_model=CreditStatementOut)
async def credit_statement(
    school: str, person_id: Id, pool: Pool, actor: CurrentActor
) -> CreditStatementOut:
    """The credit statement: used, left, since when, due when (the holder, settlement)."""
    school_id = await school_id_for(pool, actor, school)
    return CreditStatementOut(
        **asdict(await lines.get_statement(pool, actor, school_id, person_id))
    )
