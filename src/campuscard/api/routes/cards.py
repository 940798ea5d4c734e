"""Card center and cardholder API: issue and card life, PIN, limits, payment rules, blacklist."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from campuscard.api.answers import BlacklistOut, PaymentRowOut
from campuscard.api.deps import Body, CurrentActor
from campuscard.cards import lifecycle
from campuscard.edge.deps import AppSettings, Pool, school_id_for
from campuscard.ledger.money import Money
from campuscard.payments import booking, pay_settings
from campuscard.people import queries as people_queries
from campuscard.platform.errors import NotFound

router = APIRouter(tags=["cards"])

CARD_NUMBER = r"^[0-9]{6,20}$"
CARD_UID = r"^[0-9A-Fa-f]{8,20}$"


class IssueIn(Body):
    person_id: int = Field(gt=0)
    number: str = Field(pattern=CARD_NUMBER, description="printed card number")
    uid: str = Field(pattern=CARD_UID, description="chip UID (hex)")
    kind: Literal["student", "staff", "temporary"] = "student"
    deposit: Money | None = Field(default=None, description='deposit in yuan, e.g. "20.00"')
    deposit_source: Literal["cash_desk", "bank_clearing", "provider_clearing", "purse"] = (
        "cash_desk"
    )
    expires_on: dt.date | None = None
    activate: bool = True


class ReasonIn(Body):
    reason: str = Field(default="", max_length=200)


class RequiredReasonIn(Body):
    reason: str = Field(min_length=1, max_length=200)


class UnblockIn(Body):
    verification: str = Field(
        min_length=1, max_length=200, description="how the holder was verified"
    )


class ReplaceIn(Body):
    number: str = Field(pattern=CARD_NUMBER)
    uid: str = Field(pattern=CARD_UID)
    fee_source: Literal["purse", "cash_desk"] = "purse"
    expires_on: dt.date | None = None
    reason: str = Field(default="", max_length=200)


class CancelIn(Body):
    route: Literal["cash_desk", "bank_clearing", "provider_clearing"]
    reason: str = Field(min_length=1, max_length=200)


class PinIn(Body):
    new_pin: str = Field(pattern=r"^[0-9]{6}$")
    password: str | None = Field(
        default=None, max_length=200, description="the holder's sign-in password (holder only)"
    )


class LimitsIn(Body):
    per_tx_limit: Money | None = None
    daily_limit: Money | None = None


class RulesIn(Body):
    per_tx_limit: Money | None = None
    daily_limit: Money | None = None
    pin_over_per_tx: Money | None = None
    pin_over_daily: Money | None = None
    pin_max_failures: int | None = Field(default=None, ge=1, le=10)
    reversal_minutes: int | None = Field(default=None, ge=1, le=1440)


def _fen(value: Money | None) -> int | None:
    return None if value is None else value.fen


# --- card center ------------------------------------------------------------------------


class CardOut(BaseModel):
    id: int
    school_id: int
    person_id: int | None
    number: str = Field(description="the printed card number")
    uid: str | None = Field(description="the chip's UID, once known")
    kind: str = Field(description='"student", "staff" or "temporary"')
    state: str = Field(description='"issued", "active", "lost", "frozen", "replaced", …')
    deposit: str = Field(description="yuan held as the card's deposit")
    expires_on: dt.date | None
    replaced_by: int | None
    created_at: dt.datetime
    state_changed_at: dt.datetime | None
    activated_at: dt.datetime | None
    closed_at: dt.datetime | None


class CardEventOut(BaseModel):
    action: str
    from_state: str | None
    to_state: str | None
    actor: str
    channel: str | None
    reason: str | None
    created_at: dt.datetime


class CardDetailOut(CardOut):
    events: list[CardEventOut] = Field(description="the card's life, oldest first")


class ReplacementOut(CardOut):
    replaces: int = Field(description="the card this one replaces")
    fee: str = Field(description="yuan charged for the replacement")


class CancelledCardOut(CardOut):
    payout: dict[str, Any] | None = Field(description="what was paid back, and how")


@router.post("/api/v1/admin/schools/{school}/cards", status_code=201)
async def issue_card(school: str, body: IssueIn, pool: Pool, actor: CurrentActor) -> CardOut:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        if not await people_queries.person_in_school(conn, body.person_id, school_id):
            raise NotFound("no such person in this school", field="person_id")
        return CardOut.model_validate(
            await lifecycle.issue_card(
                conn,
                actor,
                person_id=body.person_id,
                number=body.number,
                uid=body.uid,
                kind=body.kind,
                deposit_fen=_fen(body.deposit) or 0,
                expires_on=body.expires_on,
                deposit_source=body.deposit_source,
                activate=body.activate,
            )
        )


@router.get("/api/v1/admin/schools/{school}/cards")
async def list_cards(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    person_id: int | None = None,
    number: Annotated[str | None, Query(pattern=CARD_NUMBER)] = None,
    state: Literal["issued", "active", "lost", "frozen", "replaced", "cancelled", "expired"]
    | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CardOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return [
            CardOut.model_validate(c)
            for c in (
                await lifecycle.list_cards(
                    conn,
                    actor,
                    school_id,
                    person_id=person_id,
                    number=number,
                    state=state,
                    limit=limit,
                )
            )
        ]


@router.get("/api/v1/admin/cards/{card_id}")
async def get_card(card_id: int, pool: Pool, actor: CurrentActor) -> CardDetailOut:
    async with pool.acquire() as conn:
        return CardDetailOut.model_validate(await lifecycle.get_card(conn, actor, card_id))


@router.post("/api/v1/admin/cards/{card_id}/activate")
async def activate(card_id: int, pool: Pool, actor: CurrentActor) -> CardOut:
    async with pool.acquire() as conn:
        return CardOut.model_validate(await lifecycle.activate_card(conn, actor, card_id))


@router.post("/api/v1/admin/cards/{card_id}/report-loss")
async def report_loss(card_id: int, body: ReasonIn, pool: Pool, actor: CurrentActor) -> CardOut:
    async with pool.acquire() as conn:
        return CardOut.model_validate(
            await lifecycle.report_loss(conn, actor, card_id, channel="counter", reason=body.reason)
        )


@router.post("/api/v1/admin/cards/{card_id}/unblock")
async def unblock(card_id: int, body: UnblockIn, pool: Pool, actor: CurrentActor) -> CardOut:
    async with pool.acquire() as conn:
        return CardOut.model_validate(
            await lifecycle.unblock_card(conn, actor, card_id, verification=body.verification)
        )


@router.post("/api/v1/admin/cards/{card_id}/freeze")
async def freeze(card_id: int, body: RequiredReasonIn, pool: Pool, actor: CurrentActor) -> CardOut:
    async with pool.acquire() as conn:
        return CardOut.model_validate(
            await lifecycle.freeze_card(conn, actor, card_id, reason=body.reason)
        )


@router.post("/api/v1/admin/cards/{card_id}/unfreeze")
async def unfreeze(card_id: int, body: ReasonIn, pool: Pool, actor: CurrentActor) -> CardOut:
    async with pool.acquire() as conn:
        return CardOut.model_validate(
            await lifecycle.unfreeze_card(conn, actor, card_id, reason=body.reason)
        )


@router.post("/api/v1/admin/cards/{card_id}/replace", status_code=201)
async def replace(card_id: int, body: ReplaceIn, pool: Pool, actor: CurrentActor) -> ReplacementOut:
    async with pool.acquire() as conn:
        return ReplacementOut.model_validate(
            await lifecycle.replace_card(
                conn,
                actor,
                card_id,
                number=body.number,
                uid=body.uid,
                fee_source=body.fee_source,
                expires_on=body.expires_on,
                reason=body.reason,
            )
        )


@router.post("/api/v1/admin/cards/{card_id}/cancel")
async def cancel(card_id: int, body: CancelIn, pool: Pool, actor: CurrentActor) -> CancelledCardOut:
    async with pool.acquire() as conn:
        return CancelledCardOut.model_validate(
            await lifecycle.cancel_card(conn, actor, card_id, route=body.route, reason=body.reason)
        )


# --- blacklist, payment settings and rules ----------------------------------------------


class PaymentRulesOut(BaseModel):
    per_tx_limit: str = Field(description="yuan a payment may be at most")
    daily_limit: str = Field(description="yuan a business day's payments may be at most")
    pin_over_per_tx: str = Field(description="a payment above this many yuan needs the PIN")
    pin_over_daily: str = Field(description="... and so does one taking the day above this")
    pin_max_failures: int = Field(description="wrong PINs before the PIN is locked")
    purse_order: list[str] = Field(description="the purses a payment takes from, in order")
    reversal_minutes: int = Field(description="a terminal may reverse its payment this long")


class PaySettingsOut(BaseModel):
    person_id: int
    pin_set: bool
    pin_locked: bool = Field(description="too many wrong PINs; the holder sets a new one")
    pin_failures: int
    per_tx_limit: str = Field(description="yuan: the person's own limit, else the school's")
    daily_limit: str = Field(description="yuan: the person's own limit, else the school's")
    spent_today: str = Field(description="yuan paid this business day")
    school: PaymentRulesOut = Field(description="the school's rules")


class PinSetOut(BaseModel):
    person_id: int
    pin_set: bool


@router.get("/api/v1/admin/schools/{school}/blacklist", response_model_exclude_unset=True)
async def school_blacklist(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    since: Annotated[int | None, Query(ge=0)] = None,
) -> BlacklistOut:
    """The full list, or the changes since version ``since`` (``since`` only in a delta)."""
    school_id = await school_id_for(pool, actor, school)
    actor.require("card_center", "settlement", school_id=school_id)
    async with pool.acquire() as conn:
        return BlacklistOut.model_validate(await lifecycle.blacklist(conn, school_id, since=since))


@router.get("/api/v1/admin/persons/{person_id}/pay-settings")
async def person_pay_settings(person_id: int, pool: Pool, actor: CurrentActor) -> PaySettingsOut:
    async with pool.acquire() as conn:
        return PaySettingsOut.model_validate(
            await pay_settings.get_settings(conn, actor, person_id)
        )


@router.put("/api/v1/admin/persons/{person_id}/limits")
async def person_limits(
    person_id: int, body: LimitsIn, pool: Pool, actor: CurrentActor
) -> PaySettingsOut:
    async with pool.acquire() as conn:
        return PaySettingsOut.model_validate(
            await pay_settings.set_limits(
                conn,
                actor,
                person_id=person_id,
                per_tx_limit=_fen(body.per_tx_limit),
                daily_limit=_fen(body.daily_limit),
            )
        )


@router.put("/api/v1/admin/persons/{person_id}/pin")
async def reset_pin(
    person_id: int, body: PinIn, pool: Pool, actor: CurrentActor, settings: AppSettings
) -> PinSetOut:
    """Card center resets a holder's PIN at the counter (after checking their ID)."""
    async with pool.acquire() as conn:
        return PinSetOut.model_validate(
            await pay_settings.set_pin(
                conn, actor, settings, person_id=person_id, new_pin=body.new_pin
            )
        )


