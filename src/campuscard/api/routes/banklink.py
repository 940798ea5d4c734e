"""Bank card binding, bank -> campus card transfers (圈存), automatic top-up, leaving school."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

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


def _answer(status: int, body: dict[str, Any], replayed: bool) -> JSONResponse:
    return JSONResponse(
        body, status_code=status, headers={"Idempotent-Replayed": str(replayed).lower()}
    )


@router.get("/api/v1/persons/{person_id}/bank-card")
async def get_bank_card(person_id: int, pool: Pool, actor: CurrentActor) -> dict[str, Any]:
    async with pool.acquire() as conn:
        await bank_link.check_holder(conn, actor, person_id)
        card = await bank_link.bound_card(conn, person_id)
    return {"bank_card": bank_link.card_view(card) if card else None}


@router.post("/api/v1/persons/{person_id}/bank-card", status_code=201)
async def bind_bank_card(
    person_id: int, body: BindIn, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> dict[str, Any]:
    """Bind a bank card: the bank verifies number and name; only a masked number is kept."""
    return await bank_link.do_bind_card(
        pool,
        settings,
        actor,
        person_id=person_id,
        pan=body.pan,
        holder_name=body.holder_name,
        bank_name=body.bank_name,
    )


@router.delete("/api/v1/persons/{person_id}/bank-card")
async def unbind_bank_card(person_id: int, pool: Pool, actor: CurrentActor) -> dict[str, Any]:
    return await bank_link.do_unbind_card(pool, actor, person_id=person_id)


@router.post("/api/v1/persons/{person_id}/bank-loads", status_code=201)
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
async def bank_transfers(person_id: int, pool: Pool, actor: CurrentActor) -> list[dict[str, Any]]:
    return await bank_link.list_transfers(pool, actor, person_id)


@router.get("/api/v1/persons/{person_id}/auto-topup")
async def get_auto_topup(person_id: int, pool: Pool, actor: CurrentActor) -> dict[str, Any]:
    return {"auto_topup": await autotopup.get_auto_topup(pool, actor, person_id)}


@router.put("/api/v1/persons/{person_id}/auto-topup")
async def set_auto_topup(
    person_id: int, body: AutoTopupIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    """Below ``threshold``, load up to ``target`` from the bound bank card."""
    return await autotopup.do_set_auto_topup(
        pool,
        actor,
        person_id=person_id,
        threshold=body.threshold,
        target=body.target,
        enabled=body.enabled,
    )


@router.post("/api/v1/counter/{school}/leavings", status_code=201)
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
