"""Builders for offline records: a till's signed record as the protocol describes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from campuscard.ledger.money import fmt
from campuscard.offline import rules
from tests.support_payments import Device, device_call

UPLOAD = "/api/v1/terminal/offline/upload"


@dataclass
class CardArea:
    """The offline area of a card: counter (never reset) and the total since it was online."""

    counter: int = 0
    total: int = 0


def record(
    dev: Device,
    card: dict[str, Any],
    area: CardArea,
    seq: int,
    amount: int,
    *,
    made_at: int = 1_795_000_000,
    counter: int | None = None,
    total_before: int | None = None,
    total_after: int | None = None,
) -> dict[str, Any]:
    """A signed record body; advances ``area`` as the till writes the card."""
    counter = area.counter + 1 if counter is None else counter
    before = area.total if total_before is None else total_before
    after = before + amount if total_after is None else total_after
    r = rules.Record(
        seq=seq,
        card_number=card["number"],
        card_uid=card["uid"],
        amount=amount,
        made_at=made_at,
        card_counter=counter,
        total_before=before,
        total_after=after,
        key_version=dev.key_version,
        signature="",
    )
    area.counter, area.total = counter, after
    return {
        "seq": seq,
        "card_number": card["number"],
        "card_uid": card["uid"],
        "amount": fmt(amount),
        "made_at": made_at,
        "card_counter": counter,
        "total_before": fmt(before),
        "total_after": fmt(after),
        "key_version": dev.key_version,
        "signature": rules.sign_record(dev.key, dev.sn, r),
    }


async def upload(client: httpx.AsyncClient, dev: Device, records: list[dict[str, Any]]) -> Any:
    r = await device_call(client, dev, "POST", UPLOAD, {"records": records})
    assert r.status_code == 200, r.text
    return r.json()
