"""Orders at the online payment provider, for any purpose (top-up, card fee, ...).

Two-phase: an order is written 'pending' (committed) before the provider hears of it, so a
callback can never arrive for an order we do not know. It becomes 'paid' exactly once —
by the provider's signed notify or by our own query when the notify never came — and the
money is booked in the same transaction: provider_clearing pays the legs the purpose's
handler returns. Unpaid orders are closed at the provider and marked 'expired'; a refused
payment is 'failed'. A paid order may be refunded: booked at once, sent to the provider
by the outbox.

Purposes register a handler (see ``register_purpose``); 'topup' is in moneyflows/topups.py.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from campuscard.adapters.provider.client import (
    ProviderClient,
    ProviderError,
    ProviderUnavailable,
)
from campuscard.config import Settings
from campuscard.db import distribution
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.ledger import postings
from campuscard.ledger.money import fmt
from campuscard.platform import audit, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, DomainError, NotFound

log = logging.getLogger("campuscard.provider")

Order = dict[str, Any]
LegsFor = Callable[[Conn, Order], Awaitable[list[postings.Leg]]]
AfterPaid = Callable[[Tx, Order, int], Awaitable[None]]


@dataclass(frozen=True)
class Purpose:
    """What a paid order is for.

    ``credit_legs`` returns the legs receiving the money (summing to +amount); the provider
    clearing account pays them. ``after_paid`` runs in the same transaction afterwards
    (notify, mark an application paid, ...). ``refund_legs`` returns the legs giving the
    money back (summing to -amount); without it the purpose cannot be refunded.
    """

    name: str
    journal_kind: str
    credit_legs: LegsFor
    after_paid: AfterPaid | None = None
    refund_legs: LegsFor | None = None


PURPOSES: dict[str, Purpose] = {}


def register_purpose(purpose: Purpose) -> Purpose:
    PURPOSES[purpose.name] = purpose
    return purpose


def purpose_for(name: str) -> Purpose:
    try:
        return PURPOSES[name]
    except KeyError as err:
        raise NotFound(f"unknown order purpose {name!r}", field="purpose") from err


def notify_url(settings: Settings) -> str:
    return settings.public_url.rstrip("/") + "/api/v1/providers/notify"


async def create_order(
    conn: Conn,
    settings: Settings,
    *,
    school_id: int,
    purpose: str,
    amount: int,
    person_id: int | None,
    payer_user_id: int | None,
    description: str,
    meta: dict[str, Any] | None = None,
) -> Order:
    """Write a pending order (caller's transaction). Send it with ``place_order`` after commit."""
    purpose_for(purpose)
    row = await conn.fetchrow(
        """INSERT INTO provider_orders(school_id, out_trade_no, purpose, person_id, payer_user_id,
                                       amount, description, meta, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, cc_clock(), cc_clock() + $9) RETURNING *""",
        school_id,
        f"CC{school_id:04d}{secrets.token_hex(10).upper()}",
        purpose,
        person_id,
        payer_user_id,
        amount,
        description,
        meta or {},
        timedelta(minutes=settings.provider_order_minutes),
    )
    assert row is not None
    return dict(row)


async def place_order(pool: PgPool, settings: Settings, order_id: int) -> Order:
    """Make sure the provider has the order (idempotent by out_trade_no); outside any tx."""
    order = await get_order(pool, order_id)
    if order["status"] != "pending" or order["pay_url"]:
        return order
    client = ProviderClient.from_settings(settings)
    try:
        prepay_id, pay_url = await client.create_order(
            out_trade_no=order["out_trade_no"],
            total_fee=order["amount"],
            body=order["description"] or order["purpose"],
            notify_url=notify_url(settings),
        )
    except ProviderUnavailable as err:
        log.warning("placing order %s failed: %s", order["out_trade_no"], err)
        raise DomainError(
            "the payment provider is not reachable; try again with the same client_id",
            code="PROVIDER_UNAVAILABLE",
            status=409,  # the API never answers 5xx; the code says what to do
        ) from err
    except ProviderError as err:
        await mark_closed(pool, order_id, "failed", reason=err.code)
        raise DomainError(
            f"the payment provider refused the order ({err.code})",
            code="PROVIDER_REFUSED",
            status=409,
        ) from err
    await pool.execute(
        "UPDATE provider_orders SET prepay_id = $2, pay_url = $3 WHERE id = $1 AND pay_url IS NULL",
        order_id,
        prepay_id,
        pay_url,
    )
    return await get_order(pool, order_id)


async def get_order(pool: PgPool | Conn, order_id: int) -> Order:
    row = await pool.fetchrow("SELECT * FROM provider_orders WHERE id = $1", order_id)
    if row is None:
        raise NotFound("order not found", field="order_id")
    return dict(row)


def order_view(order: Order) -> dict[str, Any]:
    return {
        "id": order["id"],
        "out_trade_no": order["out_trade_no"],
        "purpose": order["purpose"],
        "person_id": order["person_id"],
        "amount": fmt(order["amount"]),
        "status": order["status"],
        "pay_url": order["pay_url"],
        "paid_via": order["paid_via"],
        "created_at": order["created_at"].isoformat(),
        "expires_at": order["expires_at"].isoformat(),
        "paid_at": order["paid_at"].isoformat() if order["paid_at"] else None,
    }


async def settle_paid(
    tx: Tx, order_id: int, *, transaction_id: str, total_fee: int, via: str
) -> bool:
    """Book a paid order exactly once (caller's transaction). False if it was already booked.

    A late payment of an order we marked expired or failed is still the payer's money: it
    is booked too (the provider took it)."""
    order = await tx.fetchrow(
        "SELECT * FROM provider_orders WHERE school_id = $1 AND id = $2 FOR UPDATE",
        await distribution.school_of(tx, "provider_orders", order_id),
        order_id,
    )
    assert order is not None
    if order["status"] in ("paid", "refunded"):
        return False
    if total_fee != order["amount"]:
        raise Conflict(
            f"provider amount {total_fee} differs from the order's {order['amount']}",
            code="WRONG_AMOUNT",
            field="total_fee",
        )
    o = dict(order)
    purpose = purpose_for(o["purpose"])
    clearing = await postings.system_account(tx, o["school_id"], "provider_clearing")
    legs = [postings.Leg(clearing, -o["amount"]), *await purpose.credit_legs(tx, o)]
    tx_id = await postings.post(
        tx,
        school_id=o["school_id"],
        kind=purpose.journal_kind,
        legs=legs,
        ref=f"provider_order:{o['id']}",
        memo=o["description"],
        actor="provider",
        meta={"out_trade_no": o["out_trade_no"], "transaction_id": transaction_id, "via": via},
    )
    await tx.execute(
        """UPDATE provider_orders SET status = 'paid', provider_txn_id = $2, tx_id = $3,
                  paid_via = $4, paid_at = cc_clock() WHERE id = $1""",
        o["id"],
        transaction_id,
        tx_id,
        via,
    )
    o |= {"status": "paid", "provider_txn_id": transaction_id, "tx_id": tx_id, "paid_via": via}
    if purpose.after_paid is not None:
        await purpose.after_paid(tx, o, tx_id)
    await notifications.publish_event(
        tx,
        {
            "type": "provider_order.paid",
            "school_id": o["school_id"],
            "order_id": o["id"],
            "person_id": o["person_id"],
            "purpose": o["purpose"],
        },
    )
    return True


async def mark_closed(pool: PgPool, order_id: int, status: str, *, reason: str = "") -> None:
    await pool.execute(
        """UPDATE provider_orders SET status = $2, closed_at = now(),
                  meta = meta || jsonb_build_object('close_reason', $3::text)
            WHERE id = $1 AND status = 'pending'""",
        order_id,
        status,
        reason,
    )


CALLBACK_OK = {"return_code": "SUCCESS", "return_msg": "OK"}


async def handle_notify(
    pool: PgPool, settings: Settings, params: object, *, remote: str | None
) -> tuple[int, dict[str, str]]:
    """The provider's asynchronous notify. Answers (status, body); every call is logged.

    Unsigned or badly signed calls, unknown orders and wrong amounts are refused and change
    nothing; a repeated notify of a booked order is acknowledged and changes nothing."""
    client = ProviderClient.from_settings(settings)
    if not isinstance(params, dict):
        await _log_callback(pool, None, None, "malformed", {"body": repr(params)[:500]}, remote)
        return 400, {"return_code": "FAIL", "return_msg": "body must be a JSON object"}
    out_trade_no = str(params.get("out_trade_no", ""))[:64] or None
    if not params.get("sign"):
        await _log_callback(pool, out_trade_no, None, "unsigned", params, remote)
        return 400, {"return_code": "FAIL", "return_msg": "unsigned"}
    if not client.verify_callback(params):
        await _log_callback(pool, out_trade_no, None, "bad_signature", params, remote)
        return 400, {"return_code": "FAIL", "return_msg": "SIGNERROR"}
    order = await pool.fetchrow(
        "SELECT id, amount FROM provider_orders WHERE out_trade_no = $1", out_trade_no
    )
    if order is None:
        await _log_callback(pool, out_trade_no, None, "unknown_order", params, remote)
        return 404, {"return_code": "FAIL", "return_msg": "ORDERNOTEXIST"}
    if params.get("result_code") != "SUCCESS":
        await _log_callback(pool, out_trade_no, order["id"], "not_paid", params, remote)
        return 200, CALLBACK_OK
    try:
        total_fee = int(str(params.get("total_fee", "")))
    except ValueError:
        total_fee = -1
    if total_fee != order["amount"]:
        await _log_callback(pool, out_trade_no, order["id"], "wrong_amount", params, remote)
        log.error("notify for %s with wrong amount %s", out_trade_no, params.get("total_fee"))
        return 400, {"return_code": "FAIL", "return_msg": "amount does not match the order"}
    async with transaction(pool) as tx:
        credited = await settle_paid(
            tx,
            order["id"],
            transaction_id=str(params.get("transaction_id", "")),
            total_fee=total_fee,
            via="notify",
        )
        await _log_callback(
            tx, out_trade_no, order["id"], "credited" if credited else "duplicate", params, remote
        )
    return 200, CALLBACK_OK


async def _log_callback(
    conn: PgPool | Conn,
    out_trade_no: str | None,
    order_id: int | None,
    outcome: str,
    params: dict[str, Any],
    remote: str | None,
) -> None:
    if outcome not in ("credited", "duplicate", "not_paid"):
        log.warning("provider callback refused (%s) for %s from %s", outcome, out_trade_no, remote)
    await conn.execute(
        """INSERT INTO provider_callbacks(out_trade_no, order_id, outcome, params, remote)
           VALUES ($1, $2, $3, $4, $5)""",
        out_trade_no,
        order_id,
        outcome,
        {str(k): str(v)[:200] for k, v in list(params.items())[:40]},
        remote,
    )


async def resolve_order(pool: PgPool, settings: Settings, order_id: int) -> str:
    """Ask the provider about one pending order and settle it: paid, still waiting, expired
    (closed at the provider) or failed. Returns the order's status afterwards."""
    order = await get_order(pool, order_id)
    if order["status"] != "pending":
        return str(order["status"])
    client = ProviderClient.from_settings(settings)
    await pool.execute("UPDATE provider_orders SET last_query_at = now() WHERE id = $1", order_id)
    state = await client.query_order(order["out_trade_no"])
    if state.trade_state in ("SUCCESS", "REFUND"):
        async with transaction(pool) as tx:
            await settle_paid(
                tx,
                order_id,
                transaction_id=state.transaction_id,
                total_fee=state.total_fee,
                via="query",
            )
        return "paid"
    if state.trade_state == "PAYERROR":
        await mark_closed(pool, order_id, "failed", reason="PAYERROR")
        return "failed"
    if state.trade_state == "CLOSED":
        await mark_closed(pool, order_id, "expired", reason="CLOSED")
        return "expired"
    expired = await pool.fetchval(
        "SELECT expires_at <= now() FROM provider_orders WHERE id = $1", order_id
    )
    if state.trade_state == "NOTEXIST":
        if expired or order["pay_url"] is None:
            # the provider never had it (placing failed): nobody could have paid
            await mark_closed(pool, order_id, "failed", reason="NOTEXIST")
            return "failed"
        return "pending"
    if expired:
        closed = await client.close_order(order["out_trade_no"])
        if closed == "ORDERPAID":  # paid at the last moment: query again and book it
            return await resolve_order(pool, settings, order_id)
        await mark_closed(pool, order_id, "expired", reason=closed)
        return "expired"
    return "pending"


async def resolve_overdue_orders(pool: PgPool, settings: Settings, *, limit: int = 100) -> int:
    """The periodic query: orders whose callback has not come in time. Returns how many
    changed state."""
    rows = await pool.fetch(
        """SELECT id FROM provider_orders
            WHERE status = 'pending'
              AND (created_at <= now() - $1::interval OR expires_at <= now())
              AND (last_query_at IS NULL OR last_query_at <= now() - $3::interval)
            ORDER BY id LIMIT $2""",
        timedelta(seconds=settings.provider_query_after_seconds),
        limit,
        timedelta(seconds=settings.provider_query_after_seconds / 2),
    )
    changed = 0
    for row in rows:
        try:
            if await resolve_order(pool, settings, row["id"]) != "pending":
                changed += 1
        except (ProviderUnavailable, ProviderError) as err:
            log.warning("querying order %s failed: %s", row["id"], err)
    return changed


async def do_refund(pool: PgPool, actor: Actor, order_id: int, *, reason: str) -> dict[str, Any]:
    """Give a paid order back: book the reversal now, send the refund through the outbox."""
    async with transaction(pool) as tx:
        order = await tx.fetchrow(
            "SELECT * FROM provider_orders WHERE school_id = $1 AND id = $2 FOR UPDATE",
            await distribution.school_of(tx, "provider_orders", order_id),
            order_id,
        )
        if order is None:
            raise NotFound("order not found", field="order_id")
        actor.require("settlement", school_id=order["school_id"])
        if order["status"] != "paid":
            raise Conflict(
                f"only a paid order can be refunded (this one is {order['status']})",
                code="ORDER_NOT_REFUNDABLE",
                field="order_id",
            )
        o = dict(order)
        purpose = purpose_for(o["purpose"])
        if purpose.refund_legs is None:
            raise Conflict(f"{o['purpose']} orders cannot be refunded", field="order_id")
        clearing = await postings.system_account(tx, o["school_id"], "provider_clearing")
        legs = [*await purpose.refund_legs(tx, o), postings.Leg(clearing, o["amount"])]
        tx_id = await postings.post(
            tx,
            school_id=o["school_id"],
            kind=f"{purpose.journal_kind}_refund",
            legs=legs,
            ref=f"provider_order:{o['id']}:refund",
            memo=reason,
            actor=actor.name,
        )
        await tx.execute(
            "UPDATE provider_orders SET status = 'refunded', refund_tx_id = $2 WHERE id = $1",
            order_id,
            tx_id,
        )
        await notifications.enqueue(
            tx,
            "provider.refund",
            {
                "out_trade_no": o["out_trade_no"],
                "out_refund_no": f"{o['out_trade_no']}R1",
                "refund_fee": o["amount"],
            },
            school_id=o["school_id"],
            dedupe_key=f"provider_refund:{o['id']}",
        )
        await audit.record(
            tx,
            actor,
            "provider_order.refund",
            school_id=o["school_id"],
            target_type="provider_order",
            target_id=order_id,
            before={"status": "paid"},
            after={"status": "refunded", "amount": fmt(o["amount"]), "reason": reason},
        )
        o["status"] = "refunded"
        return order_view(o)


async def send_refund(settings: Settings, payload: dict[str, Any]) -> None:
    """Outbox delivery of a booked refund (idempotent at the provider by out_refund_no)."""
    client = ProviderClient.from_settings(settings)
    await client.refund(
        out_trade_no=payload["out_trade_no"],
        out_refund_no=payload["out_refund_no"],
        refund_fee=int(payload["refund_fee"]),
    )
