"""Where money moves. Every money feature books through ``post`` (or ``post_many``, several
journal transactions in one round trip, set-based); nothing else writes postings.

The database applies each posting to its account (balance, version, balance_after), checks
floors and refuses unbalanced transactions at commit; see db/migrations/0002_ledger.sql.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.ledger.money import fmt
from campuscard.platform.errors import InsufficientFunds, NotFound, ValidationFailed

SYSTEM_CODES = (
    "bank_clearing",
    "provider_clearing",
    "cash_desk",
    "subsidy_fund",
    "card_deposits",
    "fee_income",
    "commission_income",
    "merchant_payable",
    "suspense",
    "opening_balances",
    # settlement and reconciliation (db/migrations/0070_settlement.sql)
    "bank_account",
    "provider_account",
    "recon_writeoff",
    # offline sales the purses could not cover (db/migrations/0600_offline.sql)
    "offline_receivable",
    # payroll lines are paid from it (db/migrations/0660_payroll.sql)
    "payroll_clearing",
)
PURSES = ("cash", "subsidy")


@dataclass(frozen=True)
class Leg:
    account_id: int
    amount: int  # fen; positive credits the account (raises its balance), negative debits


def legs_move(source: int, target: int, fen: int) -> list[Leg]:
    """Two legs moving ``fen`` from ``source`` to ``target``."""
    return [Leg(source, -fen), Leg(target, fen)]


async def post(
    conn: Conn,
    *,
    school_id: int,
    kind: str,
    legs: Sequence[Leg],
    ref: str | None = None,
    memo: str = "",
    actor: str = "system",
    meta: dict[str, Any] | None = None,
) -> int:
    """Book one balanced journal transaction; returns its id. Caller owns the transaction."""
    if sum(leg.amount for leg in legs) != 0:
        raise ValidationFailed("legs do not balance", code="LEDGER_UNBALANCED")
    if any(type(leg.amount) is not int for leg in legs):
        raise TypeError("ledger amounts are int fen")
    try:
        tx_id: int = await conn.fetchval(
            "SELECT cc_post($1, $2, $3, $4, $5, $6::bigint[], $7::bigint[], $8)",
            school_id,
            kind,
            ref,
            memo,
            actor,
            [leg.account_id for leg in legs],
            [leg.amount for leg in legs],
            meta or {},
        )
    except asyncpg.CheckViolationError as err:
        if distribution.constraint_name(err) == "accounts_floor":
            raise InsufficientFunds(
                "the balance is not enough for this amount", field="amount"
            ) from err
        raise
    return tx_id


@dataclass(frozen=True)
class Booking:
    """One journal transaction for ``post_many``."""

    kind: str
    legs: Sequence[Leg]
    ref: str | None = None
    memo: str = ""
    actor: str = "system"
    meta: dict[str, Any] | None = None


async def post_many(conn: Conn, *, school_id: int, bookings: Sequence[Booking]) -> list[int]:
    """Book several balanced journal transactions in one round trip, each as ``post`` books it
    and in the order given, all or none; returns their ids in that order. Set-based
    (``cc_post_many``): each account is locked and moved once, however many of the bookings
    it takes part in (decision 0360). Caller owns the transaction."""
    for booking in bookings:
        if sum(leg.amount for leg in booking.legs) != 0:
            raise ValidationFailed("legs do not balance", code="LEDGER_UNBALANCED")
        if any(type(leg.amount) is not int for leg in booking.legs):
            raise TypeError("ledger amounts are int fen")
    if not bookings:
        return []
    try:
        tx_ids: list[int] = await conn.fetchval(
            "SELECT cc_post_many($1, $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
            " $7::int[], $8::bigint[], $9::bigint[])",
            school_id,
            [b.kind for b in bookings],
            [b.ref for b in bookings],
            [b.memo for b in bookings],
            [b.actor for b in bookings],
            [json.dumps(b.meta or {}) for b in bookings],
            [n for n, b in enumerate(bookings, start=1) for _ in b.legs],
            [leg.account_id for b in bookings for leg in b.legs],
            [leg.amount for b in bookings for leg in b.legs],
        )
    except asyncpg.CheckViolationError as err:
        if distribution.constraint_name(err) == "accounts_floor":
            raise InsufficientFunds(
                "the balance is not enough for this amount", field="amount"
            ) from err
        raise
    return list(tx_ids)


async def system_account(conn: Conn, school_id: int, code: str) -> int:
    if code not in SYSTEM_CODES:
        raise ValueError(f"unknown system account {code}")
    account_id: int | None = await conn.fetchval(
        "SELECT id FROM accounts WHERE school_id = $1 AND kind = 'system' AND system_code = $2",
        school_id,
        code,
    )
    if account_id is None:
        raise NotFound(f"school {school_id} has no {code} account")
    return account_id


async def open_purses(conn: Conn, school_id: int, person_id: int) -> dict[str, int]:
    """Create the cash and subsidy purses of a person (once); returns purse -> account id."""
    await conn.execute(
        """INSERT INTO accounts(school_id, kind, purse, person_id, floor)
           SELECT $1, 'purse', p, $2, 0 FROM unnest($3::text[]) AS p
           ON CONFLICT (school_id, person_id, purse) WHERE kind = 'purse' DO NOTHING""",
        school_id,
        person_id,
        list(PURSES),
    )
    rows = await conn.fetch(
        "SELECT purse, id FROM accounts WHERE person_id = $1 AND kind = 'purse'", person_id
    )
    return {r["purse"]: r["id"] for r in rows}


async def purse_balances(conn: Conn, person_id: int) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT purse, balance FROM accounts WHERE person_id = $1 AND kind = 'purse'", person_id
    )
    return {r["purse"]: r["balance"] for r in rows}


async def purse_held(conn: Conn, person_id: int) -> int:
    """What open holds set aside on the person's purses (available = balance - held)."""
    held: int | None = await conn.fetchval(
        "SELECT sum(held) FROM accounts WHERE person_id = $1 AND kind = 'purse'", person_id
    )
    return int(held or 0)


def balances_view(balances: dict[str, int], held: int = 0) -> dict[str, str]:
    """Each purse, the total, what open holds set aside and what is available to spend."""
    total = sum(balances.values())
    return {
        **{k: fmt(v) for k, v in sorted(balances.items())},
        "total": fmt(total),
        "held": fmt(held),
        "available": fmt(total - held),
    }


async def merchant_balance(conn: Conn, merchant_id: int) -> int:
    total: int | None = await conn.fetchval(
        "SELECT sum(balance) FROM accounts WHERE merchant_id = $1 AND kind = 'merchant'",
        merchant_id,
    )
    return int(total or 0)
