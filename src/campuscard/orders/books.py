"""The order's money, in the caller's transaction: its hold placed, released to the merchant or
given back to the buyer (in part or whole), placed again with a fresh timeout; the order row
locked and its history written.

An order has at most one pending hold, ``order-<school>-<id>-<seq>``. A part released or
refunded resolves that hold (capture releases the rest; void releases it all) and places the
remainder again under ``seq + 1`` on the same purse, in the same transaction: the buyer's
money never leaves the hold between the two, and each hold still resolves exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from campuscard.db.tx import Tx
from campuscard.ledger import holds
from campuscard.ledger.holds_rules import HoldRequest
from campuscard.orders import rules
from campuscard.platform import notifications
from campuscard.platform.errors import Conflict, NotFound


async def lock_order(tx: Tx, school_id: int, order_id: int) -> dict[str, Any]:
    row = await tx.fetchrow(
        "SELECT * FROM orders WHERE school_id = $1 AND id = $2 FOR UPDATE", school_id, order_id
    )
    if row is None:
        raise NotFound("no such order", code="ORDER_UNKNOWN", field="order_id")
    return dict(row)


async def lock_shop_order(
    tx: Tx, school_id: int, merchant_id: int, order_no: str
) -> dict[str, Any]:
    row = await tx.fetchrow(
        """SELECT * FROM orders WHERE school_id = $1 AND merchant_id = $2 AND order_no = $3
           FOR UPDATE""",
        school_id,
        merchant_id,
        order_no,
    )
    if row is None:
        raise NotFound("no such order of this shop", code="ORDER_UNKNOWN", field="order_no")
    return dict(row)


def check_state(order: dict[str, Any], *allowed: str, doing: str) -> None:
    if order["state"] not in allowed:
        raise Conflict(
            f"cannot {doing}: the order is {order['state']}",
            code="ORDER_STATE",
            field="order",
            details={"state": order["state"]},
        )


async def event(
    tx: Tx,
    order: dict[str, Any],
    kind: str,
    actor: str,
    *,
    amount: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One line of the order's history; the merchant's page hears it live after commit."""
    await tx.execute(
        """INSERT INTO order_events(school_id, order_id, kind, amount, actor, detail)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        order["school_id"],
        order["id"],
        kind,
        amount,
        actor,
        detail or {},
    )
    await notifications.publish_event(
        tx,
        {
            "type": "order",
            "school_id": order["school_id"],
            "merchant_id": order["merchant_id"],
            "order_id": order["id"],
            "order_no": order["order_no"],
            "event": kind,
        },
    )


async def hold_timeout(tx: Tx, school_id: int) -> timedelta:
    timeout: timedelta | None = await tx.fetchval("SELECT cc_hold_timeout($1, 'order')", school_id)
    assert timeout is not None  # 'order' has a default
    return timeout


async def payee_account(tx: Tx, order: dict[str, Any]) -> int:
    """The merchant shard the order's money reaches (spread by order id like terminals)."""
    payee: int | None = await tx.fetchval(
        """SELECT a.id FROM accounts a
             JOIN merchants m ON m.school_id = a.school_id AND m.id = a.merchant_id
            WHERE a.school_id = $1 AND a.merchant_id = $2 AND a.kind = 'merchant'
              AND a.shard = $3 % m.shards""",
        order["school_id"],
        order["merchant_id"],
        order["id"],
    )
    if payee is None:
        raise NotFound("the merchant has no account to be paid into", field="merchant_id")
    return payee


async def _place(
    tx: Tx, order: dict[str, Any], seq: int, amount: int, purse: str | None, actor: str
) -> dict[str, Any]:
    answer = await holds.place_hold(
        tx,
        order["school_id"],
        HoldRequest(
            hold_id=rules.hold_key(order["school_id"], order["id"], seq),
            person_id=order["person_id"],
            amount=amount,
            kind="order",
            owner_kind="order",
            owner_id=str(order["id"]),
            payee_account_id=await payee_account(tx, order),
            purse=purse,
            memo=order["title"],
        ),
        actor=actor,
    )
    answer.raise_refusal()
    await tx.execute(
        "UPDATE orders SET hold_seq = $3 WHERE school_id = $1 AND id = $2",
        order["school_id"],
        order["id"],
        seq,
    )
    order["hold_seq"] = seq
    return answer.body


async def place_first_hold(tx: Tx, order: dict[str, Any], actor: str) -> dict[str, Any]:
    """The payment: the whole order set aside on the buyer's purses (the school's order)."""
    return await _place(tx, order, 1, int(order["amount"]), None, actor)


async def current_hold(tx: Tx, order: dict[str, Any]) -> dict[str, Any]:
    row = await tx.fetchrow(
        """SELECT h.*, a.purse FROM holds h
             JOIN accounts a ON a.school_id = h.school_id AND a.id = h.account_id
            WHERE h.school_id = $1 AND h.hold_key = $2""",
        order["school_id"],
        rules.hold_key(order["school_id"], order["id"], order["hold_seq"]),
    )
    if row is None:
        raise NotFound("the order has no hold", field="order_id")
    return dict(row)


async def _resolve(
    tx: Tx, order: dict[str, Any], *, release: int, refund: int, actor: str
) -> dict[str, Any]:
    """Release ``release`` to the merchant and give ``refund`` back; hold the rest again."""
    hold = await current_hold(tx, order)
    if hold["state"] != "pending":
        raise Conflict(
            "the order's hold is no longer pending (it expired); nothing was moved",
            code="HOLD_NOT_PENDING",
            field="order_id",
        )
    left = rules.remaining(order)
    key = hold["hold_key"]
    school_id = order["school_id"]
    if release > 0:
        (await holds.capture_hold(tx, school_id, key, release, actor=actor)).raise_refusal()
    else:
        (await holds.void_hold(tx, school_id, key, actor=actor)).raise_refusal()
    rest = left - release - refund
    if rest > 0:
        await _place(tx, order, order["hold_seq"] + 1, rest, hold["purse"], actor)
    row = await tx.fetchrow(
        """UPDATE orders SET released = released + $3, refunded = refunded + $4
            WHERE school_id = $1 AND id = $2 RETURNING *""",
        school_id,
        order["id"],
        release,
        refund,
    )
    assert row is not None
    order.update(dict(row))
    return order


async def release(
    tx: Tx, order: dict[str, Any], amount: int, actor: str, why: str, **detail: Any
) -> None:
    """Pay ``amount`` of what is held to the merchant; the order ends once nothing is held."""
    await _resolve(tx, order, release=amount, refund=0, actor=actor)
    await event(tx, order, "released", actor, amount=amount, detail={"why": why, **detail})
    await end_if_settled(tx, order, actor)


async def refund(
    tx: Tx, order: dict[str, Any], amount: int, actor: str, why: str, **detail: Any
) -> None:
    """Give ``amount`` of what is held back to the buyer's purse (a void: nothing is booked)."""
    await _resolve(tx, order, release=0, refund=amount, actor=actor)
    await event(tx, order, "refunded", actor, amount=amount, detail={"why": why, **detail})
    await end_if_settled(tx, order, actor, reason=why)


async def renew_hold(tx: Tx, order: dict[str, Any], actor: str) -> None:
    """The same amount held again with a fresh timeout (shipping, a dispute that runs long)."""
    hold = await current_hold(tx, order)
    if hold["state"] != "pending":
        raise Conflict(
            "the order's hold is no longer pending (it expired)",
            code="HOLD_NOT_PENDING",
            field="order_id",
        )
    school_id = order["school_id"]
    (await holds.void_hold(tx, school_id, hold["hold_key"], actor=actor)).raise_refusal()
    body = await _place(tx, order, order["hold_seq"] + 1, int(hold["amount"]), hold["purse"], actor)
    await event(tx, order, "hold_renewed", actor, detail={"expires_at": body["expires_at"]})


async def set_state(tx: Tx, order: dict[str, Any], state: str, **columns: Any) -> None:
    sets = ["state = $3"] + [f"{name} = ${i}" for i, name in enumerate(columns, start=4)]
    row = await tx.fetchrow(
        f"UPDATE orders SET {', '.join(sets)} WHERE school_id = $1 AND id = $2 RETURNING *",
        order["school_id"],
        order["id"],
        state,
        *columns.values(),
    )
    assert row is not None
    order.update(dict(row))


_CLOSE_REASONS = {"not_shipped", "refunded", "dispute", "hold_expired", "cancelled", "not_paid"}


async def end_if_settled(
    tx: Tx, order: dict[str, Any], actor: str, *, reason: str = "refunded"
) -> None:
    state = rules.end_state(order)
    if state is None:
        return
    close_reason = (
        (reason if reason in _CLOSE_REASONS else "refunded") if state == "closed" else None
    )
    await set_state(tx, order, state, ended_at=_now(), close_reason=close_reason)
    await event(tx, order, state, actor, detail={"reason": close_reason} if close_reason else {})


def _now() -> datetime:
    return datetime.now(UTC)


def expired_unpaid() -> Conflict:
    return Conflict(
        "the time to pay this order has passed", code="ORDER_PAY_EXPIRED", field="order_id"
    )