@router.get("/api/v1/admin/schools/{school}/payment-rules")
async def get_rules(school: str, pool: Pool, actor: CurrentActor) -> PaymentRulesOut:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return PaymentRulesOut.model_validate(
            pay_settings.rules_view(await pay_settings.school_rules(conn, school_id))
        )


@router.put("/api/v1/admin/schools/{school}/payment-rules")
async def put_rules(school: str, body: RulesIn, pool: Pool, actor: CurrentActor) -> PaymentRulesOut:
    school_id = await school_id_for(pool, actor, school)
    changes: dict[str, Any] = {}
    for key in body.model_fields_set:
        value = getattr(body, key)
        changes[key] = value.fen if isinstance(value, Money) else value
    async with pool.acquire() as conn:
        return PaymentRulesOut.model_validate(
            await pay_settings.set_school_rules(conn, actor, school_id, changes)
        )


# --- the cardholder ---------------------------------------------------------------------


def _holder(actor: Any) -> int:
    if actor.person_id is None:
        raise NotFound("you hold no card account", field="person_id")
    return int(actor.person_id)


@router.get("/api/v1/me/cards")
async def my_cards(pool: Pool, actor: CurrentActor) -> list[CardOut]:
    async with pool.acquire() as conn:
        return [
            CardOut.model_validate(c)
            for c in (await lifecycle.cards_of_person(conn, _holder(actor)))
        ]


