"""The merchant's side of an escrowed order, called by the shop's server through its signed
shop terminal (docs/terminal-protocol.md, "Online shops"): create an order for a cardholder,
ship it, hand over goods against the buyer's one-time code, refund what will not be delivered,
cancel an unpaid order.

Each use case runs in the caller's transaction (the route spends the request's nonce in the same
one) and is idempotent by what the shop names: an order by its ``order_no``, a refund by its
``refund_no``; shipping and a delivery already done answer as they did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from campuscard.config import Settings
from campuscard.db.tx import Tx, owns_transaction
from campuscard.orders import books, queries, rules
from campuscard.platform import i18n, notifications
from campuscard.platform.errors import Conflict, DomainError, NotFound, ValidationFailed
from campuscard.platform.idempotency import request_hash


@dataclass(frozen=True)
class Shop:
    """A merchant's online shop: the signed terminal it speaks through."""

    school_id: int
    terminal_id: int
    merchant_id: int
    sn: str

    @property
    def actor(self) -> str:
        return f"terminal:{self.sn}"


@dataclass(frozen=True)
class NewOrder:
    order_no: str
    buyer_number: str
    title: str
    items: list[dict[str, Any]]
    delivery_address: str = ""
    ship_within_hours: int = 48
    confirm_within_hours: int = 72
    pay_within_minutes: int | None = None


def shop_of(terminal: Any) -> Shop:
    """The shop behind a signed terminal; any other kind of terminal is refused."""
    if terminal.kind != "shop" or terminal.merchant_id is None:
        raise DomainError(
            "only a merchant's shop terminal may manage orders",
            code="NOT_A_SHOP",
            field="terminal",
            status=403,
        )
    return Shop(terminal.school_id, terminal.id, terminal.merchant_id, terminal.sn)


@owns_transaction
async def do_create_order(tx: Tx, shop: Shop, new: NewOrder) -> dict[str, Any]:
    """An order waiting for the buyer to pay; the same order_no sent again answers the same."""
    order_no = rules.check_order_no(new.order_no)
    items = rules.parse_items(new.items)
    title = new.title.strip() if isinstance(new.title, str) else ""
    if not 1 <= len(title) <= 64:
        raise ValidationFailed("title must be 1-64 characters", field="title")
    if len(new.delivery_address) > 200:
        raise ValidationFailed(
            "delivery_address is at most 200 characters", field="delivery_address"
        )
    timeout = await books.hold_timeout(tx, shop.school_id)
    ship_within = rules.check_window(
        new.ship_within_hours, "ship_within_hours", hold_timeout=timeout
    )
    confirm_within = rules.check_window(
        new.confirm_within_hours, "confirm_within_hours", hold_timeout=timeout
    )
    pay_within = rules.check_pay_within(new.pay_within_minutes)
    digest = request_hash(
        {
            "buyer": new.buyer_number,
            "title": title,
            "items": rules.items_to_row(items),
            "address": new.delivery_address,
            "ship": new.ship_within_hours,
            "confirm": new.confirm_within_hours,
            "pay": new.pay_within_minutes,
        }
    )
    existing = await tx.fetchrow(
        """SELECT id, request_hash FROM orders
            WHERE school_id = $1 AND merchant_id = $2 AND order_no = $3""",
        shop.school_id,
        shop.merchant_id,
        order_no,
    )
    if existing is not None:
        if existing["request_hash"] != digest:
            raise Conflict(
                f"order_no {order_no!r} was already used for another order",
                code="IDEMPOTENCY_KEY_REUSED",
                field="order_no",
            )
        return {**await queries.order_view(tx, shop.school_id, existing["id"]), "replayed": True}
    merchant = await tx.fetchrow(
        "SELECT status FROM merchants WHERE school_id = $1 AND id = $2",
        shop.school_id,
        shop.merchant_id,
    )
    if merchant is None or merchant["status"] != "approved":
        raise Conflict(
            "the merchant is not approved to sell", code="MERCHANT_NOT_APPROVED", field="merchant"
        )
    buyer = await tx.fetchrow(
        "SELECT id, account_status FROM persons WHERE school_id = $1 AND number = $2",
        shop.school_id,
        new.buyer_number,
    )
    if buyer is None:
        raise NotFound("no cardholder with this number in the school", field="buyer_number")
    if buyer["account_status"] != "active":
        raise Conflict(
            "the buyer's account is not active", code="ACCOUNT_NOT_ACTIVE", field="buyer_number"
        )
    row = await tx.fetchrow(
        """INSERT INTO orders(school_id, merchant_id, terminal_id, order_no, request_hash,
                              person_id, title, items, amount, delivery_address, pay_by,
                              ship_within, confirm_within)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + $11, $12, $13)
           RETURNING *""",
        shop.school_id,
        shop.merchant_id,
        shop.terminal_id,
        order_no,
        digest,
        buyer["id"],
        title,
        rules.items_to_row(items),
        sum(i.total for i in items),
        new.delivery_address.strip(),
        pay_within,
        ship_within,
        confirm_within,
    )
    assert row is not None
    order = dict(row)
    await books.event(tx, order, "created", shop.actor, amount=order["amount"])
    await notifications.notify(
        tx,
        school_id=shop.school_id,
        person_id=order["person_id"],
        kind="order_to_pay",
        title=i18n.message("notice.order_to_pay.title"),
        body=i18n.message(
            "notice.order_to_pay.body", order=title, amount=i18n.money(order["amount"])
        ),
        data={"order_id": order["id"]},
        dedupe_key=f"order:{shop.school_id}:{order['id']}:to_pay",
    )
    return await queries.order_view(tx, shop.school_id, order["id"])


