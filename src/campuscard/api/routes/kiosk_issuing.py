"""Kiosk API for self-service pickup (seed 004 steps 4-6). Every request is signed by the
kiosk (a terminal of kind 'kiosk', see docs/terminal-protocol.md); the school is the kiosk's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from campuscard.api.deps import Body
from campuscard.api.terminal_auth import SignedDevice
from campuscard.edge.deps import AppSettings, Pool
from campuscard.issuing import pickup
from campuscard.issuing import pickup_code as codes
from campuscard.payments import terminals
from campuscard.payments.terminals import SignedTerminal
from campuscard.platform.errors import Forbidden

router = APIRouter(prefix="/api/v1/kiosk", tags=["kiosk"])

CARD_NUMBER = r"^[0-9]{6,20}$"
CARD_UID = r"^[0-9A-Fa-f]{8,20}$"
CLIENT_ID = r"^[A-Za-z0-9_.:-]{8,64}$"


class AuthorizeIn(Body):
    code: str = Field(min_length=1, max_length=40, description="the pickup code as typed")
    session_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the kiosk's id for this person's visit (new for each person)",
    )
    pickup_id: int | None = Field(
        default=None, ge=1, description="the pickup the typed code is meant for, if known"
    )


class CompleteIn(Body):
    client_id: str = Field(pattern=CLIENT_ID, description="kiosk's id for this report")
    card_number: str = Field(pattern=CARD_NUMBER, description="number read from the new card")
    card_uid: str = Field(pattern=CARD_UID, description="the card chip's UID")


class FailureIn(Body):
    reason: str = Field(min_length=1, max_length=200)
    release: bool = Field(description="false: retry on this kiosk; true: free the code")


# --- answers ------------------------------------------------------------------------------


class ScryptOut(BaseModel):
    salt: str
    n: int
    r: int
    p: int
    length: int = Field(description="bytes of output")


class PickupKeyOut(BaseModel):
    algorithm: str = Field(description='"HMAC-SHA256(key, scrypt(code))"')
    key: str = Field(description="this kiosk's key (hex)")
    scrypt: ScryptOut = Field(description="the scrypt parameters")


class StudentOut(BaseModel):
    name: str
    number: str
    class_: str | None = Field(alias="class", description="the student's class")


class PickupItemOut(BaseModel):
    pickup_id: int
    version: int
    state: str = Field(description='"ready", "authorized", "issued", "expired" or "revoked"')
    live: bool = Field(description="the kiosk may accept this code now")
    kiosk_hash: str | None = Field(description="the code's hash for this kiosk, while ready")
    expires_at: str
    student: StudentOut


class PickupFeedOut(BaseModel):
    version: int = Field(description="ask with since= this next time")
    more: bool = Field(description="more changes wait: ask again at once")
    items: list[PickupItemOut]


class CardDataOut(BaseModel):
    name: str
    number: str
    class_: str | None = Field(alias="class")
    school: str


class AuthorizedOut(BaseModel):
    pickup_id: int
    state: str = Field(description='"authorized"')
    authorized_at: str
    dispense_failures: int
    card_data: CardDataOut = Field(description="what the kiosk writes onto the card")


class PickupIssuedOut(BaseModel):
    pickup_id: int
    state: str = Field(description='"issued"')
    card_id: int
    card_number: str


class PickupFailureOut(BaseModel):
    pickup_id: int
    state: str = Field(description='"ready" (released) or "authorized" (retry here)')
    dispense_failures: int


async def kiosk_of(pool: Pool, signed: SignedTerminal) -> pickup.Kiosk:
    if signed.terminal.kind != "kiosk":
        raise Forbidden("only a self-service kiosk may do this", code="NOT_A_KIOSK")
    await terminals.do_record_nonce(pool, signed)
    return pickup.Kiosk(terminal_id=signed.id, school_id=signed.school_id, sn=signed.terminal.sn)


@router.get("/pickup-key")
async def pickup_key(signed: SignedDevice, pool: Pool, settings: AppSettings) -> PickupKeyOut:
    """The key this kiosk checks typed codes with:
    kiosk_hash = HMAC-SHA256(key, scrypt(code, salt, N, r, p=1, 32 bytes))."""
    kiosk = await kiosk_of(pool, signed)
    master = settings.master_key.get_secret_value().encode()
    return PickupKeyOut(
        algorithm="HMAC-SHA256(key, scrypt(code))",
        key=codes.kiosk_key(master, kiosk.sn).hex(),
        scrypt=ScryptOut(
            salt=codes.KIOSK_SALT.decode(),
            n=codes.KIOSK_SCRYPT_N,
            r=codes.KIOSK_SCRYPT_R,
            p=1,
            length=32,
        ),
    )


@router.get("/pickups")
async def pickups(
    signed: SignedDevice,
    pool: Pool,
    since: Annotated[int, Query(ge=0, description="the last version the kiosk has")] = 0,
) -> PickupFeedOut:
    kiosk = await kiosk_of(pool, signed)
    async with pool.acquire() as conn:
        return PickupFeedOut.model_validate(await pickup.kiosk_feed(conn, kiosk, since=since))


@router.post("/pickups/authorize")
async def authorize(
    body: AuthorizeIn, signed: SignedDevice, pool: Pool, settings: AppSettings
) -> AuthorizedOut:
    kiosk = await kiosk_of(pool, signed)
    async with pool.acquire() as conn:
        return AuthorizedOut.model_validate(
            await pickup.do_authorize(
                conn,
                settings,
                kiosk,
                body.code,
                session_id=body.session_id,
                pickup_id=body.pickup_id,
            )
        )


@router.post("/pickups/{pickup_id}/complete", response_model=PickupIssuedOut)
async def complete(
    pickup_id: int, body: CompleteIn, signed: SignedDevice, pool: Pool
) -> JSONResponse:
    kiosk = await kiosk_of(pool, signed)
    async with pool.acquire() as conn:
        outcome = await pickup.do_complete(
            conn,
            kiosk,
            pickup_id,
            card_number=body.card_number,
            card_uid=body.card_uid.upper(),
            client_id=body.client_id,
        )
    return JSONResponse(
        outcome.body,
        status_code=outcome.status,
        headers={"Idempotent-Replayed": "true" if outcome.replayed else "false"},
    )


@router.post("/pickups/{pickup_id}/failure")
async def failure(
    pickup_id: int, body: FailureIn, signed: SignedDevice, pool: Pool
) -> PickupFailureOut:
    kiosk = await kiosk_of(pool, signed)
    async with pool.acquire() as conn:
        return PickupFailureOut.model_validate(
            await pickup.do_report_failure(
                conn, kiosk, pickup_id, reason=body.reason, release=body.release
            )
        )
