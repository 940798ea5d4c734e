"""Metered devices (shower, water, laundry, computer lab, bus): signed like every device route,
see docs/terminal-protocol.md "Metered devices"."""

from __future__ import annotations

import json
from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.deps import Body
from campuscard.api.terminal_auth import SignedDevice
from campuscard.db.tx import transaction
from campuscard.edge.deps import Pool
from campuscard.metering import queries, sessions
from campuscard.payments import terminals
from campuscard.platform.errors import NotFound

router = APIRouter(prefix="/api/v1/terminal/meter", tags=["terminal"])

SESSION_ID = r"^[A-Za-z0-9_.:-]{8,40}$"


class StartIn(Body):
    session_id: str = Field(pattern=SESSION_ID, description="the device's id for this session")
    card_number: str = Field(pattern=r"^[0-9]{6,20}$")
    card_uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")


class EndIn(Body):
    session_id: str = Field(pattern=SESSION_ID)
    units: int = Field(ge=0, le=10_000_000, description="seconds, pulses, cycles, minutes or trips")


# --- answers ------------------------------------------------------------------------------


class TierOut(BaseModel):
    upto: int | None = Field(description="units of the day where this tier ends (none: no end)")
    rate: int = Field(description="thousandths of a fen per unit")


class TariffOut(BaseModel):
    kind: str = Field(description='"shower", "water", "laundry", "computer_lab" or "bus"')
    unit: str = Field(description='"second", "pulse", "cycle", "minute" or "trip"')
    ladders: dict[str, list[TierOut]] = Field(
        description='card kind ("student", "staff", "temporary") to its daily price ladder'
    )
    session_cap: int = Field(description="fen: the most one session may take")
    daily_amount_cap: int = Field(description="fen per person and day")
    daily_count_cap: int = Field(description="sessions per person and day")
    min_gap_seconds: int = Field(description="between one session's end and the next start")
    max_session_units: int = Field(description="the device stops a session here")


class SessionOut(BaseModel):
    session_id: str
    kind: str
    unit: str
    state: str = Field(description='"open" while running, then "ended" (or "expired")')
    authorised: str = Field(description="yuan held for the session")
    max_units: int = Field(description="what the authorised amount buys; the device stops there")
    units: int | None = Field(description="units used (once ended)")
    charged: str | None = Field(description="yuan captured from the hold (once ended)")
    released: str | None = Field(description="yuan of the hold given back (once ended)")


def _answer(result: sessions.SessionAnswer) -> JSONResponse:
    body = asdict(result)
    replayed = body.pop("replayed")
    return JSONResponse(body, headers={"Idempotent-Replayed": "true" if replayed else "false"})


@router.get("/tariff")
async def tariff(device: SignedDevice, pool: Pool) -> TariffOut:
    """The device's kind and tariff, to show prices and stop a session at its units."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        meter = await queries.meter(tx, device.school_id, device.id)
    if meter is None:
        raise NotFound("this terminal is not a metered device", field="terminal")
    t = meter["tariff"]
    return TariffOut.model_validate(t if isinstance(t, dict) else json.loads(t))


@router.post("/start", response_model=SessionOut)
async def start(body: StartIn, device: SignedDevice, pool: Pool) -> JSONResponse:
    """A card asks to start: a hold for the authorised amount; the units it buys come back."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        result = await sessions.do_start_session.in_tx(
            tx,
            device.school_id,
            device.id,
            session_key=body.session_id,
            card_number=body.card_number,
            card_uid=body.card_uid,
        )
    return _answer(result)


@router.post("/end", response_model=SessionOut)
async def end(body: EndIn, device: SignedDevice, pool: Pool) -> JSONResponse:
    """The units used: their price is captured from the hold, the rest released."""
    async with transaction(pool) as tx:
        await terminals.record_nonce(tx, device)
        result = await sessions.do_end_session.in_tx(
            tx, device.school_id, device.id, session_key=body.session_id, units=body.units
        )
    return _answer(result)
