"""Merchants, outlets, staff, terminals and payments for administrators and merchants, and the
public merchant application (seed 000: 商家注册, approved by an administrator)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.answers import PaymentRowOut
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


# --- answers ------------------------------------------------------------------------------


class MerchantApplied(BaseModel):
    id: int = Field(description="the merchant, pending until an administrator decides")
    status: str = Field(description='"pending"')
    manager_user_id: int = Field(description="the manager's sign-in created with it")


class MerchantRowOut(BaseModel):
    id: int
    name: str
    name_en: str
    channel: str = Field(description='"tuition", "canteen", "supermarket" or "other"')
    status: str = Field(description='"pending", "approved", "rejected", "suspended" or "closed"')
    commission_bp: int = Field(description="commission in basis points (1/100 of a percent)")
    shards: int = Field(description="how many account shards its takings are spread over")
    contact_name: str
    created_at: dt.datetime
    approved_at: dt.datetime | None


class OutletOut(BaseModel):
    id: int
    name: str
    name_en: str


class MerchantOut(MerchantRowOut):
    school_id: int
    contact_phone: str
    decision_note: str
    outlets: list[OutletOut]


class OutletCreated(OutletOut):
    merchant_id: int


class StaffCreated(BaseModel):
    user_id: int
    username: str
    role: str = Field(description='"merchant_manager" or "merchant_staff"')
    can_refund: bool


class RefundPermissionOut(BaseModel):
    user_id: int
    merchant_id: int
    can_refund: bool


class RefundRowOut(BaseModel):
    id: int
    amount: str = Field(description="yuan refunded")
    to_cash: str = Field(description="yuan returned to the cash purse")
    to_subsidy: str = Field(description="yuan returned to the subsidy purse")
    reason: str
    actor: str = Field(description="who refunded")
    created_at: dt.datetime


class PaymentOut(PaymentRowOut):
    school_id: int
    card_id: int | None
    refunded_cash: str
    refunded_subsidy: str
    pin_verified: bool
    tx_id: int = Field(description="the ledger transaction that booked it")
    reversed_at: dt.datetime | None
    refunds: list[RefundRowOut]


class ReturnedToOut(BaseModel):
    cash: str = Field(description="yuan returned to the cash purse")
    subsidy: str = Field(description="yuan returned to the subsidy purse")


class RefundOut(BaseModel):
    result: str = Field(description='"refunded"')
    refund_id: int
    payment_id: int
    amount: str = Field(description="yuan refunded")
    returned_to: ReturnedToOut
    refunded_total: str = Field(description="yuan refunded of this payment, this one included")
    refundable: str = Field(description="yuan of the payment still refundable")
    balance: str = Field(description="the holder's purses together, after the refund")
    business_date: dt.date


class TerminalRowOut(BaseModel):
    id: int
    sn: str = Field(description="the device's serial number")
    kind: str = Field(description='"pos", "kiosk", "door" or "shop"')
    status: str = Field(description='"active" or "disabled"')
    merchant_id: int | None
    merchant: str | None = Field(description="the merchant's name")
    outlet_id: int | None
    outlet: str | None = Field(description="the outlet's name")
    location: str
    key_version: int
    last_seen_at: dt.datetime | None
    heartbeat: dict[str, Any] = Field(description="what the device reported in its last heartbeat")
    blacklist_version: int | None = Field(description="the blacklist version the device holds")
    online: bool = Field(description="false when no heartbeat came for 3 minutes")


class TerminalKeyOut(BaseModel):
    id: int
    sn: str
    key_version: int
    key: str = Field(description="the device's signing key (hex), shown this once")


class TerminalRegistered(TerminalKeyOut):
    kind: str


class TerminalStatusOut(BaseModel):
    id: int
    sn: str
    status: str = Field(description='"active" or "disabled"')


@router.post("/api/v1/schools/{school}/merchant-applications", status_code=201)
async def apply(school: str, body: ApplicationIn, pool: Pool) -> MerchantApplied:
    """A merchant registers (no sign-in needed); it waits for an administrator's approval."""
    async with pool.acquire() as conn:
        school_row = await directory.school_by_code(conn, school)
        return MerchantApplied.model_validate(
            await merchants.apply_merchant(conn, school_row["id"], **body.model_dump())
        )


