"""Device API (POS, kiosk, door reader): every request is signed, see docs/terminal-protocol.md."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.applications import Starlette

from campuscard.api.admission import ChannelLimiter
from campuscard.api.answers import BlacklistOut, PaidFromOut, ReceiptOut
from campuscard.api.deps import Body, bearer_token, live_events, payment_batcher
from campuscard.api.routes.merchants import RefundOut
from campuscard.api.terminal_auth import BookingDevice, SignedDevice
from campuscard.cards import lifecycle
from campuscard.db.tx import transaction
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.offline import queries as offline_queries
from campuscard.payments import booking, terminals
from campuscard.payments.terminals import SignedTerminal
from campuscard.platform import auth, metrics
from campuscard.platform.errors import Unauthorized

router = APIRouter(prefix="/api/v1/terminal", tags=["terminal"])

CARD_NUMBER = r"^[0-9]{6,20}$"
CARD_UID = r"^[0-9A-Fa-f]{8,20}$"
CLIENT_ID = r"^[A-Za-z0-9_.:-]{8,64}$"


class PayCheckIn(Body):
    card_number: str = Field(pattern=CARD_NUMBER)
    card_uid: str = Field(pattern=CARD_UID)
    amount: Money = Field(description='yuan as a string, e.g. "12.50"')


class PayIn(PayCheckIn):
    client_id: str = Field(pattern=CLIENT_ID, description="the terminal's transaction id")
    pin: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


class ReverseIn(Body):
    client_id: str = Field(pattern=CLIENT_ID, description="client id of the payment to reverse")


class RefundIn(Body):
    client_id: str = Field(pattern=CLIENT_ID, description="id of this refund request")
    payment_id: int = Field(gt=0)
    amount: Money
    reason: str = Field(default="", max_length=200)


class HeartbeatIn(Body):
    app_version: str = Field(default="", max_length=32)
    blacklist_version: int | None = Field(default=None, ge=0)
    offline_queue: int = Field(default=0, ge=0, description="transactions waiting to upload")


# --- answers ------------------------------------------------------------------------------


class PayCheckOut(BaseModel):
    result: str = Field(description='"ok": the card would pay this amount')
    amount: str
    pin_required: bool
    holder: str = Field(description="the holder's name, masked")
    balance: str = Field(description="yuan in the purses now, held money included")
    balance_after: str
    available: str = Field(description="yuan that may be spent now")
    available_after: str
    paid_from: PaidFromOut = Field(description="the purses it would take from")
    merchant: str
    outlet: str | None
    spent_today: str = Field(description="yuan the holder paid this business day")
    daily_limit: str


class ReversalOut(BaseModel):
    result: str = Field(description='"reversed", or "nothing_to_reverse" (it was refused)')
    client_id: str
    original: str = Field(
        description='"booked", "not_received" (reversed before it arrived) or "refused"'
    )
    amount: str = Field(description="yuan given back")
    payment_id: int | None = Field(default=None, description="a booked original only")
    returned_to: PaidFromOut | None = Field(default=None, description="a booked original only")
    balance: str | None = Field(default=None, description="a booked original only")
    reversed_at: dt.datetime | None = Field(default=None, description="when it was reversed")
    original_error: str | None = Field(default=None, description="a refused original's code")


class OfflineLimitsOut(BaseModel):
    per_tx_limit: str = Field(description="yuan one offline sale may be at most")
    max_consecutive: int = Field(description="offline sales of one card since last online")
    max_total: str = Field(description="yuan those sales may add up to")
    max_stored: int = Field(description="records a till keeps before it refuses offline sales")


class TerminalBlacklistOut(BlacklistOut):
    offline_limits: OfflineLimitsOut = Field(description="what the till approves offline")


class HeartbeatOut(BaseModel):
    server_time: int = Field(description="the server's clock, Unix seconds")
    blacklist_version: int = Field(description="the school's blacklist version now")
    next_heartbeat_seconds: int


class DeviceKeyOut(BaseModel):
    key_version: int
    key: str = Field(description="the new signing key (hex)")


def answer(result: booking.PaymentAnswer) -> Response:
    """The engine's answer as it came from the database: its JSON text is not decoded and
    encoded again on the way out."""
    return Response(
        result.raw,
        status_code=result.status,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true" if result.replayed else "false"},
    )


@router.post("/pay/check", response_model=PayCheckOut)
async def check_payment(body: PayCheckIn, device: SignedDevice, pool: Pool) -> Response:
    """Preview: would this card pay this amount, is a PIN needed, what is left after."""
    async with pool.acquire() as conn:
        result = await booking.check_payment(
            conn,
            device,
            payer=booking.CardPayer(body.card_number, body.card_uid),
            amount=body.amount,
        )
    return answer(result)


@router.post("/pay", response_model=ReceiptOut)
async def pay(body: PayIn, request: Request, device: BookingDevice) -> Response:
    """Book a card payment once per client_id; a retry replays the first answer. Each channel
    (tuition, canteen, supermarket, other) has its own admission limit: when it is full the
    answer is 429 CHANNEL_BUSY with Retry-After (docs/channels.md)."""
    return await book_card(request.app, body, device)


async def book_card(app: Starlette, body: PayIn, device: SignedTerminal) -> Response:
    """What ``POST /pay`` does once its body is read and its device verified; the booking lane
    (api/booking_lane.py) calls it too."""
    limiter: ChannelLimiter = app.state.channel_limiter
    channel = await limiter.channel_of(app.state.pool, device.terminal.merchant_id)
    async with limiter.admit(channel):
        result = await booking.book_payment_batched(
            payment_batcher(app),
            app.state.settings,
            device,
            client_id=body.client_id,
            payer=booking.CardPayer(body.card_number, body.card_uid),
            amount=body.amount,
            pin=body.pin,
            events=live_events(app),
            channel=channel,
        )
    metrics.count_payment(channel, {} if result.ok else result.body, result.status)
    return answer(result)


@router.post("/pay/reverse", response_model=ReversalOut)
async def reverse(body: ReverseIn, device: SignedDevice, pool: Pool) -> Response:
    """冲正 a payment this terminal sent (also one that has not arrived yet)."""
    async with pool.acquire() as conn:
        result = await booking.reverse_payment(conn, device, client_id=body.client_id)
    return answer(result)


@router.post("/refunds", response_model=RefundOut)
async def refund(
    body: RefundIn, request: Request, device: SignedDevice, pool: Pool, settings: AppSettings
) -> JSONResponse:
    """Refund at the POS: the cashier signs in on the device (Authorization: Bearer) and needs
    the refund permission of this terminal's merchant."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(
            "a refund needs the cashier's sign-in (Authorization: Bearer)", code="AUTH_REQUIRED"
        )
    actor, _ = await auth.resolve_session(pool, settings, token, "api")
    outcome = await booking.refund_payment(
        pool,
        actor,
        payment_id=body.payment_id,
        amount=body.amount,
        client_id=body.client_id,
        reason=body.reason,
        terminal=device,
    )
    return JSONResponse(
        outcome.body,
        status_code=outcome.status,
        headers={"Idempotent-Replayed": "true" if outcome.replayed else "false"},
    )


@router.get("/blacklist", response_model_exclude_unset=True)
async def blacklist(
    device: SignedDevice, pool: Pool, since: Annotated[int | None, Query(ge=0)] = None
) -> TerminalBlacklistOut:
    """Cards to refuse: changes since version ``since``, or the full list."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        listed = await lifecycle.blacklist(tx, device.school_id, since=since)
        limits = await offline_queries.risk_limits(tx, device.school_id)
    # the limits a till approves within while offline come with the list it refuses by
    return TerminalBlacklistOut.model_validate(listed | {"offline_limits": limits.to_json()})


@router.post("/heartbeat")
async def heartbeat(body: HeartbeatIn, device: SignedDevice, pool: Pool) -> HeartbeatOut:
    async with pool.acquire() as conn:
        return HeartbeatOut.model_validate(
            await terminals.heartbeat(conn, device, body.model_dump())
        )


@router.post("/key/rotate")
async def rotate_key(device: SignedDevice, pool: Pool, settings: AppSettings) -> DeviceKeyOut:
    """Ask for a new key (signed with the current one); the old key works until the new one is
    first used."""
    async with pool.acquire() as conn:
        return DeviceKeyOut.model_validate(
            await terminals.rotate_key_by_device(conn, settings, device)
        )
