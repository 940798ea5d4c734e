"""Payment codes for the cardholder's phone (bind, unbind, mint) and for the card center."""

from __future__ import annotations

import datetime as dt
import io
import time

import segno
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import AppSettings, Pool
from campuscard.payments import code128, codes

router = APIRouter(prefix="/api/v1", tags=["paycodes"])

NO_STORE = {"Cache-Control": "no-store"}


class BindIn(Body):
    label: str = Field(default="", max_length=64, description="a name for the phone")


class UnbindIn(Body):
    reason: str = Field(default="", max_length=200)


def qr_svg(code: str) -> str:
    out = io.BytesIO()
    segno.make(code, error="m", micro=False).save(out, kind="svg", scale=4, border=4, xmldecl=False)
    return out.getvalue().decode()


class ServerTimeOut(BaseModel):
    now: float = Field(description="the server's clock, Unix seconds")


class BoundDeviceOut(BaseModel):
    device_id: int
    token: str = Field(description="the phone's token, part of every code it computes")
    secret: str = Field(description="the phone's secret (hex), shown this once")
    scheme: str = Field(description='the first digit of every code it computes ("6")')
    step_seconds: int = Field(description="a code changes every this many seconds")
    label: str
    bound_at: str
    server_time: float = Field(description="the server's clock, Unix seconds")
    revoked_device_id: int | None = Field(description="the phone unbound by this one, if any")


class DeviceOut(BaseModel):
    id: int
    label: str
    status: str = Field(description='"active" or "revoked"')
    step_seconds: int
    bound_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    revoked_reason: str | None


class UnboundOut(BaseModel):
    device_id: int
    status: str = Field(description='"revoked"')
    reason: str


class MintedCodeOut(BaseModel):
    code: str = Field(description="the one-time code, 20 digits")
    expires_at: str
    qr_svg: str = Field(description="the code as a QR code (SVG)")
    code128_svg: str = Field(description="the code as a Code 128 barcode (SVG)")


@router.get("/paycode/time")
async def server_time() -> ServerTimeOut:
    """The server's clock, so the phone can correct its own before computing codes."""
    return ServerTimeOut(now=time.time())


@router.post("/me/paycode/devices", status_code=201)
async def bind_device(
    body: BindIn, response: Response, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> BoundDeviceOut:
    """Bind this phone; the previous phone's codes stop working. The secret is shown once."""
    async with pool.acquire() as conn:
        device = await codes.do_bind_device(conn, settings, actor, label=body.label)
    response.headers.update(NO_STORE)
    return BoundDeviceOut.model_validate(device.view())


@router.get("/me/paycode/devices")
async def my_devices(pool: Pool, actor: CurrentActor) -> list[DeviceOut]:
    person_id = codes.require_cardholder(actor)
    async with pool.acquire() as conn:
        rows = await codes.list_devices(conn, actor, person_id)
    return [DeviceOut.model_validate(r) for r in rows]


@router.post("/paycode/devices/{device_id}/unbind")
async def unbind_device(
    device_id: int, body: UnbindIn, pool: Pool, actor: CurrentActor
) -> UnboundOut:
    """Unbind a phone: its holder, or the card center of its school."""
    async with pool.acquire() as conn:
        return UnboundOut.model_validate(
            await codes.do_unbind_device(conn, actor, device_id, reason=body.reason)
        )


@router.get("/admin/persons/{person_id}/paycode/devices")
async def person_devices(person_id: int, pool: Pool, actor: CurrentActor) -> list[DeviceOut]:
    async with pool.acquire() as conn:
        rows = await codes.list_devices(conn, actor, person_id)
    return [DeviceOut.model_validate(r) for r in rows]


@router.post("/me/paycode/minted", status_code=201)
async def mint_code(
    response: Response, pool: Pool, settings: AppSettings, actor: CurrentActor
) -> MintedCodeOut:
    """A one-time code minted by the server (for phones that cannot compute one)."""
    async with pool.acquire() as conn:
        minted = await codes.do_mint_code(conn, settings, actor)
    response.headers.update(NO_STORE)
    return MintedCodeOut(
        code=minted.code,
        expires_at=minted.expires_at.isoformat(),
        qr_svg=qr_svg(minted.code),
        code128_svg=code128.svg(minted.code),
    )
