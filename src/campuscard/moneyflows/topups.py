"""Online top-up through the payment provider, by the holder or by a linked parent.

A 'topup' order credits the holder's cash purse when paid (provider_orders.py does the
two-phase part). The holder is notified, and so is the parent who paid.
"""

from __future__ import annotations

from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx
from campuscard.ledger import postings
from campuscard.ledger.money import Money, fmt
from campuscard.moneyflows import provider_orders
from campuscard.offline import overdraft
from campuscard.platform import i18n, idempotency, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed

MAX_TOPUP_FEN = 500_000  # 5,000.00 yuan per order


async def _topup_credit(conn: Conn, order: provider_orders.Order) -> list[postings.Leg]:
    purses = await postings.open_purses(conn, order["school_id"], order["person_id"])
    return [postings.Leg(purses["cash"], order["amount"])]


async def _topup_refund(conn: Conn, order: provider_orders.Order) -> list[postings.Leg]:
    purses = await postings.open_purses(conn, order["school_id"], order["person_id"])
    return [postings.Leg(purses["cash"], -order["amount"])]


async def _topup_paid(conn: Tx, order: provider_orders.Order, tx_id: int) -> None:
    # a top-up repays the holder's offline overdraft first
    await overdraft.repay_overdraft(conn, order["school_id"], order["person_id"])
    balance = await conn.fetchval(
        "SELECT balance FROM accounts WHERE person_id = $1 AND kind = 'purse' AND purse = 'cash'",
        order["person_id"],
    )
    await notifications.notify(
        conn,
        school_id=order["school_id"],
        person_id=order["person_id"],
        kind="topup_paid",
        title=i18n.message("notice.topup_paid.title"),
        body=i18n.message(
            "notice.topup_paid.body",
            amount=i18n.money(order["amount"]),
            balance=i18n.money(balance),
        ),
        data={"order_id": order["id"], "tx_id": tx_id},
        dedupe_key=f"topup_paid:{order['id']}",
    )
    payer = order["payer_user_id"]
    holder_user = await conn.fetchval(
        "SELECT id FROM users WHERE person_id = $1", order["person_id"]
    )
    if payer is not None and payer != holder_user:
        await notifications.notify(
            conn,
            school_id=order["school_id"],
            user_id=payer,
            kind="topup_paid",
            title=i18n.message("notice.topup_paid_payer.title"),
            body=i18n.message("notice.topup_paid_payer.body", amount=i18n.money(order["amount"])),
            data={"order_id": order["id"], "person_id": order["person_id"]},
            dedupe_key=f"topup_paid_payer:{order['id']}",
        )


provider_orders.register_purpose(
    provider_orders.Purpose(
        name="topup",
        journal_kind="topup_online",
        credit_legs=_topup_credit,
        after_paid=_topup_paid,
        refund_legs=_topup_refund,
    )
)


async def check_can_fund(conn: Conn, actor: Actor, person_id: int) -> dict[str, Any]:
    """The holder themself, a linked parent, or the settlement center may top up a purse."""
    person = await conn.fetchrow(
        "SELECT id, school_id, name, account_status FROM persons WHERE id = $1", person_id
    )
    if person is None:
        raise NotFound("person not found", field="person_id")
    allowed = actor.person_id == person_id or actor.has("settlement", school_id=person["school_id"])
    if not allowed and actor.user_id is not None:
        allowed = bool(
            await conn.fetchval(
                "SELECT true FROM guardian_links WHERE user_id = $1 AND person_id = $2",
                actor.user_id,
                person_id,
            )
        )
    if not allowed:
        # someone else's child is not even acknowledged to exist
        raise NotFound("person not found", field="person_id")
    if person["account_status"] in ("closed", "none"):
        raise Conflict(
            "this account cannot receive money", code="ACCOUNT_NOT_ACTIVE", field="person_id"
        )
    return dict(person)


async def _create_topup_order(
    tx: Tx,
    *,
    settings: Settings,
    actor: Actor,
    person_id: int,
    amount: Money,
) -> dict[str, Any]:
    person = await check_can_fund(tx, actor, person_id)
    order = await provider_orders.create_order(
        tx,
        settings,
        school_id=person["school_id"],
        purpose="topup",
        amount=amount.fen,
        person_id=person_id,
        payer_user_id=actor.user_id,
        description=f"校园卡充值 Campus card top-up {fmt(amount.fen)}",
    )
    return {"order_id": order["id"]}


async def do_create_topup(
    pool: PgPool,
    settings: Settings,
    actor: Actor,
    *,
    person_id: int,
    amount: Money,
    client_id: str,
) -> tuple[int, dict[str, Any], bool]:
    """Open a top-up order (once per client_id) and place it at the provider.
    Returns (status, order view with pay_url, replayed)."""
    idempotency.check_client_id(client_id)
    if amount.fen > MAX_TOPUP_FEN:
        raise ValidationFailed(f"one top-up is at most {fmt(MAX_TOPUP_FEN)}", field="amount")
    if actor.user_id is None:
        raise Forbidden("sign in first", field="actor")

    async with pool.acquire() as conn:
        outcome = await idempotency.run_idempotent(
            conn,
            school_id=await idempotency.school_of_person(conn, person_id),
            scope=f"topup:{actor.user_id}",
            key=client_id,
            payload={"person_id": person_id, "amount": amount.fen},
            work=lambda tx: _create_topup_order(
                tx, settings=settings, actor=actor, person_id=person_id, amount=amount
            ),
            success_status=201,
        )
    if outcome.status >= 400:
        return outcome.status, outcome.body, outcome.replayed
    order = await provider_orders.place_order(pool, settings, outcome.body["order_id"])
    return outcome.status, provider_orders.order_view(order), outcome.replayed


async def get_topup(pool: PgPool, actor: Actor, order_id: int) -> dict[str, Any]:
    async with pool.acquire() as conn:
        order = await provider_orders.get_order(conn, order_id)
        if order["person_id"] is None:
            raise NotFound("order not found", field="order_id")
        if order["payer_user_id"] != actor.user_id:
            await check_can_fund(conn, actor, order["person_id"])
        return provider_orders.order_view(order)


async def list_topups(pool: PgPool, actor: Actor, person_id: int) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        await check_can_fund(conn, actor, person_id)
        rows = await conn.fetch(
            "SELECT * FROM provider_orders WHERE person_id = $1 AND purpose = 'topup' "
            "ORDER BY id DESC LIMIT 50",
            person_id,
        )
        return [provider_orders.order_view(dict(r)) for r in rows]
