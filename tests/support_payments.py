"""Builders for cards, merchants, terminals and signed device requests (issue 3)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.payments import pay_settings, terminals
from campuscard.platform import signing
from tests.support import ROOT, make_student

DEVICE_ROOT = ROOT


@dataclass
class Device:
    id: int
    sn: str
    key: bytes
    key_version: int
    merchant_id: int | None
    school_id: int


async def make_merchant(
    conn: asyncpg.Connection[Any],
    school_id: int,
    name: str = "第一食堂",
    *,
    channel: str = "canteen",
    status: str = "approved",
    shards: int = 8,
) -> tuple[int, int]:
    """An approved merchant with one outlet; returns (merchant id, outlet id)."""
    merchant_id = await conn.fetchval(
        """INSERT INTO merchants(school_id, name, channel, status, shards, approved_at)
           VALUES ($1, $2, $3, $4, $5, now()) RETURNING id""",
        school_id,
        name,
        channel,
        status,
        shards,
    )
    outlet_id = await conn.fetchval(
        "INSERT INTO outlets(school_id, merchant_id, name) VALUES ($1, $2, '1号窗口') RETURNING id",
        school_id,
        merchant_id,
    )
    return merchant_id, outlet_id


async def make_device(
    conn: asyncpg.Connection[Any],
    settings: Settings,
    school_id: int,
    merchant_id: int | None,
    sn: str = "POS-0001",
    *,
    kind: str = "pos",
    outlet_id: int | None = None,
) -> Device:
    reg = await terminals.register_terminal(
        conn,
        ROOT,
        settings,
        school_id,
        sn=sn,
        kind=kind,
        merchant_id=merchant_id,
        outlet_id=outlet_id,
        location="test",
    )
    return Device(
        reg["id"], sn, bytes.fromhex(reg["key"]), reg["key_version"], merchant_id, school_id
    )


async def make_cardholder(
    conn: asyncpg.Connection[Any],
    school_id: int,
    number: str,
    *,
    cash: int = 0,
    subsidy: int = 0,
    card_number: str | None = None,
    uid: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """A student with an active card; returns (person id, card)."""
    person_id = await make_student(conn, school_id, number, cash=cash, subsidy=subsidy)
    card = await lifecycle.issue_card(
        conn,
        ROOT,
        person_id=person_id,
        number=card_number or f"88{person_id:08d}",
        uid=uid or f"{0x04A10000 + person_id:08X}",
        deposit_fen=0,
    )
    return person_id, card


async def set_pin(
    conn: asyncpg.Connection[Any], settings: Settings, person_id: int, pin: str = "135790"
) -> None:
    await pay_settings.set_pin(conn, ROOT, settings, person_id=person_id, new_pin=pin)


def signed_terminal(dev: Device, terminal_id: int | None = None) -> terminals.SignedTerminal:
    """``dev`` as the payment services see a request it signed (a fresh nonce each time)."""
    row = terminals.TerminalRow(
        id=terminal_id or dev.id,
        sn=dev.sn,
        school_id=dev.school_id,
        kind="pos",
        status="active",
        merchant_id=dev.merchant_id,
        outlet_id=None,
        key_version=dev.key_version,
        prev_key_version=None,
    )
    return terminals.SignedTerminal(
        terminal=row, key_version=dev.key_version, nonce=nonce(), timestamp=0, body=b""
    )


def nonce() -> str:
    return secrets.token_hex(12)


def sign_headers(
    dev: Device,
    method: str,
    path: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce_value: str | None = None,
    key: bytes | None = None,
    key_version: int | None = None,
) -> dict[str, str]:
    return signing.signed_headers(
        sn=dev.sn,
        key=key or dev.key,
        key_version=key_version or dev.key_version,
        method=method,
        path=path,
        body=body,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        nonce=nonce_value or nonce(),
    )


async def device_call(
    client: httpx.AsyncClient,
    dev: Device,
    method: str,
    path: str,
    payload: dict[str, Any] | None = None,
    **sign_options: Any,
) -> httpx.Response:
    extra = sign_options.pop("extra_headers", None)
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = sign_headers(dev, method, path, body, **sign_options)
    if payload is not None:
        headers["Content-Type"] = "application/json"
    if extra:
        headers.update(extra)
    return await client.request(method, path, content=body, headers=headers)


async def pay(
    client: httpx.AsyncClient,
    dev: Device,
    card: dict[str, Any],
    amount: str,
    client_id: str | None = None,
    pin: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {
        "client_id": client_id or f"tx-{secrets.token_hex(6)}",
        "card_number": card["number"],
        "card_uid": card["uid"],
        "amount": amount,
    }
    if pin is not None:
        body["pin"] = pin
    return await device_call(client, dev, "POST", "/api/v1/terminal/pay", body)
