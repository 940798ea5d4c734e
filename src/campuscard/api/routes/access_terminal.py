"""Door controllers: the list version, the list (snapshot or delta), door events. Signed like
every device route; docs/terminal-protocol.md "Door controllers"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, field_validator, model_validator

from campuscard.access import events, lists
from campuscard.api.deps import Body
from campuscard.api.terminal_auth import SignedDevice
from campuscard.edge.deps import AppSettings, Pool
from campuscard.payments import terminals
from campuscard.platform.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/terminal/access", tags=["terminal"])

CARD = r"^[0-9]{6,20}$"


class VersionOut(BaseModel):
    version: int = Field(description="the list version this controller should hold")


class ListOut(BaseModel):
    mode: Literal["current", "delta", "snapshot"]
    version: int
    content_hash: str = Field(description="sha256 of the list once applied (docs)")
    base: int | None = Field(default=None, description="delta: the version it applies to")
    config: dict[str, Any] | None = Field(default=None, description="door, schedules, days")
    entries: list[list[Any]] | None = Field(
        default=None, description="snapshot: [group, schedule, from, until, [cards]]"
    )
    add: list[list[Any]] | None = None
    remove: list[list[Any]] | None = None


class EventIn(Body):
    seq: int = Field(ge=1, le=2**62, description="the controller's own number, never reused")
    at: str = Field(description="ISO 8601 with offset, when it happened")
    kind: Literal["granted", "denied", "forced", "held_open"]
    direction: Literal["in", "out"] | None = None
    card_number: str | None = Field(default=None, pattern=CARD)
    reason: (
        Literal["not_on_list", "not_yet_valid", "expired", "outside_schedule", "antipassback"]
        | None
    ) = None
    flag: Literal["antipassback"] | None = None
    list_version: int | None = Field(default=None, ge=0)

    @field_validator("at")
    @classmethod
    def _aware(cls, v: str) -> str:
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError as err:
            raise ValueError("at must be an ISO 8601 date-time") from err
        if parsed.tzinfo is None:
            raise ValueError("at needs a UTC offset")
        return v

    @model_validator(mode="after")
    def _complete(self) -> EventIn:
        if self.kind in ("granted", "denied") and (not self.card_number or not self.direction):
            raise ValueError("a granted or denied event names card_number and direction")
        if (self.kind == "denied") != (self.reason is not None):
            raise ValueError("a denied event, and only a denied one, carries its reason")
        return self


class EventsIn(Body):
    events: list[EventIn] = Field(min_length=1, max_length=events.MAX_BATCH)


class EventsOut(BaseModel):
    received: int
    stored: int = Field(description="new events")
    duplicates: int = Field(description="events already stored (sent before); acknowledged")


@router.get("/version", response_model=VersionOut)
async def version(device: SignedDevice, pool: Pool) -> VersionOut:
    """Cheap: poll this every few seconds; fetch the list when it differs from yours."""
    await terminals.do_record_nonce(pool, device)
    return VersionOut(version=await lists.current_version(pool, device.school_id))


@router.get(
    "/list",
    response_model=ListOut,
    responses={404: {"description": "this terminal controls no door"}},
)
async def download_list(
    device: SignedDevice,
    pool: Pool,
    settings: AppSettings,
    base: Annotated[int | None, Query(ge=0, description="the version you hold")] = None,
    hash: Annotated[
        str | None, Query(pattern=r"^[0-9a-f]{64}$", description="its content hash")
    ] = None,
) -> Response:
    """Your list: ``current`` if you hold it, a ``delta`` from ``base``, else a ``snapshot``.
    The X-CC-List-Signature header is HMAC-SHA256(your key, the body)."""
    await terminals.do_record_nonce(pool, device)
    answer = await lists.download(pool, settings, device, base=base, base_hash=hash)
    return Response(
        answer.body,
        media_type="application/json",
        headers={lists.LIST_SIGNATURE_HEADER: answer.signature},
    )


@router.post("/events", response_model=EventsOut)
async def upload_events(body: EventsIn, device: SignedDevice, pool: Pool) -> EventsOut:
    """Door events, stored once by (controller, seq): send again until acknowledged."""
    seqs = [e.seq for e in body.events]
    if len(set(seqs)) != len(seqs):
        raise ValidationFailed("two events of one batch share a seq", field="events")
    batch = [
        events.DoorEvent(
            seq=e.seq,
            at=datetime.fromisoformat(e.at),
            kind=e.kind,
            direction=e.direction,
            card_number=e.card_number,
            reason=e.reason or "",
            flag=e.flag or "",
            list_version=e.list_version,
        )
        for e in body.events
    ]
    result = await events.do_upload(pool, device, batch)
    return EventsOut(received=result.received, stored=result.stored, duplicates=result.duplicates)
