"""Bills for the finance office over HTTP: the term's fee items with their books, a new item
with its rates, issuing the term's bills, the school's bills with filters, a bill's instalment
plan, a green-channel deferral, and proposing a line's adjustment or waiver (a second person
approves it at /approvals). The same use cases as the console's forms. docs/bills.md"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.api.routes.bills import BillOut
from campuscard.bills import adjustments, billing, views
from campuscard.edge.deps import Pool, school_id_for
from campuscard.ledger.money import Money

router = APIRouter(prefix="/api/v1/schools/{school}", tags=["bills"])
Id = Annotated[int, Path(ge=1, le=2**62)]
TERM = r"^[0-9]{4}-[0-9]{4}-[12]$"


class RateOut(BaseModel):
    scope: str
    value: str
    amount: str


class FeeItemOut(BaseModel):
    id: int
    term: str
    kind: str
    name: str
    amount: str | None
    due_date: str
    rates: list[RateOut]
    bills: int
    billed: str
    adjusted: str = Field(description="taken off by adjustments and waivers")
    paid: str
    owed: str


class FeeItemCreated(BaseModel):
    id: int
    term: str
    kind: str
    name: str
    amount: str | None = Field(description="yuan for everyone; none: by rate or sheet only")
    due_date: str
    rates: list[RateOut] = Field(description="the amounts per class, major or dorm building")


class InstalmentOut(BaseModel):
    seq: int
    due_date: str
    amount: str = Field(description="yuan")


class PlanOut(BaseModel):
    bill_id: int
    instalments: list[InstalmentOut]


class DeferralOut(BaseModel):
    bill_id: int
    deferred_until: str
    holds_lifted: int = Field(description="holds the bill had placed that are lifted now")


class RateIn(Body):
    scope: Literal["class", "major", "dorm"]
    value: str = Field(min_length=1, max_length=64, description="class name, major or dorm")
    amount: Money


class FeeItemIn(Body):
    term: str = Field(pattern=TERM, description="e.g. 2026-2027-1")
    kind: Literal["tuition", "accommodation", "textbooks", "insurance", "utilities", "other"]
    name: str = Field(min_length=1, max_length=64)
    amount: Money | None = Field(default=None, description="for everyone without a rate")
    due_date: date = Field(strict=False, description="YYYY-MM-DD")
    rates: list[RateIn] = Field(default_factory=list, max_length=200)


class IssueIn(Body):
    term: str = Field(pattern=TERM)


class IssueOut(BaseModel):
    term: str
    bills_created: int
    lines_added: int
    amount: str
    bills_touched: int


class BillRowOut(BillOut):
    person_name: str
    person_number: str
    class_name: str | None


class PlanIn(Body):
    instalments: int = Field(ge=2, le=12)
    first_due: date = Field(strict=False, description="YYYY-MM-DD")
    every_days: int = Field(ge=7, le=180)


class DeferIn(Body):
    until: date = Field(strict=False, description="YYYY-MM-DD")
    reason: str = Field(min_length=2, max_length=200)


class AdjustmentIn(Body):
    kind: Literal["adjustment", "waiver"]
    new_amount: Money | None = Field(default=None, description="the line's new amount")
    reason: str = Field(min_length=2, max_length=200)


class ProposalOut(BaseModel):
    status: str
    approval: dict[str, Any]


@router.get("/fee-items", response_model=list[FeeItemOut])
async def fee_items(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    term: Annotated[str | None, Query(pattern=TERM)] = None,
) -> list[FeeItemOut]:
    """The fee items with their books: billed, adjusted or waived, paid, owed."""
    school_id = await school_id_for(pool, actor, school)
    return [FeeItemOut(**i) for i in await views.items(pool, actor, school_id, term)]


@router.post("/fee-items", status_code=201)
async def create_fee_item(
    school: str, body: FeeItemIn, pool: Pool, actor: CurrentActor
) -> FeeItemCreated:
    """A fee item of a term: an amount for everyone and/or rates per class, major or dorm
    building (the most specific wins); neither: billed from sheets only."""
    school_id = await school_id_for(pool, actor, school)
    return FeeItemCreated.model_validate(
        await billing.do_create_item(
            pool,
            actor,
            school_id,
            term=body.term,
            kind=body.kind,
            name=body.name,
            amount=body.amount,
            due_date=body.due_date,
            rates=[billing.Rate(r.scope, r.value, r.amount) for r in body.rates],
        )
    )


@router.post("/bill-issues", response_model=IssueOut)
async def issue_bills(school: str, body: IssueIn, pool: Pool, actor: CurrentActor) -> IssueOut:
    """Bill every enrolled student for the term's items; again after adding an item adds only
    that item."""
    school_id = await school_id_for(pool, actor, school)
    return IssueOut(**await billing.do_issue_bills(pool, actor, school_id, term=body.term))


@router.get("/bills", response_model=list[BillRowOut])
async def school_bills(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    term: Annotated[str | None, Query(pattern=TERM)] = None,
    status: Annotated[Literal["open", "paid"] | None, Query()] = None,
    class_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    overdue: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[BillRowOut]:
    """The school's bills, by due date (the finance office)."""
    school_id = await school_id_for(pool, actor, school)
    rows = await views.school_bills(
        pool,
        actor,
        school_id,
        term=term,
        status=status,
        class_id=class_id,
        overdue_only=overdue,
        limit=limit,
        offset=offset,
    )
    return [BillRowOut(**r) for r in rows]


@router.post("/bills/{bill_id}/plan")
async def set_plan(
    school: str, bill_id: Id, body: PlanIn, pool: Pool, actor: CurrentActor
) -> PlanOut:
    """Split what is left of the bill's items into instalments (分期)."""
    school_id = await school_id_for(pool, actor, school)
    return PlanOut.model_validate(
        await billing.do_set_plan(
            pool,
            actor,
            school_id,
            bill_id,
            instalments=body.instalments,
            first_due=body.first_due,
            every_days=body.every_days,
        )
    )


@router.post("/bills/{bill_id}/deferral")
async def defer(
    school: str, bill_id: Id, body: DeferIn, pool: Pool, actor: CurrentActor
) -> DeferralOut:
    """Green channel (绿色通道): no late fee or hold until ``until``; holds placed are lifted."""
    school_id = await school_id_for(pool, actor, school)
    return DeferralOut.model_validate(
        await billing.do_defer(
            pool, actor, school_id, bill_id, until=body.until, reason=body.reason
        )
    )


@router.post("/bill-lines/{line_id}/adjustments", status_code=202, response_model=ProposalOut)
async def propose_adjustment(
    school: str, line_id: Id, body: AdjustmentIn, pool: Pool, actor: CurrentActor
) -> ProposalOut:
    """Propose a line's new amount or its waiver; a second person decides at /approvals."""
    school_id = await school_id_for(pool, actor, school)
    return ProposalOut(
        **await adjustments.do_propose(
            pool,
            actor,
            school_id,
            line_id,
            kind=body.kind,
            new_amount=body.new_amount,
            reason=body.reason,
        )
    )
