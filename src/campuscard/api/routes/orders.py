"""Escrowed orders over HTTP (docs/orders.md): the shop's server through its signed shop
terminal (docs/terminal-protocol.md, "Online shops"), the buyer on the phone, the settlement
center for disputes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.api.routes.live import (
    STREAM,
    LiveEventResponse,
    require_event_stream,
    sse_response,
)
from campuscard.api.terminal_auth import SignedDevice
from campuscard.db.tx import transaction
from campuscard.edge.deps import AppSettings, Pool, school_id_for
from campuscard.ledger.money import Money
from campuscard.orders import buying, disputes, merchant, queries, readers, shop
from campuscard.payments import terminals
from campuscard.platform.actors import Actor
from campuscard.platform.idempotency import Outcome
from campuscard.platform.live import Event

shop_router = APIRouter(prefix="/api/v1/terminal/shop", tags=["terminal"])
router = APIRouter(prefix="/api/v1/schools/{school}", tags=["orders"])
events_router = APIRouter(prefix="/api/v1/merchants", tags=["live"])
reader_router = APIRouter(prefix="/api/v1/terminal/reader", tags=["terminal"])
admin_router = APIRouter(prefix="/api/v1/admin/schools/{school}", tags=["admin"])
Id = Annotated[int, Path(ge=1, le=2**62)]
OrderNo = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{4,64}$")]


class ItemIn(Body):
    name: str = Field(min_length=1, max_length=64)
    qty: int = Field(ge=1, le=999)
    unit_price: Money


class ItemOut(BaseModel):
    name: str
    qty: int
    unit_price: str
    total: str


class OrderOut(BaseModel):
    id: int
    order_no: str
    merchant_id: int
    merchant_name: str
    person_id: int
    buyer_name: str
    buyer_number: str
    title: str
    items: list[ItemOut]
    amount: str
    released: str = Field(description="paid to the merchant so far")
    refunded: str = Field(description="given back to the buyer so far")
    held: str = Field(description="still held for the order")
    state: str = Field(
        description="wait_buyer_pay, wait_seller_send, wait_buyer_confirm, disputed, "
        "finished or closed"
    )
    close_reason: str | None
    delivery_address: str
    tracking: str
    pay_by: str | None
    ship_by: str | None
    release_at: str | None
    dispute_reason: str | None
    approval_id: int | None
    created_at: str | None
    paid_at: str | None
    shipped_at: str | None
    ended_at: str | None
    replayed: bool = False


class EventOut(BaseModel):
    kind: str
    amount: str | None
    actor: str
    detail: dict[str, Any]
    at: str


class MyOrderOut(OrderOut):
    delivery_code: str | None = Field(
        default=None, description="give it to the courier: it releases the order, once"
    )
    history: list[EventOut]


class NewOrderIn(Body):
    order_no: str = Field(pattern=r"^[A-Za-z0-9_.:-]{4,64}$", description="the shop's own id")
    buyer_number: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="学号 / 工号")
    title: str = Field(min_length=1, max_length=64)
    items: list[ItemIn] = Field(min_length=1, max_length=50)
    delivery_address: str = Field(default="", max_length=200)
    ship_within_hours: int = Field(default=48, ge=1, le=10_000)
    confirm_within_hours: int = Field(default=72, ge=1, le=10_000)
    pay_within_minutes: int | None = Field(default=None, ge=1, le=1440)


class ShipIn(Body):
    tracking: str = Field(default="", max_length=64)


class DeliverIn(Body):
    code: str = Field(pattern=r"^[0-9]{6}$", description="the buyer's one-time delivery code")


class RefundIn(Body):
    refund_no: str = Field(pattern=r"^[A-Za-z0-9_.:-]{4,64}$", description="the shop's own id")
    amount: Money | None = Field(default=None, description="all that is held when left out")
    reason: str = Field(min_length=2, max_length=200)


class PayIn(Body):
    client_id: str = Field(description="client-generated id; a retry returns the same answer")
    pin: str | None = Field(
        default=None,
        pattern=r"^[0-9]{6}$",
        description="needed when the order goes to an address other than the one on file",
    )


class ConfirmIn(Body):
    client_id: str
    amount: Money | None = Field(default=None, description="the part that arrived; all if left out")


class DisputeIn(Body):
    client_id: str
    reason: str = Field(min_length=2, max_length=200)


class DecisionIn(Body):
    to_merchant: Money = Field(description="what of the held money goes to the merchant")
    note: str = Field(min_length=2, max_length=200)


class ProposalOut(BaseModel):
    status: str
    approval: dict[str, Any]


def _order(view: dict[str, Any]) -> JSONResponse:
    return JSONResponse(
        OrderOut(**view).model_dump(),
        headers={"Idempotent-Replayed": str(bool(view.get("replayed"))).lower()},
    )


def _outcome(outcome: Outcome) -> JSONResponse:
    body = OrderOut(**outcome.body).model_dump() if outcome.status == 200 else outcome.body
    return JSONResponse(
        body,
        status_code=outcome.status,
        headers={"Idempotent-Replayed": str(outcome.replayed).lower()},
    )


@shop_router.post("/orders", response_model=OrderOut)
async def create_order(body: NewOrderIn, device: SignedDevice, pool: Pool) -> JSONResponse:
    """An order for a cardholder; the same order_no resent answers the same order."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        view = await shop.do_create_order.in_tx(
            tx,
            shop.shop_of(device.terminal),
            shop.NewOrder(
                order_no=body.order_no,
                buyer_number=body.buyer_number,
                title=body.title,
                items=[
                    {"name": i.name, "qty": i.qty, "unit_price": str(i.unit_price)}
                    for i in body.items
                ],
                delivery_address=body.delivery_address,
                ship_within_hours=body.ship_within_hours,
                confirm_within_hours=body.confirm_within_hours,
                pay_within_minutes=body.pay_within_minutes,
            ),
        )
    return _order(view)


