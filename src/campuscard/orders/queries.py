"""Reading orders: one order as the shop, the buyer or the settlement center sees it, the
buyer's orders, a merchant's orders, the disputes waiting for a decision, an order's history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.ledger.money import fmt
from campuscard.orders import rules
from campuscard.platform.errors import NotFound

_SELECT = """SELECT o.*, m.name AS merchant_name, p.name AS buyer_name, p.number AS buyer_number,
                    s.timezone
               FROM orders o JOIN merchants m ON m.school_id = o.school_id AND m.id = o.merchant_id
               JOIN persons p ON p.school_id = o.school_id AND p.id = o.person_id
               JOIN schools s ON s.id = o.school_id"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def view(row: Any) -> dict[str, Any]:
    o = dict(row)
    return {
        "id": o["id"],
        "order_no": o["order_no"],
        "merchant_id": o["merchant_id"],
        "merchant_name": o["merchant_name"],
        "person_id": o["person_id"],
        "buyer_name": o["buyer_name"],
        "buyer_number": o["buyer_number"],
        "title": o["title"],
        "items": [i.view() for i in rules.items_from_row(o["items"])],
        "amount": fmt(o["amount"]),
        "released": fmt(o["released"]),
        "refunded": fmt(o["refunded"]),
        "held": fmt(rules.remaining(o)) if o["state"] in rules.HELD_STATES else "0.00",
        "state": o["state"],
        "close_reason": o["close_reason"],
        "delivery_address": o["delivery_address"],
        "tracking": o["tracking"],
        "pay_by": _iso(o["pay_by"]),
        "ship_by": _iso(o["ship_by"]),
        "release_at": _iso(o["release_at"]),
        "dispute_reason": o["dispute_reason"],
        "approval_id": o["approval_id"],
        "created_at": _iso(o["created_at"]),
        "paid_at": _iso(o["paid_at"]),
        "shipped_at": _iso(o["shipped_at"]),
        "ended_at": _iso(o["ended_at"]),
        "timezone": o["timezone"],  # the school's, for pages and slips
    }


async def order_row(conn: Conn | PgPool, school_id: int, order_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        _SELECT + " WHERE o.school_id = $1 AND o.id = $2", school_id, order_id
    )
    if row is None:
        raise NotFound("no such order", code="ORDER_UNKNOWN", field="order_id")
    return dict(row)


async def order_view(conn: Conn | PgPool, school_id: int, order_id: int) -> dict[str, Any]:
    return view(await order_row(conn, school_id, order_id))


async def shop_order(
    conn: Conn | PgPool, school_id: int, merchant_id: int, order_no: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        _SELECT + " WHERE o.school_id = $1 AND o.merchant_id = $2 AND o.order_no = $3",
        school_id,
        merchant_id,
        order_no,
    )
    if row is None:
        raise NotFound("no such order of this shop", code="ORDER_UNKNOWN", field="order_no")
    return view(row)


async def orders_of_person(
    conn: Conn | PgPool, school_id: int, person_id: int, *, limit: int = 50
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        _SELECT + " WHERE o.school_id = $1 AND o.person_id = $2 ORDER BY o.id DESC LIMIT $3",
        school_id,
        person_id,
        limit,
    )
    return [view(r) for r in rows]


async def orders_of_merchant(
    conn: Conn | PgPool,
    school_id: int,
    merchant_id: int,
    *,
    state: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        _SELECT
        + """ WHERE o.school_id = $1 AND o.merchant_id = $2
                        AND ($3::text IS NULL OR o.state = $3) ORDER BY o.id DESC LIMIT $4""",
        school_id,
        merchant_id,
        state,
        limit,
    )
    return [view(r) for r in rows]


async def disputes(
    conn: Conn | PgPool, school_id: int, *, limit: int = 100
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        _SELECT + " WHERE o.school_id = $1 AND o.state = 'disputed' ORDER BY o.id LIMIT $2",
        school_id,
        limit,
    )
    return [view(r) for r in rows]


async def history(conn: Conn | PgPool, school_id: int, order_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT kind, amount, actor, detail, at FROM order_events
            WHERE school_id = $1 AND order_id = $2 ORDER BY id""",
        school_id,
        order_id,
    )
    return [
        {
            "kind": r["kind"],
            "amount": fmt(r["amount"]) if r["amount"] is not None else None,
            "actor": r["actor"],
            "detail": r["detail"],
            "at": r["at"].isoformat(),
        }
        for r in rows
    ]
