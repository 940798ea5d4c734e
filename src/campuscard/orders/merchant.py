"""The merchant's staff and their shop's orders: which merchant a sign-in belongs to, its
orders, one order for the slip. Staff of another merchant are told the order does not exist."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.orders import queries
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound

STAFF = ("merchant_staff", "merchant_manager")


def merchant_of(actor: Actor) -> tuple[int, int]:
    """(school id, merchant id) of the signed-in merchant staff (the first, if several)."""
    grant = min(
        (g for g in actor.grants if g.role in STAFF and g.merchant_id and g.school_id),
        key=lambda g: g.merchant_id or 0,
        default=None,
    )
    if grant is None or grant.merchant_id is None or grant.school_id is None:
        raise NotFound("no merchant is linked to this sign-in", field="merchant")
    return grant.school_id, grant.merchant_id


def check_staff(actor: Actor, merchant_id: int) -> None:
    if merchant_id not in actor.merchant_ids() or not any(
        g.role in STAFF and g.merchant_id == merchant_id for g in actor.grants
    ):
        raise NotFound("no such merchant", field="merchant_id")


async def list_orders(
    conn: Conn | PgPool, actor: Actor, *, state: str | None = None
) -> tuple[int, list[dict[str, Any]]]:
    school_id, merchant_id = merchant_of(actor)
    return merchant_id, await queries.orders_of_merchant(conn, school_id, merchant_id, state=state)


async def get_order(conn: Conn | PgPool, actor: Actor, order_id: int) -> dict[str, Any]:
    school_id, merchant_id = merchant_of(actor)
    view = await queries.order_view(conn, school_id, order_id)
    if view["merchant_id"] != merchant_id:
        raise NotFound("no such order", code="ORDER_UNKNOWN", field="order_id")
    view["history"] = await queries.history(conn, school_id, order_id)
    return view
