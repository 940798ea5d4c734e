"""Settlement-center counter: deposits, withdrawals, subsidies, zeroing and the cash drawer."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.answers import PENDING_APPROVAL, BalancesOut
from campuscard.api.deps import Body, CurrentActor
from campuscard.api.routes.approvals import ApprovalOut
from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool, school_id_for
from campuscard.ledger.money import Money
from campuscard.moneyflows import counter
from campuscard.platform.actors import Actor
from campuscard.platform.idempotency import Outcome, check_client_id

router = APIRouter(prefix="/api/v1/counter", tags=["counter"])

NUMBER = r"^[A-Za-z0-9_-]{1,32}$"
CLIENT_ID = Field(description="client-generated id; a retry with it replays the answer")


class IdentityIn(Body):
    method: Literal["campus_card", "student_id"]
    holder_present: bool = Field(description="the holder is at the desk in person")
    card_number: str | None = Field(default=None, pattern=r"^[0-9]{6,20}$")
    holder_name: str | None = Field(default=None, min_length=1, max_length=64)

    def to_identity(self) -> counter.Identity:
        return counter.Identity(
            method=self.method,
            holder_present=self.holder_present,
            card_number=self.card_number,
            holder_name=self.holder_name,
        )


class DepositIn(Body):
    client_id: str = CLIENT_ID
    person_number: str = Field(pattern=NUMBER)
    amount: Money
    memo: str = Field(default="", max_length=200)


class WithdrawalIn(DepositIn):
    identity: IdentityIn


class SubsidyOpIn(Body):
    client_id: str = CLIENT_ID
    person_number: str = Field(pattern=NUMBER)
    amount: Money
    memo: str = Field(min_length=1, max_length=200)


class ZeroingIn(Body):
    client_id: str = CLIENT_ID
    person_number: str = Field(pattern=NUMBER)
    purse: Literal["cash", "subsidy"]
    memo: str = Field(min_length=1, max_length=200)
    identity: IdentityIn | None = None


class DrawerOpenIn(Body):
    opening_float: str | None = Field(
        default=None,
        max_length=20,
        description='the float counted in the drawer, e.g. "500.00"; leave it out to open with '
        "the float of the last close (a different float waits for a second person)",
    )


class DrawerCloseIn(Body):
    counted_cash: str = Field(description='the cash counted in the drawer, e.g. "812.50"')
    note: str = Field(default="", max_length=500)


def _answer(outcome: Outcome) -> JSONResponse:
    return JSONResponse(
        outcome.body,
        status_code=outcome.status,
        headers={"Idempotent-Replayed": "true" if outcome.replayed else "false"},
    )


async def _counter_op(
    pool: PgPool,
    actor: Actor,
    school: str,
    kind: counter.CounterKind,
    body: DepositIn | SubsidyOpIn | ZeroingIn,
    **extra: Any,
) -> JSONResponse:
    """The one path of every counter operation: school check, client id, the service, answer."""
    school_id = await school_id_for(pool, actor, school)
    return _answer(
        await counter.do_counter_op(
            pool,
            actor,
            school_id,
            kind=kind,
            client_id=check_client_id(body.client_id),
            person_number=body.person_number,
            memo=body.memo,
            **extra,
        )
    )


class CounterOpOut(BaseModel):
    op_id: int
    kind: str = Field(
        description='"deposit", "withdrawal", "subsidy_grant", "subsidy_deduct" or "zeroing"'
    )
    tx_id: int = Field(description="the ledger transaction that booked it")
    person_id: int
    person_number: str
    amount: str = Field(description="yuan moved")
    cash_effect: str = Field(description="yuan into (+) or out of (-) the operator's drawer")
    balances: BalancesOut = Field(description="the holder's purses after it")


@router.post(
    "/{school}/deposits", status_code=201, response_model=CounterOpOut, responses=PENDING_APPROVAL
)
async def deposit(school: str, body: DepositIn, pool: Pool, actor: CurrentActor) -> JSONResponse:
    """Cash handed over the counter into the holder's cash purse."""
    return await _counter_op(pool, actor, school, "deposit", body, amount=body.amount)


