"""The demo campus's online campus store: a shop terminal of 校园超市, its staff sign-in
'shop1', and orders in every state a shop meets — waiting for payment, paid and waiting to
ship, shipped and waiting for the buyer, finished after a partial release and a refund, closed
because the shop did not ship in time, and a dispute with a decision waiting for the second
settlement operator."""

from __future__ import annotations

from typing import Any

from campuscard.db.tx import Tx
from campuscard.orders import books, buying, disputes, shop
from campuscard.platform import auth
from campuscard.platform.actors import Actor

SHOP_SN = "SHOP-DEMO-001"
SHOP_USER = "shop1"
_ITEMS = {
    "books": [
        {"name": "高等数学（上）", "qty": 1, "unit_price": "45.00"},
        {"name": "笔记本（A5）", "qty": 3, "unit_price": "5.00"},
    ],
    "print": [{"name": "课程论文打印装订", "qty": 1, "unit_price": "18.50"}],
    "daily": [
        {"name": "洗衣液 2kg", "qty": 1, "unit_price": "32.90"},
        {"name": "纸巾（10包）", "qty": 2, "unit_price": "12.80"},
    ],
}
# (order no, student index, title, items, what happens)
ORDERS = [
    ("SO-DEMO-0001", 3, "生活用品", "daily", "unpaid"),
    ("SO-DEMO-0002", 4, "教材与文具", "books", "paid"),
    ("SO-DEMO-0003", 5, "论文打印", "print", "shipped"),
    ("SO-DEMO-0004", 6, "教材与文具", "books", "partial"),
    ("SO-DEMO-0005", 7, "生活用品", "daily", "not_shipped"),
    ("SO-DEMO-0006", 8, "教材与文具", "books", "disputed"),
]


async def _actor(tx: Tx, **where: Any) -> Actor:
    ((column, value),) = where.items()
    uid = await tx.fetchval(f"SELECT id FROM users WHERE {column} = $1", value)
    return await auth.load_actor(tx, uid)


async def ensure_demo_orders(tx: Tx, school_id: int, numbers: list[str], password: str) -> None:
    """Once per school (``numbers``: the demo's students, in order)."""
    if await tx.fetchval("SELECT 1 FROM terminals WHERE sn = $1", SHOP_SN):
        return
    merchant_id = await tx.fetchval(
        "SELECT id FROM merchants WHERE school_id = $1 AND channel = 'supermarket' ORDER BY id",
        school_id,
    )
    terminal_id = await tx.fetchval(
        """INSERT INTO terminals(school_id, sn, kind, merchant_id, location)
           VALUES ($1, $2, 'shop', $3, '校园超市网店 online store') RETURNING id""",
        school_id,
        SHOP_SN,
        merchant_id,
    )
    await auth.create_user(
        tx,
        username=SHOP_USER,
        password=password,
        school_id=school_id,
        roles=[("merchant_manager", school_id, merchant_id)],
        display_name="Campus store 校园超市",
    )
    the_shop = shop.Shop(school_id, terminal_id, merchant_id, SHOP_SN)
    center = await _actor(tx, username="settlement")
    for order_no, index, title, items, story in ORDERS:
        number = numbers[index]
        view = await shop.do_create_order.in_tx(
            tx,
            the_shop,
            shop.NewOrder(order_no, number, title, _ITEMS[items], "东区3栋 402"),
        )
        if story == "unpaid":
            continue
        buyer = await _actor(tx, person_id=view["person_id"])
        await buying.pay_in_tx(tx, buyer, school_id, view["id"], via="phone", by=buyer.name)
        order = await books.lock_order(tx, school_id, view["id"])
        if story == "paid":
            continue
        if story == "not_shipped":  # the deadline passed: refunded by the clock
            await books.refund(tx, order, int(order["amount"]), "system:orders", "not_shipped")
            continue
        await shop.do_ship.in_tx(tx, the_shop, order_no, tracking="校内配送")
        if story == "partial":  # the book arrived, the notebooks were out of stock
            await buying.confirm_in_tx(tx, buyer, school_id, view["id"], amount=4_500)
            await shop.do_refund.in_tx(
                tx, the_shop, order_no, refund_no="RF-DEMO-0004", amount=None, reason="笔记本缺货"
            )
        elif story == "disputed":
            await buying.dispute_in_tx(
                tx, buyer, school_id, view["id"], reason="书角破损，笔记本少了一本"
            )
            await disputes.do_propose_decision.in_tx(
                tx,
                center,
                school_id,
                view["id"],
                to_merchant=4_000,
                note="笔记本少一本，书有轻微破损",
            )
