"""Merchants, outlets, staff, terminals and payments for administrators and merchants, and the
public merchant application (seed 000: 商家注册, approved by an administrator)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import AppSettings, Pool, school_id_for
from campuscard.ledger.money import Money
from campuscard.payments import booking, merchants, terminals
from campuscard.payments import queries as payments_queries
from campuscard.people import directory
from campuscard.platform.errors import NotFound
from campuscard.platform.idempotency import check_client_id

router = APIRouter(tags=["merchants"])

Channel = Literal["tuition", "canteen", "supermarket", "other"]
PHONE = r"^\+?[0-9]{5,20}$"


class ApplicationIn(Body):
    name: str = Field(min_length=1, max_length=64)
    name_en: str = Field(default="", max_length=128)
    channel: Channel
    contact_name: str = Field(min_length=1, max_length=64)
    contact_phone: str = Field(pattern=PHONE)
    username: str = Field(pattern=r"^[A-Za-z0-9_.@+-]{2,64}$")
    password: str = Field(min_length=8, max_length=200)


class MerchantIn(Body):
    name: str = Field(min_length=1, max_length=64)
    name_en: str = Field(default="", max_length=128)
    channel: Channel
    commission_bp: int = Field(default=0, ge=0, le=10000)
    shards: int = Field(default=8, ge=1, le=64)


class DecisionIn(Body):
    decision: Literal["approve", "reject", "suspend", "close"]
    note: str = Field(default="", max_length=200)
    commission_bp: int | None = Field(default=None, ge=0, le=10000)


class OutletIn(Body):
    name: str = Field(min_length=1, max_length=64)
    name_en: str = Field(default="", max_length=128)


class StaffIn(Body):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@+-]{2,64}$")
    password: str = Field(min_length=8, max_length=200)
    display_name: str = Field(default="", max_length=64)
    manager: bool = False
    can_refund: bool = False


class RefundPermissionIn(Body):
    allowed: bool


class TerminalIn(Body):
    sn: str = Field(pattern=r"^[A-Za-z0-9_-]{4,40}$")
    kind: Literal["pos", "kiosk", "door", "shop"]
    merchant_id: int | None = Field(default=None, gt=0)
    outlet_id: int | None = Field(default=None, gt=0)
    location: str = Field(default="", max_length=128)


class TerminalStatusIn(Body):
    status: Literal["active", "disabled"]
    reason: str = Field(default="", max_length=200)


class RefundIn(Body):
    client_id: str = Field(description="client-generated id of this refund")
    amount: Money
    reason: str = Field(default="", max_length=200)


@router.post("/api/v1/schools/{school}/merchant-applications", status_code=201)
async def apply(school: str, body: ApplicationIn, pool: Pool) -> dict[str, Any]:
    """A merchant registers (no sign-in needed); it waits for an administrator's approval."""
    async with pool.acquire() as conn:
        school_row = await directory.school_by_code(conn, school)
        return await merchants.apply_merchant(conn, school_row["id"], **body.model_dump())


@router.get("/api/v1/admin/schools/{school}/merchants")
async def list_merchants(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    status: Literal["pending", "approved", "rejected", "suspended", "closed"] | None = None,
) -> list[dict[str, Any]]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await merchants.list_merchants(conn, actor, school_id, status=status)


@router.post("/api/v1/admin/schools/{school}/merchants", status_code=201)
async def create_merchant(
    school: str, body: MerchantIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await merchants.create_merchant(conn, actor, school_id, **body.model_dump())


@router.get("/api/v1/merchants/{merchant_id}")
async def get_merchant(merchant_id: int, pool: Pool, actor: CurrentActor) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await merchants.get_merchant(conn, actor, merchant_id)


@router.post("/api/v1/admin/merchants/{merchant_id}/decision")
async def decide(
    merchant_id: int, body: DecisionIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await merchants.decide_merchant(conn, actor, merchant_id, **body.model_dump())


@router.post("/api/v1/merchants/{merchant_id}/outlets", status_code=201)
async def add_outlet(
    merchant_id: int, body: OutletIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await merchants.add_outlet(conn, actor, merchant_id, **body.model_dump())


@router.post("/api/v1/merchants/{merchant_id}/staff", status_code=201)
async def add_staff(
    merchant_id: int, body: StaffIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await merchants.add_staff(conn, actor, merchant_id, **body.model_dump())


@router.put("/api/v1/merchants/{merchant_id}/staff/{user_id}/refund-permission")
async def refund_permission(
    merchant_id: int, user_id: int, body: RefundPermissionIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await merchants.set_refund_permission(
            conn, actor, merchant_id, user_id, allowed=body.allowed
        )


@router.get("/api/v1/merchants/{merchant_id}/payments")
async def merchant_payments(
    merchant_id: int,
    pool: Pool,
    actor: CurrentActor,
    business_date: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        school_id = await payments_queries.merchant_school_id(conn, merchant_id)
        if school_id is None:
            raise NotFound("no such merchant", field="merchant_id")
        return await booking.list_payments(
            conn,
            actor,
            school_id,
            merchant_id=merchant_id,
            business_date=business_date,
            limit=limit,
            before_id=before_id,
        )


@router.get("/api/v1/payments/{payment_id}")
async def get_payment(payment_id: int, pool: Pool, actor: CurrentActor) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await booking.get_payment(conn, actor, payment_id)


@router.post("/api/v1/payments/{payment_id}/refunds")
async def refund(payment_id: int, body: RefundIn, pool: Pool, actor: CurrentActor) -> JSONResponse:
    """Refund (part of) a payment back to the purses that paid it; merchant staff with the
    refund permission, managers, or the settlement center."""
    outcome = await booking.refund_payment(
        pool,
        actor,
        payment_id=payment_id,
        amount=body.amount,
        client_id=check_client_id(body.client_id),
        reason=body.reason,
    )
    return JSONResponse(
        outcome.body,
        status_code=outcome.status,
        headers={"Idempotent-Replayed": "true" if outcome.replayed else "false"},
    )


@router.get("/api/v1/admin/schools/{school}/payments")
async def school_payments(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    merchant_id: int | None = None,
    person_id: int | None = None,
    business_date: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await booking.list_payments(
            conn,
            actor,
            school_id,
            merchant_id=merchant_id,
            person_id=person_id,
            business_date=business_date,
            limit=limit,
            before_id=before_id,
        )


@router.get("/api/v1/admin/schools/{school}/terminals")
async def list_terminals(school: str, pool: Pool, actor: CurrentActor) -> list[dict[str, Any]]:
    """Every terminal, with ``online`` false when no heartbeat came for 3 minutes."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await terminals.list_terminals(conn, actor, school_id)


@router.post("/api/v1/admin/schools/{school}/terminals", status_code=201)
async def register_terminal(
    school: str, body: TerminalIn, pool: Pool, actor: CurrentActor, settings: AppSettings
) -> dict[str, Any]:
    """Register a device; the answer shows its key once, to provision the device."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return await terminals.register_terminal(
            conn, actor, settings, school_id, **body.model_dump()
        )


@router.post("/api/v1/admin/terminals/{terminal_id}/rotate-key")
async def rotate_key(
    terminal_id: int, pool: Pool, actor: CurrentActor, settings: AppSettings
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await terminals.rotate_key(conn, actor, settings, terminal_id)


@router.post("/api/v1/admin/terminals/{terminal_id}/status")
async def terminal_status(
    terminal_id: int, body: TerminalStatusIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await terminals.set_status(
            conn, actor, terminal_id, status=body.status, reason=body.reason
        )
