"""Bank card binding, bank -> campus card transfers (圈存), automatic top-up, leaving school."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.api.routes.counter import IdentityIn
from campuscard.edge.deps import AppSettings, Pool, school_id_for
from campuscard.ledger.money import Money
from campuscard.moneyflows import autotopup, bank_link, leaving
from campuscard.platform.idempotency import check_client_id

router = APIRouter(tags=["bank link"])


class BindIn(Body):
    pan: str = Field(pattern=r"^[0-9]{16,19}$", description="the bank card number; not stored")
    holder_name: str = Field(min_length=1, max_length=64, description="as the bank knows it")
    bank_name: str = Field(default="", max_length=64)


class LoadIn(Body):
    client_id: str = Field(description="client-generated id; a retry returns the same transfer")
    amount: Money


class AutoTopupIn(Body):
    threshold: Money = Field(description='below this balance, e.g. "50.00"')
    target: Money = Field(description='top up to this balance, e.g. "200.00"')
    enabled: bool = True


class LeaveIn(Body):
    client_id: str
    person_number: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    method: Literal["bank", "counter"]
    identity: IdentityIn | None = None


class BankCardOut(BaseModel):
    id: int
    bank_name: str
    masked_pan: str = Field(description='e.g. "6222 **** **** 0001"')
    holder_name: str
    status: str = Field(description='"active", or "unbound" once taken off')
    created_at: str


class BankCardHolderOut(BaseModel):
    bank_card: BankCardOut | None = Field(description="none while no card is bound")


class BankTransferOut(BaseModel):
    id: int
    direction: str = Field(description='"load" (bank to card) or "payout" (card to bank)')
    origin: str = Field(description='"holder", "guardian", "auto" or "leaving"')
    person_id: int
    amount: str = Field(description="yuan")
    status: str = Field(description='"pending" until the bank answers, then "posted", "failed" …')
    rrn: str = Field(description="the retrieval reference number the bank knows it by")
    response_code: str | None
    note: str
    created_at: str
    resolved_at: str | None


class AutoTopupOut(BaseModel):
    person_id: int
    threshold: str = Field(description="yuan: below this the card is topped up")
    target: str = Field(description="yuan: topped up to this")
    enabled: bool
    armed: bool = Field(description="false after a top-up until the balance rises again")
    last_fired_at: str | None
    last_result: str | None


class AutoTopupHolderOut(BaseModel):
    auto_topup: AutoTopupOut | None


def _answer(status: int, body: dict[str, Any], replayed: bool) -> JSONResponse:
    return JSONResponse(
        body, status_code=status, headers={"Idempotent-Replayed": str(replayed).lower()}
    )


@router.get("/api/v1/persons/{person_id}/bank-card")
async def get_bank_card(person_id: int, pool: Pool, actor: CurrentActor) -> BankCardHolderOut:
    async with pool.acquire() as conn:
        await bank_link.check_holder(conn, actor, person_id)
        card = await bank_link.bound_card(conn, person_id)
    return BankCardHolderOut.model_validate(
        {"bank_card": bank_link.card_view(card) if card else None}
    )


@router.post("/api/v1/persons/{person_id}/bank-card", status_code=201)
async def bind_bank_card(
    person_id: int, body: BindIn, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> BankCardOut:
    """Bind a bank card: the bank verifies number and name; only a masked number is kept."""
    card = await bank_link.do_bind_card(
        pool,
        settings,
        actor,
        person_id=person_id,
        pan=body.pan,
        holder_name=body.holder_name,
        bank_name=body.bank_name,
    )
    return BankCardOut.model_validate(card)


@router.delete("/api/v1/persons/{person_id}/bank-card")
async def unbind_bank_card(person_id: int, pool: Pool, actor: CurrentActor) -> BankCardOut:
    return BankCardOut.model_validate(
        await bank_link.do_unbind_card(pool, actor, person_id=person_id)
    )


@router.post(
    "/api/v1/persons/{person_id}/bank-loads", status_code=201, response_model=BankTransferOut
)
async def bank_load(
    person_id: int, body: LoadIn, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> JSONResponse:
    """Move money from the bound bank card to the campus card (圈存)."""
    status, view, replayed = await bank_link.do_load(
        pool,
        settings,
        actor,
        person_id=person_id,
        amount=body.amount,
        client_id=check_client_id(body.client_id),
    )
    return _answer(status, view, replayed)


@router.get("/api/v1/persons/{person_id}/bank-transfers")
async def bank_transfers(person_id: int, pool: Pool, actor: CurrentActor) -> list[BankTransferOut]:
    transfers = await bank_link.list_transfers(pool, actor, person_id)
    return [BankTransferOut.model_validate(t) for t in transfers]


@router.get("/api/v1/persons/{person_id}/auto-topup")
async def get_auto_topup(person_id: int, pool: Pool, actor: CurrentActor) -> AutoTopupHolderOut:
    setting = await autotopup.get_auto_topup(pool, actor, person_id)
    return AutoTopupHolderOut.model_validate({"auto_topup": setting})


@router.put("/api/v1/persons/{person_id}/auto-topup")
async def set_auto_topup(
    person_id: int, body: AutoTopupIn, pool: Pool, actor: CurrentActor
) -> AutoTopupOut:
    """Below ``threshold``, load up to ``target`` from the bound bank card."""
    setting = await autotopup.do_set_auto_topup(
        pool,
        actor,
        person_id=person_id,
        threshold=body.threshold,
        target=body.target,
        enabled=body.enabled,
    )
    return AutoTopupOut.model_validate(setting)


class LeavingOut(BaseModel):
    person_id: int
    method: str = Field(description='"bank" or "counter"')
    cash: str = Field(description="yuan of the cash purse paid out")
    subsidy_returned: str = Field(description="yuan of the subsidy purse returned to the fund")
    status: str = Field(
        description='"closed"; "paying_out" while the bank has not answered; "payout_failed"'
    )
    transfer_id: int | None = Field(default=None, description="the bank payout (bank only)")
    transfer: BankTransferOut | None = Field(default=None, description="... and its state")


@router.post("/api/v1/counter/{school}/leavings", status_code=201, response_model=LeavingOut)
async def leave(
    school: str, body: LeaveIn, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> JSONResponse:
    """Leaving school: pay the balance (bank card or counter) and close the account."""
    school_id = await school_id_for(pool, actor, school)
    status, view, replayed = await leaving.do_leave(
        pool,
        settings,
        actor,
        school_id,
        person_number=body.person_number,
        method=body.method,
        client_id=check_client_id(body.client_id),
        identity=body.identity.to_identity() if body.identity else None,
    )
    return _answer(status, view, replayed)
