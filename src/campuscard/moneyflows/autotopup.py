"""Automatic top-up (seed 003): when the cash purse falls below the holder's threshold, load
it from the bound bank card up to the target — never above it, once per fall.

A setting is 'armed' while the balance is at or above the threshold. A scan (periodic, and
callable right after a payment) finds armed settings whose balance is below the threshold,
disarms them and starts one transfer of (target - balance) in the same transaction; a
unique index allows one automatic transfer in flight per person. When the bank approves,
the load is booked only if the balance still fits under the target (otherwise it is
reversed). The setting is armed again once the balance is back at or above the threshold,
so a failed top-up is notified and not retried in a loop.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, savepoint, transaction
from campuscard.ledger.money import Money, fmt
from campuscard.moneyflows import bank_link
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, ValidationFailed

log = logging.getLogger("campuscard.autotopup")


def setting_view(row: Any) -> dict[str, Any]:
    return {
        "person_id": row["person_id"],
        "threshold": fmt(row["threshold"]),
        "target": fmt(row["target"]),
        "enabled": row["enabled"],
        "armed": row["armed"],
        "last_fired_at": row["last_fired_at"].isoformat() if row["last_fired_at"] else None,
        "last_result": row["last_result"],
    }


async def do_set_auto_topup(
    pool: PgPool,
    actor: Actor,
    *,
    person_id: int,
    threshold: Money,
    target: Money,
    enabled: bool,
) -> dict[str, Any]:
    if target.fen <= threshold.fen:
        raise ValidationFailed("target must be above threshold", field="target")
    if (
        target.fen - threshold.fen > bank_link.MAX_LOAD_FEN
        or target.fen > 10 * bank_link.MAX_LOAD_FEN
    ):
        raise ValidationFailed(
            f"target is at most {fmt(bank_link.MAX_LOAD_FEN)} above threshold", field="target"
        )
    async with transaction(pool) as tx:
        person = await bank_link.check_holder(tx, actor, person_id)
        if enabled and await bank_link.bound_card(tx, person_id) is None:
            raise Conflict("bind a bank card first", code="NO_BANK_CARD", field="enabled")
        before = await tx.fetchrow(
            "SELECT * FROM auto_topups WHERE school_id = $1 AND person_id = $2",
            person["school_id"],
            person_id,
        )
        row = await tx.fetchrow(
            """INSERT INTO auto_topups(person_id, school_id, threshold, target, enabled)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (school_id, person_id) DO UPDATE
                 SET threshold = $3, target = $4, enabled = $5, armed = true,
                     updated_at = EXCLUDED.updated_at
               RETURNING *""",
            person_id,
            person["school_id"],
            threshold.fen,
            target.fen,
            enabled,
        )
        await audit.record(
            tx,
            actor,
            "auto_topup.set",
            school_id=person["school_id"],
            target_type="person",
            target_id=person_id,
            before=setting_view(before) if before else None,
            after=setting_view(row),
        )
        return setting_view(row)


async def get_auto_topup(pool: PgPool, actor: Actor, person_id: int) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        person = await bank_link.check_holder(conn, actor, person_id)
        row = await conn.fetchrow(
            "SELECT * FROM auto_topups WHERE school_id = $1 AND person_id = $2",
            person["school_id"],
            person_id,
        )
        return setting_view(row) if row else None


async def _fire(tx: Tx, row: Any) -> int | None:
    """Disarm and start one transfer for a person below threshold (caller's transaction)."""
    card = await bank_link.bound_card(tx, row["person_id"])
    if card is None:
        await tx.execute(
            "UPDATE auto_topups SET armed = false, last_result = 'no bank card', "
            "last_fired_at = now(), updated_at = now() WHERE school_id = $1 AND person_id = $2",
            row["school_id"],
            row["person_id"],
        )
        return None
    amount = row["target"] - row["balance"]
    try:
        async with savepoint(tx):
            t = await bank_link.create_transfer(
                tx,
                school_id=row["school_id"],
                person_id=row["person_id"],
                card=card,
                direction="load",
                origin="auto",
                amount=amount,
                requested_by=None,
                target=row["target"],
            )
    except asyncpg.UniqueViolationError:
        return None  # one already in flight
    await tx.execute(
        "UPDATE auto_topups SET armed = false, last_fired_at = now(), last_result = 'sent', "
        "updated_at = now() WHERE school_id = $1 AND person_id = $2",
        row["school_id"],
        row["person_id"],
    )
    transfer_id: int = t["id"]
    return transfer_id


async def run_auto_topups(
    pool: PgPool, settings: Settings, *, person_id: int | None = None, limit: int = 200
) -> list[int]:
    """Re-arm recovered settings, fire the ones below threshold; returns transfer ids sent."""
    await pool.execute(
        """UPDATE auto_topups t SET armed = true, updated_at = now()
             FROM accounts a
            WHERE a.school_id = t.school_id AND a.person_id = t.person_id
              AND a.kind = 'purse' AND a.purse = 'cash'
              AND NOT t.armed AND a.balance >= t.threshold
              AND ($1::bigint IS NULL OR t.person_id = $1)""",
        person_id,
    )
    if not bank_link.bank_open(settings):
        return []  # the bank is closed: the fall is noticed again once it opens
    fired: list[int] = []
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT t.person_id, t.school_id, t.threshold, t.target, a.balance
                 FROM auto_topups t
                 JOIN accounts a ON a.school_id = t.school_id AND a.person_id = t.person_id
                                AND a.kind = 'purse' AND a.purse = 'cash'
                 JOIN persons p ON p.school_id = t.school_id AND p.id = t.person_id
                WHERE t.enabled AND t.armed AND a.balance < t.threshold
                  AND p.account_status = 'active'
                  AND ($1::bigint IS NULL OR t.person_id = $1)
                ORDER BY t.person_id LIMIT $2""",
            person_id,
            limit,
        )
        for row in rows:
            async with transaction(conn) as tx:
                locked = await tx.fetchrow(
                    """SELECT t.person_id, t.school_id, t.threshold, t.target, a.balance
                         FROM auto_topups t JOIN accounts a ON a.school_id = t.school_id
                          AND a.person_id = t.person_id AND a.kind = 'purse' AND a.purse = 'cash'
                        WHERE t.school_id = $2 AND t.person_id = $1 AND t.enabled AND t.armed
                          AND a.balance < t.threshold
                        FOR UPDATE OF t SKIP LOCKED""",
                    row["person_id"],
                    row["school_id"],
                )
                if locked is None:
                    continue
                transfer_id = await _fire(tx, locked)
            if transfer_id is not None:
                fired.append(transfer_id)
    for transfer_id in fired:
        try:
            await bank_link.execute_transfer(pool, settings, transfer_id)
        except Exception:  # the transfer stays open; resolve_open_transfers settles it
            log.exception("automatic top-up transfer %s", transfer_id)
    return fired
