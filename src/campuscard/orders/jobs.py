"""Escrowed orders' clock: unpaid orders close, unshipped orders are refunded at their
deadline, shipped orders are released when the buyer's window has passed, and a dispute's hold
is placed again before it would expire. Each order is its own transaction, taken with SKIP
LOCKED so the job never waits on a buyer or a shop acting on the same order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.orders import books, rules
from campuscard.platform import i18n, notifications
from campuscard.platform.tasks import periodic

JOB = "system:orders"
BATCH = 200


@dataclass
class Tick:
    closed_unpaid: int = 0
    refunded_unshipped: int = 0
    released_by_time: int = 0
    renewed: int = 0
    hold_expired: int = 0


_CURRENT_HOLD = """SELECT 1 FROM holds h
     WHERE h.school_id = o.school_id AND h.state = 'pending'
       AND h.hold_key = 'order-' || o.school_id || '-' || o.id || '-' || o.hold_seq"""
_RENEW_SECONDS = int(rules.RENEW_BEFORE.total_seconds())
_DUE = {
    "unpaid": "state = 'wait_buyer_pay' AND pay_by < now()",
    "unshipped": "state = 'wait_seller_send' AND ship_by < now()",
    "unconfirmed": "state = 'wait_buyer_confirm' AND release_at < now()",
    "dispute_hold": f"""state = 'disputed' AND EXISTS ({_CURRENT_HOLD}
                          AND h.expires_at < now() + make_interval(secs => {_RENEW_SECONDS}))""",
    "lost_hold": f"""state IN ('wait_seller_send', 'wait_buyer_confirm', 'disputed')
                      AND NOT EXISTS ({_CURRENT_HOLD})""",
}


async def _lock_due(tx: Tx, school_id: int, order_id: int, which: str) -> dict[str, Any] | None:
    row = await tx.fetchrow(
        f"SELECT * FROM orders o WHERE school_id = $1 AND id = $2 AND {_DUE[which]} "
        "FOR UPDATE SKIP LOCKED",
        school_id,
        order_id,
    )
    return dict(row) if row is not None else None


async def _notify_refund(tx: Tx, order: dict[str, Any], amount: int, why: str) -> None:
    """``why``: ``not_shipped`` or ``hold_expired`` (notice.order_refund.<why>)."""
    await notifications.notify(
        tx,
        school_id=order["school_id"],
        person_id=order["person_id"],
        kind="order_refunded",
        title=i18n.message("notice.order_refund.title"),
        body=i18n.message(
            "notice.order_refund.body",
            order=order["title"],
            amount=i18n.money(amount),
            why=i18n.message(f"notice.order_refund.{why}"),
        ),
        data={"order_id": order["id"]},
        dedupe_key=f"order:{order['school_id']}:{order['id']}:auto-refund",
    )


async def run_order_deadlines(pool: PgPool, *, limit: int = BATCH) -> Tick:
    """One pass over every school's due orders; what each step did."""
    tick = Tick()
    for which in _DUE:
        due = await pool.fetch(
            f"SELECT school_id, id FROM orders o WHERE {_DUE[which]} ORDER BY id LIMIT $1", limit
        )
        for r in due:
            async with transaction(pool) as tx:
                order = await _lock_due(tx, r["school_id"], r["id"], which)
                if order is None:
                    continue
                await _step(tx, order, which, tick)
    return tick


async def _step(tx: Tx, order: dict[str, Any], which: str, tick: Tick) -> None:
    o = order
    now = datetime.now(UTC)
    if which == "unpaid":
        await books.set_state(tx, o, "closed", ended_at=now, close_reason="not_paid")
        await books.event(tx, o, "closed", JOB, detail={"reason": "not_paid"})
        tick.closed_unpaid += 1
    elif which == "unshipped":
        left = rules.remaining(o)
        await books.refund(tx, o, left, JOB, "not_shipped")
        await _notify_refund(tx, o, left, "not_shipped")
        tick.refunded_unshipped += 1
    elif which == "unconfirmed":
        await books.release(tx, o, rules.remaining(o), JOB, "time")
        tick.released_by_time += 1
    elif which == "dispute_hold":
        await books.renew_hold(tx, o, JOB)
        tick.renewed += 1
    elif which == "lost_hold":
        # the hold expired (the job was down past the timeout): the money went back already
        left = rules.remaining(o)
        row = await tx.fetchrow(
            """UPDATE orders SET refunded = refunded + $3 WHERE school_id = $1 AND id = $2
               RETURNING *""",
            o["school_id"],
            o["id"],
            left,
        )
        assert row is not None
        o.update(dict(row))
        await books.event(tx, o, "refunded", JOB, amount=left, detail={"why": "hold_expired"})
        await books.end_if_settled(tx, o, JOB, reason="hold_expired")
        await _notify_refund(tx, o, left, "hold_expired")
        tick.hold_expired += 1


@periodic("orders-deadlines", seconds=60)
async def order_deadlines(pool: PgPool, settings: Settings) -> Tick:
    return await run_order_deadlines(pool)