@owns_transaction
async def do_ship(tx: Tx, shop: Shop, order_no: str, *, tracking: str = "") -> dict[str, Any]:
    """Goods on their way: the buyer's confirmation window starts, the hold is placed afresh."""
    if len(tracking) > 64:
        raise ValidationFailed("tracking is at most 64 characters", field="tracking")
    order = await books.lock_shop_order(tx, shop.school_id, shop.merchant_id, order_no)
    if order["state"] == "wait_buyer_confirm" and order["tracking"] == tracking:
        return {**await queries.order_view(tx, shop.school_id, order["id"]), "replayed": True}
    books.check_state(order, "wait_seller_send", doing="ship")
    await books.renew_hold(tx, order, shop.actor)
    await books.set_state(
        tx,
        order,
        "wait_buyer_confirm",
        shipped_at=datetime.now(UTC),
        release_at=datetime.now(UTC) + order["confirm_within"],
        tracking=tracking,
    )
    await books.event(tx, order, "shipped", shop.actor, detail={"tracking": tracking})
    await notifications.notify(
        tx,
        school_id=shop.school_id,
        person_id=order["person_id"],
        kind="order_shipped",
        title=i18n.message("notice.order_shipped.title"),
        body=i18n.message("notice.order_shipped.body", order=order["title"]),
        data={"order_id": order["id"]},
        dedupe_key=f"order:{shop.school_id}:{order['id']}:shipped",
    )
    return await queries.order_view(tx, shop.school_id, order["id"])


@dataclass(frozen=True)
class CodeAnswer:
    view: dict[str, Any] | None
    refusal: DomainError | None


