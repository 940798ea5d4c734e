"""The buyer's side of an escrowed order: pay it (the money goes into a hold, not to the shop),
confirm the goods (all, or the part that arrived), open a dispute, see the order with its
one-time delivery code for the courier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx
from campuscard.ledger.money import Money
from campuscard.orders import books, checkout, queries, rules
from campuscard.platform import audit, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound
from campuscard.platform.idempotency import Outcome, check_client_id, run_idempotent


def _check_buyer(actor: Actor, order: dict[str, Any]) -> None:
    """Only the buyer acts on an order; anyone else is told it does not exist."""
    if actor.person_id is None or actor.person_id != order["person_id"]:
        raise NotFound("no such order", code="ORDER_UNKNOWN", field="order_id")


async def get_my_order(
    conn: Conn | PgPool, settings: Settings, actor: Actor, school_id: int, order_id: int
) -> dict[str, Any]:
    """The order as its buyer sees it, with the delivery code while goods are awaited."""
    row = await queries.order_row(conn, school_id, order_id)
    _check_buyer(actor, row)
    view = queries.view(row)
    if row["state"] in ("wait_seller_send", "wait_buyer_confirm") and row["code_used_at"] is None:
        view["delivery_code"] = rules.delivery_code(
            settings.master_key.get_secret_value(), school_id, order_id
        )
    view["history"] = await queries.history(conn, school_id, order_id)
    return view


async def list_my_orders(conn: Conn | PgPool, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    if actor.person_id is None:
        return []
    return await queries.orders_of_person(conn, school_id, actor.person_id)


async def pay_in_tx(
    tx: Tx,
    actor: Actor,
    school_id: int,
    order_id: int,
    *,
    via: str,
    by: str,
    pin_checked: bool = False,
) -> dict[str, Any]:
    """The payment's work in the caller's transaction: the checkout checks, then the whole
    order into a hold."""
    order = await books.lock_order(tx, school_id, order_id)
    _check_buyer(actor, order)  # on the phone the signed-in buyer, at a reader its card's holder
    books.check_state(order, "wait_buyer_pay", doing="pay")
    if order["pay_by"] < datetime.now(UTC):
        raise books.expired_unpaid()
    await checkout.check_address(
        tx, school_id, order["person_id"], order["delivery_address"], pin_checked=pin_checked
    )
    await books.place_first_hold(tx, order, by)
    now = datetime.now(UTC)
    await books.set_state(
        tx, order, "wait_seller_send", paid_at=now, ship_by=now + order["ship_within"], paid_via=via
    )
    await books.event(tx, order, "paid", by, amount=order["amount"], detail={"via": via})
    await audit.record(
        tx,
        actor,
        "order.pay",
        school_id=school_id,
        target_type="order",
        target_id=order_id,
        after={"amount": str(Money(order["amount"])), "via": via},
    )
    return await queries.order_view(tx, school_id, order_id)


async def do_pay(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    order_id: int,
    *,
    client_id: str,
    pin: str | None = None,
    settings: Settings | None = None,
) -> Outcome:
    """Pay on the phone, once per client id: the money is held until a release condition.
    ``pin`` (with the settings that pepper it) is needed for an address not on file; a wrong
    PIN is counted in a transaction of its own before anything else."""
    check_client_id(client_id)
    pin_checked = False
    if pin is not None and actor.person_id is not None:
        if settings is None:
            raise ValueError("checking a PIN needs the settings")
        refusal = await checkout.do_check_pin(pool, settings, school_id, actor.person_id, pin)
        if refusal is not None:
            raise refusal
        pin_checked = True

    async def work(tx: Tx) -> dict[str, Any]:
        return await pay_in_tx(
            tx, actor, school_id, order_id, via="phone", by=actor.name, pin_checked=pin_checked
        )

    return await run_idempotent(
        pool,
        school_id=school_id,
        scope=f"order-pay:{school_id}:{actor.person_id}",
        key=client_id,
        payload={"order_id": order_id},
        work=work,
    )


async def confirm_in_tx(
    tx: Tx, actor: Actor, school_id: int, order_id: int, *, amount: int | None = None
) -> dict[str, Any]:
    """The confirmation's work in the caller's transaction."""
    order = await books.lock_order(tx, school_id, order_id)
    _check_buyer(actor, order)
    books.check_state(order, "wait_seller_send", "wait_buyer_confirm", doing="confirm")
    part = rules.check_part(amount, rules.remaining(order))
    await books.release(tx, order, part, actor.name, "buyer_confirmed")
    await audit.record(
        tx,
        actor,
        "order.confirm",
        school_id=school_id,
        target_type="order",
        target_id=order_id,
        after={"released": str(Money(part)), "state": order["state"]},
    )
    return await queries.order_view(tx, school_id, order_id)


async def do_confirm(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    order_id: int,
    *,
    client_id: str,
    amount: int | None = None,
) -> Outcome:
    """The goods arrived: release what is held (or the part given) to the merchant."""
    check_client_id(client_id)

    async def work(tx: Tx) -> dict[str, Any]:
        return await confirm_in_tx(tx, actor, school_id, order_id, amount=amount)

    return await run_idempotent(
        pool,
        school_id=school_id,
        scope=f"order-confirm:{school_id}:{actor.person_id}",
        key=client_id,
        payload={"order_id": order_id, "amount": amount},
        work=work,
    )


async def dispute_in_tx(
    tx: Tx, actor: Actor, school_id: int, order_id: int, *, reason: str
) -> dict[str, Any]:
    """The dispute's work in the caller's transaction."""
    why = rules.check_reason(reason)
    order = await books.lock_order(tx, school_id, order_id)
    _check_buyer(actor, order)
    books.check_state(order, "wait_seller_send", "wait_buyer_confirm", doing="dispute")
    before = order["state"]
    await books.renew_hold(tx, order, actor.name)
    await books.set_state(tx, order, "disputed", dispute_reason=why, dispute_state_before=before)
    await books.event(tx, order, "disputed", actor.name, detail={"reason": why})
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=order["person_id"],
        kind="order_disputed",
        title=i18n.message("notice.order_disputed.title"),
        body=i18n.message("notice.order_disputed.body", order=order["title"]),
        data={"order_id": order_id},
        dedupe_key=f"order:{school_id}:{order_id}:disputed",
    )
    await audit.record(
        tx,
        actor,
        "order.dispute",
        school_id=school_id,
        target_type="order",
        target_id=order_id,
        before={"state": before},
        after={"state": "disputed", "reason": why},
    )
    return await queries.order_view(tx, school_id, order_id)


async def do_dispute(
    pool: PgPool,
    actor: Actor,
    school_id: int,
    order_id: int,
    *,
    client_id: str,
    reason: str,
) -> Outcome:
    """Something is wrong: the timers stop and the settlement center decides (two people)."""
    check_client_id(client_id)
    why = rules.check_reason(reason)

    async def work(tx: Tx) -> dict[str, Any]:
        return await dispute_in_tx(tx, actor, school_id, order_id, reason=why)

    return await run_idempotent(
        pool,
        school_id=school_id,
        scope=f"order-dispute:{school_id}:{actor.person_id}",
        key=client_id,
        payload={"order_id": order_id, "reason": why},
        work=work,
    )