@shop_router.get("/orders/{order_no}", response_model=OrderOut)
async def shop_order(order_no: OrderNo, device: SignedDevice, pool: Pool) -> OrderOut:
    the_shop = shop.shop_of(device.terminal)
    await terminals.do_record_nonce(pool, device)
    return OrderOut(
        **await queries.shop_order(pool, the_shop.school_id, the_shop.merchant_id, order_no)
    )


@shop_router.post("/orders/{order_no}/ship", response_model=OrderOut)
async def ship(order_no: OrderNo, body: ShipIn, device: SignedDevice, pool: Pool) -> JSONResponse:
    """Goods on their way: the buyer's confirmation window starts."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        view = await shop.do_ship.in_tx(
            tx, shop.shop_of(device.terminal), order_no, tracking=body.tracking
        )
    return _order(view)


@shop_router.post(
    "/orders/{order_no}/deliver",
    response_model=OrderOut,
    responses={422: {"description": "CODE_WRONG"}, 423: {"description": "CODE_LOCKED"}},
)
async def deliver(
    order_no: OrderNo, body: DeliverIn, device: SignedDevice, pool: Pool, settings: AppSettings
) -> JSONResponse:
    """The courier enters the buyer's code: everything held is released to the merchant."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        answer = await shop.do_deliver_with_code.in_tx(
            tx, settings, shop.shop_of(device.terminal), order_no, code=body.code
        )
    if answer.refusal is not None:
        raise answer.refusal
    assert answer.view is not None
    return _order(answer.view)


@shop_router.post("/orders/{order_no}/refunds", response_model=OrderOut)
async def refund(
    order_no: OrderNo, body: RefundIn, device: SignedDevice, pool: Pool
) -> JSONResponse:
    """Give back part or all of what is held; once per refund_no."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        view = await shop.do_refund.in_tx(
            tx,
            shop.shop_of(device.terminal),
            order_no,
            refund_no=body.refund_no,
            amount=body.amount.fen if body.amount is not None else None,
            reason=body.reason,
        )
    return _order(view)


@shop_router.post("/orders/{order_no}/cancel", response_model=OrderOut)
async def cancel(order_no: OrderNo, device: SignedDevice, pool: Pool) -> JSONResponse:
    """Withdraw an order that was not paid."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        view = await shop.do_cancel.in_tx(tx, shop.shop_of(device.terminal), order_no)
    return _order(view)


async def _school(pool: Pool, actor: Actor, school: str) -> int:
    return await school_id_for(pool, actor, school)


@router.get("/my/orders", response_model=list[OrderOut])
async def my_orders(school: str, pool: Pool, actor: CurrentActor) -> list[OrderOut]:
    """The signed-in cardholder's orders, newest first."""
    school_id = await _school(pool, actor, school)
    return [OrderOut(**o) for o in await buying.list_my_orders(pool, actor, school_id)]


@router.get("/orders/{order_id}", response_model=MyOrderOut)
async def my_order(
    school: str, order_id: Id, pool: Pool, actor: CurrentActor, settings: AppSettings
) -> MyOrderOut:
    """One of the buyer's orders with its history and the delivery code."""
    school_id = await _school(pool, actor, school)
    return MyOrderOut(**await buying.get_my_order(pool, settings, actor, school_id, order_id))


@router.post(
    "/orders/{order_id}/payment",
    response_model=OrderOut,
    responses={409: {"description": "INSUFFICIENT_FUNDS, ORDER_STATE or ORDER_PAY_EXPIRED"}},
)
async def pay(
    school: str, order_id: Id, body: PayIn, pool: Pool, actor: CurrentActor
) -> JSONResponse:
    """Pay the order: the money is held, and reaches the shop only on a release condition."""
    school_id = await _school(pool, actor, school)
    return _outcome(await buying.do_pay(pool, actor, school_id, order_id, client_id=body.client_id))