@owns_transaction
async def do_deliver_with_code(
    tx: Tx, settings: Settings, shop: Shop, order_no: str, *, code: str
) -> CodeAnswer:
    """The courier hands over the goods against the buyer's code: all that is held is released.

    A wrong code is counted (and commits); after five the code no longer works and the buyer
    confirms on the phone instead. The refusal is returned, not raised, so the count stays."""
    order = await books.lock_shop_order(tx, shop.school_id, shop.merchant_id, order_no)
    master = settings.master_key.get_secret_value()
    if order["code_used_at"] is not None:
        if rules.code_matches(master, shop.school_id, order["id"], code):
            view = await queries.order_view(tx, shop.school_id, order["id"])
            return CodeAnswer({**view, "replayed": True}, None)
        return CodeAnswer(
            None, Conflict("the delivery code was already used", code="CODE_USED", field="code")
        )
    books.check_state(order, "wait_seller_send", "wait_buyer_confirm", doing="deliver")
    if order["code_failures"] >= rules.MAX_CODE_FAILURES:
        return CodeAnswer(
            None,
            DomainError(
                "too many wrong codes: the buyer confirms the delivery on the phone",
                code="CODE_LOCKED",
                field="code",
                status=423,
            ),
        )
    if not rules.code_matches(master, shop.school_id, order["id"], code):
        await tx.execute(
            "UPDATE orders SET code_failures = code_failures + 1 WHERE school_id = $1 AND id = $2",
            shop.school_id,
            order["id"],
        )
        await books.event(tx, order, "code_refused", shop.actor)
        left = rules.MAX_CODE_FAILURES - order["code_failures"] - 1
        return CodeAnswer(
            None,
            DomainError(
                f"the delivery code is wrong ({left} tries left)",
                code="CODE_WRONG",
                field="code",
                status=422,
                details={"tries_left": left},
            ),
        )
    await tx.execute(
        "UPDATE orders SET code_used_at = now() WHERE school_id = $1 AND id = $2",
        shop.school_id,
        order["id"],
    )
    if order["state"] == "wait_seller_send":
        await books.set_state(tx, order, "wait_buyer_confirm", shipped_at=datetime.now(UTC))
    await books.release(tx, order, rules.remaining(order), shop.actor, "code")
    return CodeAnswer(await queries.order_view(tx, shop.school_id, order["id"]), None)


@owns_transaction
async def do_refund(
    tx: Tx, shop: Shop, order_no: str, *, refund_no: str, amount: int | None, reason: str
) -> dict[str, Any]:
    """Give back part or all of what is held (out of stock, a line not delivered)."""
    rules.check_order_no(refund_no)
    why = rules.check_reason(reason)
    order = await books.lock_shop_order(tx, shop.school_id, shop.merchant_id, order_no)
    done = await tx.fetchrow(
        """SELECT amount, detail FROM order_events WHERE school_id = $1 AND order_id = $2
              AND kind = 'refunded' AND detail ->> 'refund_no' = $3""",
        shop.school_id,
        order["id"],
        refund_no,
    )
    if done is not None:
        if amount is not None and done["amount"] != amount:
            raise Conflict(
                f"refund_no {refund_no!r} was used for another amount",
                code="IDEMPOTENCY_KEY_REUSED",
                field="refund_no",
            )
        return {**await queries.order_view(tx, shop.school_id, order["id"]), "replayed": True}
    books.check_state(order, "wait_seller_send", "wait_buyer_confirm", doing="refund")
    part = rules.check_part(amount, rules.remaining(order))
    await books.refund(tx, order, part, shop.actor, "refunded", refund_no=refund_no, note=why)
    await notifications.notify(
        tx,
        school_id=shop.school_id,
        person_id=order["person_id"],
        kind="order_refunded",
        title=i18n.message("notice.order_refund.title"),
        # the shop's reason, as the shop wrote it
        body=i18n.message(
            "notice.order_refund.body", order=order["title"], amount=i18n.money(part), why=why
        ),
        data={"order_id": order["id"]},
        dedupe_key=f"order:{shop.school_id}:{order['id']}:refund:{refund_no}",
    )
    return await queries.order_view(tx, shop.school_id, order["id"])


@owns_transaction
async def do_cancel(tx: Tx, shop: Shop, order_no: str) -> dict[str, Any]:
    """An order not paid yet is withdrawn; nothing was held."""
    order = await books.lock_shop_order(tx, shop.school_id, shop.merchant_id, order_no)
    if order["state"] == "closed" and order["close_reason"] == "cancelled":
        return {**await queries.order_view(tx, shop.school_id, order["id"]), "replayed": True}
    books.check_state(order, "wait_buyer_pay", doing="cancel (refund a paid order instead)")
    await books.set_state(tx, order, "closed", ended_at=datetime.now(UTC), close_reason="cancelled")
    await books.event(tx, order, "closed", shop.actor, detail={"reason": "cancelled"})
    return await queries.order_view(tx, shop.school_id, order["id"])