@router.post(
    "/{school}/withdrawals",
    status_code=201,
    response_model=CounterOpOut,
    responses=PENDING_APPROVAL,
)
async def withdrawal(
    school: str, body: WithdrawalIn, pool: Pool, actor: CurrentActor
) -> JSONResponse:
    """Cash paid out of the holder's cash purse; the holder must be present and identified."""
    return await _counter_op(
        pool,
        actor,
        school,
        "withdrawal",
        body,
        amount=body.amount,
        identity=body.identity.to_identity(),
    )


@router.post(
    "/{school}/subsidy-grants",
    status_code=201,
    response_model=CounterOpOut,
    responses=PENDING_APPROVAL,
)
async def subsidy_grant(
    school: str, body: SubsidyOpIn, pool: Pool, actor: CurrentActor
) -> JSONResponse:
    return await _counter_op(pool, actor, school, "subsidy_grant", body, amount=body.amount)


@router.post(
    "/{school}/subsidy-deductions",
    status_code=201,
    response_model=CounterOpOut,
    responses=PENDING_APPROVAL,
)
async def subsidy_deduct(
    school: str, body: SubsidyOpIn, pool: Pool, actor: CurrentActor
) -> JSONResponse:
    return await _counter_op(pool, actor, school, "subsidy_deduct", body, amount=body.amount)


@router.post(
    "/{school}/zeroings", status_code=201, response_model=CounterOpOut, responses=PENDING_APPROVAL
)
async def zeroing(school: str, body: ZeroingIn, pool: Pool, actor: CurrentActor) -> JSONResponse:
    """Empty one purse: cash is paid out at the desk, a subsidy returns to the subsidy fund."""
    return await _counter_op(
        pool,
        actor,
        school,
        "zeroing",
        body,
        amount=None,
        purse=body.purse,
        identity=body.identity.to_identity() if body.identity else None,
    )


class KindTotalOut(BaseModel):
    count: int
    amount: str = Field(description="yuan")
    cash: str = Field(description="yuan into (+) or out of (-) the drawer")


class DrawerOut(BaseModel):
    operator_id: int
    operator: str | None
    business_date: str
    status: str = Field(description='"open", "closed" or "not_opened"')
    opening_float: str = Field(description="yuan, as every amount here")
    cash_in: str
    cash_out: str
    expected_cash: str = Field(description="float + cash in - cash out")
    expected_cash_fen: int
    counted_cash: str | None = Field(description="counted at the close")
    difference: str | None = Field(description="counted minus expected")
    note: str | None
    by_kind: dict[str, KindTotalOut] = Field(description="the day's counter operations by kind")


class DrawerOpenedOut(DrawerOut):
    float_approval: ApprovalOut | None = Field(
        description="a float other than the last close's waits for a second person"
    )


@router.post("/{school}/drawer/open", status_code=201)
async def open_drawer(
    school: str, body: DrawerOpenIn, pool: Pool, actor: CurrentActor
) -> DrawerOpenedOut:
    school_id = await school_id_for(pool, actor, school)
    amount = (
        None
        if body.opening_float is None
        else Money.parse(body.opening_float, field="opening_float", allow_zero=True)
    )
    opened = await counter.do_open_drawer(pool, actor, school_id, opening_float=amount)
    return DrawerOpenedOut.model_validate(opened)


@router.post("/{school}/drawer/close")
async def close_drawer(
    school: str, body: DrawerCloseIn, pool: Pool, actor: CurrentActor
) -> DrawerOut:
    school_id = await school_id_for(pool, actor, school)
    amount = Money.parse(body.counted_cash, field="counted_cash", allow_zero=True)
    closed = await counter.do_close_drawer(
        pool, actor, school_id, counted_cash=amount, note=body.note
    )
    return DrawerOut.model_validate(closed)


@router.get("/{school}/drawer")
async def drawer_summary(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    operator_id: int | None = None,
    day: date | None = None,
) -> DrawerOut:
    """One operator's day (default: mine, today): float + cash in - cash out = expected."""
    school_id = await school_id_for(pool, actor, school)
    summary = await counter.get_drawer_summary(
        pool, actor, school_id, operator_id=operator_id, day=day
    )
    return DrawerOut.model_validate(summary)


@router.get("/{school}/drawers")
async def drawers(
    school: str, pool: Pool, actor: CurrentActor, day: date | None = None
) -> list[DrawerOut]:
    """Every operator's drawer for the day."""
    school_id = await school_id_for(pool, actor, school)
    summaries = await counter.list_drawers(pool, actor, school_id, day=day)
    return [DrawerOut.model_validate(d) for d in summaries]