@router.get("/api/v1/admin/schools/{school}/merchants")
async def list_merchants(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    status: Literal["pending", "approved", "rejected", "suspended", "closed"] | None = None,
) -> list[MerchantRowOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await merchants.list_merchants(conn, actor, school_id, status=status)
    return [MerchantRowOut.model_validate(r) for r in rows]


@router.post("/api/v1/admin/schools/{school}/merchants", status_code=201)
async def create_merchant(
    school: str, body: MerchantIn, pool: Pool, actor: CurrentActor
) -> MerchantOut:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return MerchantOut.model_validate(
            await merchants.create_merchant(conn, actor, school_id, **body.model_dump())
        )


@router.get("/api/v1/merchants/{merchant_id}")
async def get_merchant(merchant_id: int, pool: Pool, actor: CurrentActor) -> MerchantOut:
    async with pool.acquire() as conn:
        return MerchantOut.model_validate(await merchants.get_merchant(conn, actor, merchant_id))


@router.post("/api/v1/admin/merchants/{merchant_id}/decision")
async def decide(
    merchant_id: int, body: DecisionIn, pool: Pool, actor: CurrentActor
) -> MerchantOut:
    async with pool.acquire() as conn:
        return MerchantOut.model_validate(
            await merchants.decide_merchant(conn, actor, merchant_id, **body.model_dump())
        )


@router.post("/api/v1/merchants/{merchant_id}/outlets", status_code=201)
async def add_outlet(
    merchant_id: int, body: OutletIn, pool: Pool, actor: CurrentActor
) -> OutletCreated:
    async with pool.acquire() as conn:
        return OutletCreated.model_validate(
            await merchants.add_outlet(conn, actor, merchant_id, **body.model_dump())
        )


@router.post("/api/v1/merchants/{merchant_id}/staff", status_code=201)
async def add_staff(
    merchant_id: int, body: StaffIn, pool: Pool, actor: CurrentActor
) -> StaffCreated:
    async with pool.acquire() as conn:
        return StaffCreated.model_validate(
            await merchants.add_staff(conn, actor, merchant_id, **body.model_dump())
        )


@router.put("/api/v1/merchants/{merchant_id}/staff/{user_id}/refund-permission")
async def refund_permission(
    merchant_id: int, user_id: int, body: RefundPermissionIn, pool: Pool, actor: CurrentActor
) -> RefundPermissionOut:
    async with pool.acquire() as conn:
        return RefundPermissionOut.model_validate(
            await merchants.set_refund_permission(
                conn, actor, merchant_id, user_id, allowed=body.allowed
            )
        )


@router.get("/api/v1/merchants/{merchant_id}/payments")
async def merchant_payments(
    merchant_id: int,
    pool: Pool,
    actor: CurrentActor,
    business_date: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: int | None = None,
) -> list[PaymentRowOut]:
    async with pool.acquire() as conn:
        school_id = await payments_queries.merchant_school_id(conn, merchant_id)
        if school_id is None:
            raise NotFound("no such merchant", field="merchant_id")
        rows = await booking.list_payments(
            conn,
            actor,
            school_id,
            merchant_id=merchant_id,
            business_date=business_date,
            limit=limit,
            before_id=before_id,
        )
    return [PaymentRowOut.model_validate(r) for r in rows]


@router.get("/api/v1/payments/{payment_id}")
async def get_payment(payment_id: int, pool: Pool, actor: CurrentActor) -> PaymentOut:
    async with pool.acquire() as conn:
        return PaymentOut.model_validate(await booking.get_payment(conn, actor, payment_id))


@router.post("/api/v1/payments/{payment_id}/refunds", response_model=RefundOut)
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
) -> list[PaymentRowOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await booking.list_payments(
            conn,
            actor,
            school_id,
            merchant_id=merchant_id,
            person_id=person_id,
            business_date=business_date,
            limit=limit,
            before_id=before_id,
        )
    return [PaymentRowOut.model_validate(r) for r in rows]


@router.get("/api/v1/admin/schools/{school}/terminals")
async def list_terminals(school: str, pool: Pool, actor: CurrentActor) -> list[TerminalRowOut]:
    """Every terminal, with ``online`` false when no heartbeat came for 3 minutes."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await terminals.list_terminals(conn, actor, school_id)
    return [TerminalRowOut.model_validate(r) for r in rows]


@router.post("/api/v1/admin/schools/{school}/terminals", status_code=201)
async def register_terminal(
    school: str, body: TerminalIn, pool: Pool, actor: CurrentActor, settings: AppSettings
) -> TerminalRegistered:
    """Register a device; the answer shows its key once, to provision the device."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return TerminalRegistered.model_validate(
            await terminals.register_terminal(conn, actor, settings, school_id, **body.model_dump())
        )


@router.post("/api/v1/admin/terminals/{terminal_id}/rotate-key")
async def rotate_key(
    terminal_id: int, pool: Pool, actor: CurrentActor, settings: AppSettings
) -> TerminalKeyOut:
    async with pool.acquire() as conn:
        return TerminalKeyOut.model_validate(
            await terminals.rotate_key(conn, actor, settings, terminal_id)
        )


@router.post("/api/v1/admin/terminals/{terminal_id}/status")
async def terminal_status(
    terminal_id: int, body: TerminalStatusIn, pool: Pool, actor: CurrentActor
) -> TerminalStatusOut:
    async with pool.acquire() as conn:
        return TerminalStatusOut.model_validate(
            await terminals.set_status(
                conn, actor, terminal_id, status=body.status, reason=body.reason
            )
        )
