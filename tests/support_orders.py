"""Builders for the escrowed-order tests: a campus store with a signed shop terminal, buyers
with money, two settlement-center operators."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import Conn
from campuscard.orders import shop
from campuscard.platform.actors import Actor
from tests.support import make_school, make_student
from tests.support_bills import finance_actor, holder_actor
from tests.support_payments import Device, make_device, make_merchant


@dataclass
class Store:
    school_id: int
    merchant_id: int
    device: Device
    shop: shop.Shop
    buyers: list[int]
    holders: list[Actor]
    center: Actor
    second: Actor


async def quick_user(
    conn: Conn,
    username: str,
    role: str,
    school_id: int,
    person_id: int | None = None,
) -> int:
    """A user who never signs in (use-case tests): no password hash to compute."""
    user_id: int = await conn.fetchval(
        """INSERT INTO users(school_id, username, display_name, password_hash, person_id)
           VALUES ($1, $2, $2, 'no-sign-in', $3) RETURNING id""",
        school_id,
        username,
        person_id,
    )
    await conn.execute(
        "INSERT INTO user_roles(user_id, role, school_id) VALUES ($1, $2, $3)",
        user_id,
        role,
        school_id,
    )
    return user_id


async def campus_store(
    conn: Conn, settings: Settings, *, cash: int = 100_000, code: str = "TST"
) -> Store:
    school = await make_school(conn, code)
    merchant_id, _ = await make_merchant(conn, school.id, "校园超市网店", channel="supermarket")
    device = await make_device(conn, settings, school.id, merchant_id, "SHOP-0001", kind="shop")
    buyers, holders = [], []
    for i in range(2):
        pid = await make_student(conn, school.id, f"B{i + 1:03d}", cash=cash, name=f"买家{i + 1}")
        uid = await quick_user(conn, f"buyer{i + 1}-{code}", "cardholder", school.id, pid)
        buyers.append(pid)
        holders.append(holder_actor(school.id, uid, pid, f"buyer{i + 1}-{code}"))
    a = await quick_user(conn, f"center-a-{code}", "settlement", school.id)
    b = await quick_user(conn, f"center-b-{code}", "settlement", school.id)
    return Store(
        school.id,
        merchant_id,
        device,
        shop.Shop(school.id, device.id, merchant_id, device.sn),
        buyers,
        holders,
        finance_actor(school.id, a, f"center-a-{code}"),
        finance_actor(school.id, b, f"center-b-{code}"),
    )


def new_order(order_no: str, buyer: str = "B001", **kw: Any) -> shop.NewOrder:
    return shop.NewOrder(
        order_no=order_no,
        buyer_number=buyer,
        title=kw.pop("title", "教材与文具"),
        items=kw.pop(
            "items",
            [
                {"name": "高等数学（上）", "qty": 1, "unit_price": "45.00"},
                {"name": "笔记本", "qty": 3, "unit_price": "5.00"},
            ],
        ),
        delivery_address=kw.pop("delivery_address", "东区3栋 402"),
        **kw,
    )


def cid() -> str:
    return f"c-{secrets.token_hex(6)}"
