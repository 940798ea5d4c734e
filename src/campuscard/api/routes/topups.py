"""Online top-up (holder or parent), the provider's notify callback, refunds."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.moneyflows import provider_orders, topups
from campuscard.platform.idempotency import check_client_id

router = APIRouter(tags=["top-up"])


class TopupIn(Body):
    client_id: str = Field(description="client-generated id; a retry returns the same order")
    person_id: int = Field(gt=0, description="whose card: yourself or your linked child")
    amount: Money


class RefundIn(Body):
    reason: str = Field(min_length=1, max_length=200)


class ProviderOrderOut(BaseModel):
    id: int
    out_trade_no: str = Field(description="the order number the provider knows")
    purpose: str = Field(description='what it pays for, e.g. "topup"')
    person_id: int | None
    amount: str = Field(description='yuan, e.g. "50.00"')
    status: str = Field(description='"pending", "paid", "expired", "failed" or "refunded"')
    pay_url: str | None = Field(description="where the payer pays it")
    paid_via: str | None
    created_at: str
    expires_at: str
    paid_at: str | None


@router.post("/api/v1/topups", status_code=201, response_model=ProviderOrderOut)
async def create_topup(
    body: TopupIn, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> JSONResponse:
    """Open a top-up order; pay it at ``pay_url``. The purse is credited once it is paid."""
    status, view, replayed = await topups.do_create_topup(
        pool,
        settings,
        actor,
        person_id=body.person_id,
        amount=body.amount,
        client_id=check_client_id(body.client_id),
    )
    return JSONResponse(
        view, status_code=status, headers={"Idempotent-Replayed": str(replayed).lower()}
    )


@router.get("/api/v1/topups/{order_id}")
async def get_topup(order_id: int, pool: Pool, actor: CurrentActor) -> ProviderOrderOut:
    return ProviderOrderOut.model_validate(await topups.get_topup(pool, actor, order_id))


@router.get("/api/v1/persons/{person_id}/topups")
async def list_topups(person_id: int, pool: Pool, actor: CurrentActor) -> list[ProviderOrderOut]:
    orders = await topups.list_topups(pool, actor, person_id)
    return [ProviderOrderOut.model_validate(o) for o in orders]


@router.post("/api/v1/admin/provider-orders/{order_id}/refund")
async def refund_order(
    order_id: int, body: RefundIn, pool: Pool, actor: CurrentActor
) -> ProviderOrderOut:
    """Refund a paid order (settlement center): booked now, sent to the provider after."""
    order = await provider_orders.do_refund(pool, actor, order_id, reason=body.reason)
    return ProviderOrderOut.model_validate(order)


@router.post("/api/v1/providers/notify", include_in_schema=False)
async def provider_notify(request: Request, pool: Pool, settings: AppSettings) -> JSONResponse:
    """The provider's signed asynchronous notify (no session: the signature is the proof)."""
    try:
        params: object = await request.json()
    except ValueError:
        params = None
    remote = request.client.host if request.client else None
    status, answer = await provider_orders.handle_notify(pool, settings, params, remote=remote)
    return JSONResponse(answer, status_code=status)
