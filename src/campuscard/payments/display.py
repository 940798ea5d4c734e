"""The customer-facing display at a till (seed 000: 支付信息展示): the amount the cashier typed is
shown to the student before paying, and the result after. The till (or the POS page) posts the
pending amount; displays and, once a code is scanned, the student's page receive it live."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger.money import Money
from campuscard.platform import notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound, ValidationFailed

MERCHANT_ROLES = ("merchant_staff", "merchant_manager")
MAX_PENDING_FEN = 10_000_000  # 100,000 yuan: no till asks more in one go


async def access_terminal(conn: Conn, actor: Actor, terminal_id: int) -> dict[str, Any]:
    """The till with its merchant and outlet names, if the actor works there (or runs the
    school); otherwise it does not exist for them."""
    row = await conn.fetchrow(
        """SELECT t.id, t.school_id, t.sn, t.merchant_id, t.outlet_id,
                  coalesce(m.name, '') AS merchant, coalesce(o.name, '') AS outlet
             FROM terminals t
             LEFT JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
             LEFT JOIN outlets o ON o.school_id = t.school_id AND o.id = t.outlet_id
            WHERE t.id = $1""",
        terminal_id,
    )
    if row is None:
        raise NotFound("no such terminal", field="terminal_id")
    works_there = any(
        g.role in MERCHANT_ROLES
        and g.merchant_id == row["merchant_id"]
        and g.school_id == row["school_id"]
        for g in actor.grants
    )
    if not (works_there or actor.has("school_admin", "settlement", school_id=row["school_id"])):
        raise NotFound("no such terminal", field="terminal_id")
    return dict(row)


def display_event(kind: str, terminal: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "school_id": terminal["school_id"],
        "terminal_id": terminal["id"],
        "merchant": terminal["merchant"],
        "outlet": terminal["outlet"],
        **extra,
    }


@owns_transaction
async def do_set_pending_amount(
    tx: Tx, terminal: dict[str, Any], amount: Money, *, by: str
) -> dict[str, Any]:
    """Show ``amount`` on the till's customer display (replacing what was there)."""
    if amount.fen <= 0:
        raise ValidationFailed("amount must be more than 0.00", field="amount")
    if amount.fen > MAX_PENDING_FEN:
        raise ValidationFailed("amount is larger than any till takes", field="amount")
    await tx.execute(
        """INSERT INTO pos_pending_amounts(terminal_id, school_id, amount, set_by)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (school_id, terminal_id) DO UPDATE
              SET amount = EXCLUDED.amount, set_by = EXCLUDED.set_by,
                  set_at = EXCLUDED.set_at""",
        terminal["id"],
        terminal["school_id"],
        amount.fen,
        by,
    )
    event = display_event("pos.pending", terminal, amount=str(amount))
    await notifications.publish_event(tx, event)
    return event


@owns_transaction
async def do_clear_pending_amount(tx: Tx, terminal: dict[str, Any]) -> dict[str, Any]:
    await tx.execute(
        "DELETE FROM pos_pending_amounts WHERE school_id = $1 AND terminal_id = $2",
        terminal["school_id"],
        terminal["id"],
    )
    event = display_event("pos.cleared", terminal)
    await notifications.publish_event(tx, event)
    return event


async def pending_amount(conn: Conn, terminal: dict[str, Any]) -> Money | None:
    fen = await conn.fetchval(
        "SELECT amount FROM pos_pending_amounts WHERE school_id = $1 AND terminal_id = $2",
        terminal["school_id"],
        terminal["id"],
    )
    return None if fen is None else Money(fen)


async def tills_for(conn: Conn, actor: Actor) -> list[dict[str, Any]]:
    """The tills of the merchants the actor works for (for choosing a display)."""
    grants = [g for g in actor.grants if g.role in MERCHANT_ROLES and g.merchant_id is not None]
    rows = await conn.fetch(
        """SELECT t.id, t.sn, coalesce(m.name, '') AS merchant, coalesce(o.name, '') AS outlet
             FROM terminals t JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
             LEFT JOIN outlets o ON o.school_id = t.school_id AND o.id = t.outlet_id
            WHERE t.school_id = ANY($2::int[]) AND t.merchant_id = ANY($1::bigint[])
              AND t.kind = 'pos'
            ORDER BY m.name, o.name, t.sn""",
        [g.merchant_id for g in grants],
        sorted({g.school_id for g in grants if g.school_id is not None}),
    )
    return [dict(r) for r in rows]
