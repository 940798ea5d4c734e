"""The card fee, paid online through the payment provider (seed 004 step 3).

Registers the 'card_fee' order purpose with moneyflows/provider_orders.py: when the order is
paid, the money goes from provider_clearing to the school's fee_income, and the application
moves on (its pickup code is issued by the worker). A fee of zero, or a category the school
waives, never reaches here (domain/card_application.card_fee).
"""

from __future__ import annotations

from typing import Any

from campuscard.config import Settings
from campuscard.db import distribution
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx
from campuscard.issuing import applications
from campuscard.ledger import postings
from campuscard.ledger.money import fmt
from campuscard.moneyflows import provider_orders
from campuscard.platform import idempotency
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, Forbidden, NotFound


async def _fee_credit(conn: Conn, order: provider_orders.Order) -> list[postings.Leg]:
    income = await postings.system_account(conn, order["school_id"], "fee_income")
    return [postings.Leg(income, order["amount"])]


async def _fee_refund(conn: Conn, order: provider_orders.Order) -> list[postings.Leg]:
    income = await postings.system_account(conn, order["school_id"], "fee_income")
    return [postings.Leg(income, -order["amount"])]


async def _fee_paid(tx: Tx, order: provider_orders.Order, tx_id: int) -> None:
    await applications.do_mark_fee_paid(
        tx,
        None,
        int(order["meta"]["application_id"]),
        fee_ref=order["out_trade_no"],
        paid_fen=order["amount"],
    )


provider_orders.register_purpose(
    provider_orders.Purpose(
        name="card_fee",
        journal_kind="card_fee",
        credit_legs=_fee_credit,
        after_paid=_fee_paid,
        refund_legs=_fee_refund,
    )
)


async def _start_fee_order(
    tx: Tx,
    *,
    settings: Settings,
    actor: Actor,
    app_id: int,
) -> dict[str, Any]:
    app = await distribution.lock_row(tx, "card_applications", app_id)
    if app is None or app["applicant_user_id"] != actor.user_id:
        raise NotFound("application not found", field="application_id")
    if app["status"] != "awaiting_payment" or app["fee_status"] != "due":
        raise Conflict("this application does not wait for a fee", code="FEE_NOT_DUE")
    if await tx.fetchval(
        "SELECT 1 FROM provider_orders WHERE purpose = 'card_fee' AND status = 'pending' "
        "AND (meta->>'application_id')::bigint = $1",
        app_id,
    ):
        raise Conflict(
            "a payment for this fee is already open; finish or wait for it to expire",
            code="FEE_ORDER_OPEN",
        )
    order = await provider_orders.create_order(
        tx,
        settings,
        school_id=app["school_id"],
        purpose="card_fee",
        amount=app["fee"],
        person_id=app["person_id"],
        payer_user_id=actor.user_id,
        description=f"校园卡工本费 Campus card fee {fmt(app['fee'])}",
        meta={"application_id": app_id},
    )
    return {"order_id": order["id"]}


async def do_start_fee_payment(
    pool: PgPool, settings: Settings, actor: Actor, app_id: int, *, client_id: str
) -> tuple[int, dict[str, Any]]:
    """Open the provider order for an application's fee (once per client_id) and place it;
    returns (status, order view with the pay URL)."""
    idempotency.check_client_id(client_id)
    if actor.user_id is None:
        raise Forbidden("sign in first", field="actor")

    async with pool.acquire() as conn:
        outcome = await idempotency.run_idempotent(
            conn,
            school_id=await conn.fetchval(
                "SELECT coalesce((SELECT school_id FROM card_applications WHERE id = $1), 0)",
                app_id,
            ),
            scope=f"card_fee:{actor.user_id}",
            key=client_id,
            payload={"application_id": app_id},
            work=lambda tx: _start_fee_order(tx, settings=settings, actor=actor, app_id=app_id),
            success_status=201,
        )
    if outcome.status >= 400:
        return outcome.status, outcome.body
    order = await provider_orders.place_order(pool, settings, outcome.body["order_id"])
    return outcome.status, provider_orders.order_view(order)
