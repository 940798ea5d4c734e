"""Kiosk self-service (seed 002): a visit starts with card + PIN (or number + password for a
lost card); then balance and recent transactions, report loss, change PIN, top up. Every
request is signed by the kiosk; the visit token rides in the body."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.answers import PersonBalancesOut
from campuscard.api.deps import Body
from campuscard.api.routes.cards import CardOut, PinSetOut
from campuscard.api.routes.kiosk_issuing import CARD_NUMBER, CARD_UID, CLIENT_ID, kiosk_of
from campuscard.api.routes.topups import ProviderOrderOut
from campuscard.api.terminal_auth import SignedDevice
from campuscard.edge.deps import AppSettings, Pool
from campuscard.issuing import kiosk as kss
from campuscard.ledger.money import Money

router = APIRouter(prefix="/api/v1/kiosk/self-service", tags=["kiosk"])


class CardStartIn(Body):
    card_number: str = Field(pattern=CARD_NUMBER)
    card_uid: str = Field(pattern=CARD_UID)
    pin: str = Field(pattern=r"^[0-9]{6}$")


class PasswordStartIn(Body):
    number: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    password: str = Field(min_length=1, max_length=200)


class VisitIn(Body):
    visit: str = Field(min_length=10, max_length=200)


class LossIn(VisitIn):
    card_id: int = Field(gt=0)


class PinIn(VisitIn):
    pin: str = Field(pattern=r"^[0-9]{6}$")
    new_pin: str = Field(pattern=r"^[0-9]{6}$")


class TopupIn(VisitIn):
    client_id: str = Field(pattern=CLIENT_ID)
    amount: Money


# --- answers ------------------------------------------------------------------------------


class VisitOut(BaseModel):
    visit: str = Field(description="the visit token: send it with every step of this visit")
    expires_in: int = Field(description="seconds the visit lasts")
    name: str
    number: str


class KioskCardOut(BaseModel):
    id: int
    number: str
    state: str = Field(description='"active", "issued", "frozen" or "lost"')


class RecentOut(BaseModel):
    at: str
    kind: str = Field(description='what moved the money, e.g. "payment", "counter_deposit"')
    memo: str
    purse: str = Field(description='"cash" or "subsidy"')
    amount: str = Field(description="yuan, negative when money left the purse")
    balance_after: str


class OverviewOut(BaseModel):
    balances: PersonBalancesOut
    total: str = Field(description="yuan in both purses")
    held: str = Field(description="yuan set aside by open holds")
    available: str = Field(description="yuan that may be spent")
    cards: list[KioskCardOut]
    recent: list[RecentOut] = Field(description="the last movements, newest first")


@router.post("/start-card")
async def start_card(
    body: CardStartIn, signed: SignedDevice, pool: Pool, settings: AppSettings
) -> VisitOut:
    kiosk = await kiosk_of(pool, signed)
    async with pool.acquire() as conn:
        return VisitOut.model_validate(
            await kss.do_start_with_card(
                conn,
                settings,
                kiosk,
                card_number=body.card_number,
                card_uid=body.card_uid,
                pin=body.pin,
            )
        )


@router.post("/start-password")
async def start_password(
    body: PasswordStartIn, signed: SignedDevice, pool: Pool, settings: AppSettings
) -> VisitOut:
    kiosk = await kiosk_of(pool, signed)
    return VisitOut.model_validate(
        await kss.do_start_with_password(
            pool, settings, kiosk, number=body.number, password=body.password
        )
    )


@router.post("/overview", response_model_exclude_unset=True)
async def overview(
    body: VisitIn, signed: SignedDevice, pool: Pool, settings: AppSettings
) -> OverviewOut:
    """Balances (a purse not yet opened is left out), cards and the last movements."""
    kiosk = await kiosk_of(pool, signed)
    visit = kss.check_visit(settings, kiosk, body.visit)
    async with pool.acquire() as conn:
        return OverviewOut.model_validate(await kss.overview(conn, visit))


@router.post("/report-loss")
async def report_loss(
    body: LossIn, signed: SignedDevice, pool: Pool, settings: AppSettings
) -> CardOut:
    kiosk = await kiosk_of(pool, signed)
    visit = kss.check_visit(settings, kiosk, body.visit)
    async with pool.acquire() as conn:
        return CardOut.model_validate(await kss.do_report_loss(conn, kiosk, visit, body.card_id))


@router.post("/pin")
async def change_pin(
    body: PinIn, signed: SignedDevice, pool: Pool, settings: AppSettings
) -> PinSetOut:
    kiosk = await kiosk_of(pool, signed)
    visit = kss.check_visit(settings, kiosk, body.visit)
    async with pool.acquire() as conn:
        return PinSetOut.model_validate(
            await kss.do_change_pin(
                conn, settings, kiosk, visit, pin=body.pin, new_pin=body.new_pin
            )
        )


@router.post("/topup", status_code=201, response_model=ProviderOrderOut)
async def topup(
    body: TopupIn, signed: SignedDevice, pool: Pool, settings: AppSettings
) -> JSONResponse:
    kiosk = await kiosk_of(pool, signed)
    visit = kss.check_visit(settings, kiosk, body.visit)
    status, order = await kss.do_start_topup(
        pool, settings, visit, amount=body.amount, client_id=body.client_id
    )
    return JSONResponse(order, status_code=status)
