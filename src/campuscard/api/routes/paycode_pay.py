"""Paying with a payment code: the till's signed API, and the student's phone confirmation."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette

from campuscard.api.admission import ChannelLimiter
from campuscard.api.answers import ReceiptOut
from campuscard.api.deps import Body, CurrentActor, live_events, payment_batcher
from campuscard.api.routes.live import DisplayEventOut
from campuscard.api.routes.terminal import answer
from campuscard.api.terminal_auth import BookingDevice, SignedDevice
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.payments import code_payments, display, terminals
from campuscard.payments.terminals import SignedTerminal
from campuscard.platform import metrics

router = APIRouter(prefix="/api/v1", tags=["paycodes"])

CLIENT_ID = r"^[A-Za-z0-9_.:-]{8,64}$"


class CodePayIn(Body):
    client_id: str = Field(pattern=CLIENT_ID, description="the terminal's transaction id")
    code: str = Field(min_length=1, max_length=40, description="the 20 digits scanned")
    amount: Money = Field(description='yuan as a string, e.g. "12.50"')
    pin: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


class PendingIn(Body):
    amount: Money = Field(description='the amount typed at the till, e.g. "12.50"')


class ConfirmIn(Body):
    accept: bool
    pin: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


class ConfirmOnPhoneOut(BaseModel):
    result: str = Field(description='"confirm_on_phone"')
    confirmation_id: int
    message: str = Field(description="what the till shows meanwhile")
    expires_at: dt.datetime = Field(description="the student confirms before this")


class ConfirmationOut(BaseModel):
    id: int
    amount: str = Field(description="yuan the till asks")
    created_at: dt.datetime
    expires_at: dt.datetime
    terminal_id: int
    merchant: str
    outlet: str


class ConfirmationAnswerOut(BaseModel):
    """Declined; or paid or refused, with the till's answer: the receipt's fields
    (as /terminal/paycode/pay answers them) or its ``error``."""

    model_config = ConfigDict(extra="allow")

    status: str = Field(description='"declined", "paid" or "refused"')
    http_status: int | None = Field(
        default=None, description="the status the till's answer had (paid or refused)"
    )


@router.post(
    "/terminal/paycode/pay",
    response_model=ReceiptOut,
    responses={202: {"model": ConfirmOnPhoneOut, "description": "waiting for the phone"}},
)
async def pay_with_code(body: CodePayIn, request: Request, device: BookingDevice) -> Response:
    """Pay with a scanned payment code: 200 receipt, 202 waiting for the phone (repeat the
    same request), or an error. Same limits, PIN rule and channel admission as a card."""
    return await book_code(request.app, body, device)


async def book_code(app: Starlette, body: CodePayIn, device: SignedTerminal) -> Response:
    """What ``POST /terminal/paycode/pay`` does once its body is read and its device verified;
    the booking lane (api/booking_lane.py) calls it too."""
    limiter: ChannelLimiter = app.state.channel_limiter
    pool = app.state.pool
    channel = await limiter.channel_of(pool, device.terminal.merchant_id)
    async with limiter.admit(channel):
        result = await code_payments.do_pay_with_code(
            pool,
            app.state.settings,
            device,
            client_id=body.client_id,
            code=body.code,
            amount=body.amount,
            pin=body.pin,
            events=live_events(app),
            batcher=payment_batcher(app),
            channel=channel,
        )
    metrics.count_payment(channel, {} if result.ok else result.body, result.status)
    return answer(result)


@router.post("/terminal/display/pending")
async def terminal_pending(body: PendingIn, device: SignedDevice, pool: Pool) -> DisplayEventOut:
    """The till shows the typed amount on its customer display (seed 000)."""
    async with pool.acquire() as conn:
        await terminals.do_record_nonce(conn, device)
        terminal = await code_payments.terminal_view(conn, device.id)
        event = await display.do_set_pending_amount(
            conn, terminal, body.amount, by=f"terminal:{device.terminal.sn}"
        )
    return DisplayEventOut.model_validate(event)


@router.get("/me/paycode/confirmations")
async def my_confirmations(pool: Pool, actor: CurrentActor) -> list[ConfirmationOut]:
    async with pool.acquire() as conn:
        rows = await code_payments.list_confirmations(conn, actor)
    return [ConfirmationOut.model_validate(r) for r in rows]


@router.post("/me/paycode/confirmations/{confirmation_id}", response_model_exclude_unset=True)
async def answer_confirmation(
    confirmation_id: int, body: ConfirmIn, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> ConfirmationAnswerOut:
    """Confirm (with the PIN) or decline a payment a till is waiting on."""
    return ConfirmationAnswerOut.model_validate(
        await code_payments.do_answer_confirmation(
            pool, settings, actor, confirmation_id, accept=body.accept, pin=body.pin
        )
    )