@router.post("/api/v1/me/cards/{card_id}/report-loss")
async def my_card_lost(card_id: int, body: ReasonIn, pool: Pool, actor: CurrentActor) -> CardOut:
    _holder(actor)
    async with pool.acquire() as conn:
        return CardOut.model_validate(
            await lifecycle.report_loss(conn, actor, card_id, channel="online", reason=body.reason)
        )


@router.put("/api/v1/me/pin")
async def my_pin(body: PinIn, pool: Pool, actor: CurrentActor, settings: AppSettings) -> PinSetOut:
    async with pool.acquire() as conn:
        return PinSetOut.model_validate(
            await pay_settings.set_pin(
                conn,
                actor,
                settings,
                person_id=_holder(actor),
                new_pin=body.new_pin,
                password=body.password or "",
            )
        )


@router.get("/api/v1/me/pay-settings")
async def my_pay_settings(pool: Pool, actor: CurrentActor) -> PaySettingsOut:
    async with pool.acquire() as conn:
        return PaySettingsOut.model_validate(
            await pay_settings.get_settings(conn, actor, _holder(actor))
        )


@router.put("/api/v1/me/limits")
async def my_limits(body: LimitsIn, pool: Pool, actor: CurrentActor) -> PaySettingsOut:
    async with pool.acquire() as conn:
        return PaySettingsOut.model_validate(
            await pay_settings.set_limits(
                conn,
                actor,
                person_id=_holder(actor),
                per_tx_limit=_fen(body.per_tx_limit),
                daily_limit=_fen(body.daily_limit),
            )
        )


@router.get("/api/v1/me/payments")
async def my_payments(
    pool: Pool,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: int | None = None,
) -> list[PaymentRowOut]:
    person_id = _holder(actor)
    async with pool.acquire() as conn:
        school_id = await people_queries.person_school_id(conn, person_id)
        if school_id is None:  # the signed-in holder's person row is gone
            raise NotFound("person not found", field="person")
        rows = await booking.list_payments(
            conn, actor, school_id, person_id=person_id, limit=limit, before_id=before_id
        )
    return [PaymentRowOut.model_validate(r) for r in rows]
