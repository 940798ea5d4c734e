"""Offline upload: a till sends what it sold while the network was down (signed like every
device route, and every record signed on its own); see docs/terminal-protocol.md "Offline"."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel, Field

from campuscard.api.deps import Body
from campuscard.api.terminal_auth import SignedDevice
from campuscard.edge.deps import AppSettings, Pool
from campuscard.ledger.money import Money
from campuscard.offline import ingest, rules
from campuscard.platform.errors import DomainError, Forbidden

router = APIRouter(prefix="/api/v1/terminal/offline", tags=["terminal"])


class OfflineRecordIn(Body):
    seq: int = Field(gt=0, le=10**15, description="the device's sequence number, from 1, +1 each")
    card_number: str = Field(pattern=r"^[0-9]{6,20}$")
    card_uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")
    amount: Money = Field(description='yuan as a string, e.g. "12.50"')
    made_at: int = Field(gt=1_500_000_000, lt=4_000_000_000, description="device unix seconds")
    card_counter: int = Field(gt=0, le=10**9, description="the card's offline counter written")
    total_before: str = Field(pattern=r"^(0|[1-9][0-9]{0,6})(\.[0-9]{1,2})?$")
    total_after: str = Field(pattern=r"^(0|[1-9][0-9]{0,6})(\.[0-9]{1,2})?$")
    key_version: int = Field(gt=0, le=10**6)
    signature: str = Field(pattern=r"^[0-9a-f]{64}$")


class UploadIn(Body):
    records: list[OfflineRecordIn] = Field(min_length=1, max_length=rules.MAX_BATCH)


class RefusalOut(BaseModel):
    seq: int
    code: str
    message: str


class UploadOut(BaseModel):
    upload_id: int
    received: int
    accepted: int = Field(description="stored now (settled or waiting)")
    duplicates: int = Field(description="stored before: nothing happened again")
    refused: list[RefusalOut]
    settled: int = Field(description="booked now, also earlier records that waited")
    waiting: int = Field(description="of this upload, waiting for a missing card counter")
    chain_breaks: int
    overdrafts: int
    contiguous_seq: int = Field(description="every sequence number up to this one has arrived")
    missing: list[list[int]] = Field(description="[first, last] ranges not seen: send them")


def _record(r: OfflineRecordIn, index: int) -> rules.Record:
    totals = []
    for name in ("total_before", "total_after"):
        try:
            totals.append(Money.parse(getattr(r, name), field=name, allow_zero=True).fen)
        except DomainError as err:
            raise DomainError(
                err.message, code=err.code, field=f"records[{index}].{name}", status=422
            ) from err
    return rules.Record(
        seq=r.seq,
        card_number=r.card_number,
        card_uid=r.card_uid.upper(),
        amount=r.amount.fen,
        made_at=r.made_at,
        card_counter=r.card_counter,
        total_before=totals[0],
        total_after=totals[1],
        key_version=r.key_version,
        signature=r.signature,
    )


@router.post(
    "/upload",
    response_model=UploadOut,
    responses={403: {"description": "TERMINAL_NOT_A_TILL: only a merchant's till uploads"}},
)
async def upload(
    body: UploadIn, device: SignedDevice, pool: Pool, settings: AppSettings
) -> UploadOut:
    """Store the records once by (device, sequence) and settle what each card's chain allows.
    A resent upload is safe: what was stored before counts as duplicates."""
    if device.terminal.kind != "pos" or device.terminal.merchant_id is None:
        raise Forbidden(
            "only a merchant's till uploads offline sales",
            code="TERMINAL_NOT_A_TILL",
            field="X-CC-Terminal",
        )
    records = [_record(r, i) for i, r in enumerate(body.records)]
    answer = await ingest.upload(pool, settings, device, records)
    data = asdict(answer)
    return UploadOut.model_validate(data)