@router.post("/orders/{order_id}/confirmation", response_model=OrderOut)
async def confirm(
    school: str, order_id: Id, body: ConfirmIn, pool: Pool, actor: CurrentActor
) -> JSONResponse:
    """The goods (or a part of them) arrived: release that much to the shop."""
    school_id = await _school(pool, actor, school)
    return _outcome(
        await buying.do_confirm(
            pool,
            actor,
            school_id,
            order_id,
            client_id=body.client_id,
            amount=body.amount.fen if body.amount is not None else None,
        )
    )


@router.post("/orders/{order_id}/dispute", response_model=OrderOut)
async def dispute(
    school: str, order_id: Id, body: DisputeIn, pool: Pool, actor: CurrentActor
) -> JSONResponse:
    """Object to the order: the money stays held until the settlement center decides."""
    school_id = await _school(pool, actor, school)
    return _outcome(
        await buying.do_dispute(
            pool, actor, school_id, order_id, client_id=body.client_id, reason=body.reason
        )
    )


@router.get("/order-disputes", response_model=list[OrderOut])
async def open_disputes(school: str, pool: Pool, actor: CurrentActor) -> list[OrderOut]:
    """Disputed orders waiting for a decision (the settlement center)."""
    school_id = await _school(pool, actor, school)
    return [OrderOut(**o) for o in await disputes.list_disputes(pool, actor, school_id)]


@router.post("/orders/{order_id}/dispute-decision", status_code=202, response_model=ProposalOut)
async def propose_decision(
    school: str, order_id: Id, body: DecisionIn, pool: Pool, actor: CurrentActor
) -> ProposalOut:
    """Propose the split of a disputed order; a second person approves it on the approvals
    page or at ``/api/v1/admin/schools/{school}/approvals/{id}/decision``."""
    school_id = await _school(pool, actor, school)
    return ProposalOut(
        **await disputes.do_propose_decision(
            pool, actor, school_id, order_id, to_merchant=body.to_merchant.fen, note=body.note
        )
    )


@events_router.get(
    "/{merchant_id}/order-events", response_class=LiveEventResponse, responses=STREAM
)
async def order_events(merchant_id: Id, request: Request, actor: CurrentActor) -> LiveEventResponse:
    """The merchant's orders, live: every step of every order of this merchant (its staff)."""
    require_event_stream(request)
    merchant.check_staff(actor, merchant_id)

    def of_this_merchant(event: Event) -> bool:
        return event.get("type") == "order" and event.get("merchant_id") == merchant_id

    return sse_response(request, actor, of_this_merchant, [])


class ReaderIn(Body):
    sn: str = Field(pattern=r"^[A-Za-z0-9_-]{4,40}$")
    card_number: str = Field(pattern=r"^[0-9]{6,20}$", description="the one card it serves")
    location: str = Field(default="", max_length=100)


class ReaderOut(BaseModel):
    id: int
    sn: str
    kind: str
    card_number: str
    key_version: int
    key: str = Field(description="shown only in this answer")


class ReaderPayIn(Body):
    card_number: str = Field(pattern=r"^[0-9]{6,20}$")
    card_uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")
    pin: str = Field(pattern=r"^[0-9]{6}$")


@admin_router.post("/personal-readers", status_code=201, response_model=ReaderOut)
async def register_reader(
    school: str, body: ReaderIn, pool: Pool, actor: CurrentActor, settings: AppSettings
) -> ReaderOut:
    """Register a personal reader bound to one card (the card center); its key, once."""
    school_id = await _school(pool, actor, school)
    return ReaderOut(
        **await readers.do_register_personal_reader(
            pool,
            actor,
            settings,
            school_id,
            sn=body.sn,
            card_number=body.card_number,
            location=body.location,
        )
    )


@reader_router.get("/orders", response_model=list[OrderOut])
async def reader_orders(device: SignedDevice, pool: Pool) -> list[OrderOut]:
    """The reader's cardholder's orders waiting for payment."""
    reader = await readers.reader_of(pool, device.terminal)
    await terminals.do_record_nonce(pool, device)
    return [OrderOut(**o) for o in await readers.orders_to_pay(pool, reader)]


@reader_router.post(
    "/orders/{order_id}/pay",
    response_model=OrderOut,
    responses={403: {"description": "CARD_NOT_BOUND, PIN_WRONG, PIN_LOCKED or PIN_NOT_SET"}},
)
async def reader_pay(
    order_id: Id, body: ReaderPayIn, device: SignedDevice, pool: Pool, settings: AppSettings
) -> JSONResponse:
    """The reader's card and the cardholder's PIN pay the order: the money is held."""
    reader = await readers.reader_of(pool, device.terminal)
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        answer = await readers.do_pay_order.in_tx(
            tx,
            settings,
            reader,
            order_id,
            card_number=body.card_number,
            card_uid=body.card_uid,
            pin=body.pin,
        )
    if answer.refusal is not None:
        raise answer.refusal
    assert answer.view is not None
    return _order(answer.view)
