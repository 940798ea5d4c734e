"""Builders for settlement tests: merchants, terminals and bookings shaped exactly as the
payment engine books them (journal kind 'payment' / 'refund' / 'payment_reversal', the
terminal's serial number as the actor, the purse debited and one merchant shard credited)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from campuscard.ledger import postings


@dataclass
class Merchant:
    id: int
    shards: int
    channel: str = "canteen"


async def make_merchant(
    conn: asyncpg.Connection[Any],
    school_id: int,
    name: str,
    *,
    channel: str = "canteen",
    commission_bp: int = 0,
    shards: int = 4,
) -> Merchant:
    mid = await conn.fetchval(
        """INSERT INTO merchants(school_id, name, channel, status, commission_bp, shards,
                                 approved_at)
           VALUES ($1, $2, $3, 'approved', $4, $5, now()) RETURNING id""",
        school_id,
        name,
        channel,
        commission_bp,
        shards,
    )
    return Merchant(mid, shards, channel)


async def make_terminal(
    conn: asyncpg.Connection[Any], school_id: int, merchant: Merchant, sn: str
) -> int:
    tid: int = await conn.fetchval(
        """INSERT INTO terminals(school_id, sn, kind, merchant_id) VALUES ($1, $2, 'pos', $3)
           RETURNING id""",
        school_id,
        sn,
        merchant.id,
    )
    return tid


async def merchant_shard(
    conn: asyncpg.Connection[Any], merchant: Merchant, terminal_id: int
) -> int:
    acc: int = await conn.fetchval(
        "SELECT id FROM accounts WHERE kind = 'merchant' AND merchant_id = $1 AND shard = $2",
        merchant.id,
        terminal_id % merchant.shards,
    )
    return acc


async def pay(
    conn: asyncpg.Connection[Any],
    school_id: int,
    merchant: Merchant,
    terminal_id: int,
    person_id: int,
    fen: int,
    *,
    kind: str = "payment",
) -> int:
    """A payment (person -> merchant) or, with kind 'refund'/'payment_reversal', its undoing."""
    purse = (await postings.open_purses(conn, school_id, person_id))["cash"]
    shard = await merchant_shard(conn, merchant, terminal_id)
    sn = await conn.fetchval("SELECT sn FROM terminals WHERE id = $1", terminal_id)
    legs = postings.legs_move(purse, shard, fen)
    if kind != "payment":
        legs = postings.legs_move(shard, purse, fen)
    async with conn.transaction():
        return await postings.post(
            conn,
            school_id=school_id,
            kind=kind,
            legs=legs,
            ref=f"test:{kind}",
            actor=sn,
            meta={"channel": merchant.channel},
        )


async def advance_day(conn: asyncpg.Connection[Any], school_id: int, days: int = 1) -> None:
    """Move the school's business date forward (the clock passing the cut-off)."""
    await conn.execute(
        "UPDATE schools SET day_cutoff = day_cutoff - make_interval(days => $2) WHERE id = $1",
        school_id,
        days,
    )
