"""Escrowed orders, the pure part: what an order must look like, which step may follow which,
and the one-time delivery code.

The states follow the guaranteed-payment flow shops and buyers know:

    wait_buyer_pay ──pay──▶ wait_seller_send ──ship──▶ wait_buyer_confirm ──release──▶ finished
          │                     │      ▲                   │
          └─not paid─▶ closed ◀─┘      └──── disputed ◀────┘ (timers stop; two people decide)

Money is in a ledger hold from payment until it is released to the merchant (in part or
whole) or given back to the buyer; ``remaining`` is what is still held.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from campuscard.ledger.money import Money
from campuscard.platform.errors import ValidationFailed

ORDER_NO = re.compile(r"^[A-Za-z0-9_.:-]{4,64}$")
STATES = (
    "wait_buyer_pay",
    "wait_seller_send",
    "wait_buyer_confirm",
    "disputed",
    "finished",
    "closed",
)
OPEN_STATES = ("wait_buyer_pay", "wait_seller_send", "wait_buyer_confirm", "disputed")
HELD_STATES = ("wait_seller_send", "wait_buyer_confirm", "disputed")
MAX_ORDER_FEN = 10_000_000  # 100,000.00 yuan
MAX_ITEMS = 50
MAX_QTY = 999
# the deadlines an order may ask for; each must end before its hold would expire
MIN_WINDOW = timedelta(hours=1)
HOLD_MARGIN = timedelta(hours=1)
PAY_WITHIN_DEFAULT = timedelta(minutes=30)
MAX_PAY_WITHIN = timedelta(days=1)
CODE_DIGITS = 6
MAX_CODE_FAILURES = 5
# a disputed order's hold is placed again when it would expire within this long
RENEW_BEFORE = timedelta(days=1)


@dataclass(frozen=True)
class Item:
    name: str
    qty: int
    unit_price: int  # fen

    @property
    def total(self) -> int:
        return self.qty * self.unit_price

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "qty": self.qty,
            "unit_price": str(Money(self.unit_price)),
            "total": str(Money(self.total)),
        }


def parse_items(raw: object) -> list[Item]:
    """Lines as the shop sends them: [{"name", "qty", "unit_price": "12.30"}]."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ITEMS:
        raise ValidationFailed(f"items must be a list of 1-{MAX_ITEMS} lines", field="items")
    items = []
    for i, line in enumerate(raw):
        where = f"items[{i}]"
        if not isinstance(line, dict) or set(line) != {"name", "qty", "unit_price"}:
            raise ValidationFailed(
                f"{where} must have exactly name, qty and unit_price", field=where
            )
        name = line["name"]
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 64:
            raise ValidationFailed(f"{where}.name must be 1-64 characters", field=f"{where}.name")
        qty = line["qty"]
        if type(qty) is not int or not 1 <= qty <= MAX_QTY:
            raise ValidationFailed(
                f"{where}.qty must be a whole number 1-{MAX_QTY}", field=f"{where}.qty"
            )
        price = Money.parse(line["unit_price"], field=f"{where}.unit_price")
        items.append(Item(name.strip(), qty, price.fen))
    total = sum(i.total for i in items)
    if total > MAX_ORDER_FEN:
        raise ValidationFailed(
            f"the order is more than {Money(MAX_ORDER_FEN)} yuan",
            code="ORDER_TOO_LARGE",
            field="items",
        )
    return items


def items_from_row(raw: list[dict[str, Any]]) -> list[Item]:
    return [Item(r["name"], int(r["qty"]), int(r["unit_price"])) for r in raw]


def items_to_row(items: list[Item]) -> list[dict[str, Any]]:
    return [{"name": i.name, "qty": i.qty, "unit_price": i.unit_price} for i in items]


def check_order_no(order_no: object) -> str:
    if not isinstance(order_no, str) or ORDER_NO.match(order_no) is None:
        raise ValidationFailed("order_no must be 4-64 letters, digits or _ . : -", field="order_no")
    return order_no


def check_window(value: object, field: str, *, hold_timeout: timedelta) -> timedelta:
    """A deadline in hours: at least an hour, and ending an hour before the hold would."""
    if type(value) is not int or value <= 0:
        raise ValidationFailed(f"{field} must be a whole number of hours", field=field)
    window = timedelta(hours=value)
    longest = hold_timeout - HOLD_MARGIN
    if window < MIN_WINDOW or window > longest:
        raise ValidationFailed(
            f"{field} must be 1-{int(longest.total_seconds() // 3600)} hours "
            "(money is held at most the school's order hold time)",
            field=field,
        )
    return window


def check_pay_within(value: object) -> timedelta:
    if value is None:
        return PAY_WITHIN_DEFAULT
    if type(value) is not int or not 1 <= value <= MAX_PAY_WITHIN.total_seconds() // 60:
        raise ValidationFailed("pay_within_minutes must be 1-1440", field="pay_within_minutes")
    return timedelta(minutes=value)


def remaining(order: dict[str, Any]) -> int:
    """What is still held for the order: neither released to the merchant nor refunded."""
    return int(order["amount"]) - int(order["released"]) - int(order["refunded"])


def end_state(order: dict[str, Any]) -> str | None:
    """The state an order ends in once nothing is held: finished if the merchant got money."""
    if remaining(order) > 0:
        return None
    return "finished" if int(order["released"]) > 0 else "closed"


def check_part(amount: int | None, left: int, *, field: str = "amount") -> int:
    """A part of what is held (the whole when not given)."""
    if amount is None:
        return left
    if type(amount) is not int or amount <= 0:
        raise ValidationFailed(f"{field} must be greater than zero", field=field)
    if amount > left:
        raise ValidationFailed(
            f"{field} is more than the {Money(left)} yuan still held for this order",
            code="AMOUNT_ABOVE_HELD",
            field=field,
        )
    return amount


def hold_key(school_id: int, order_id: int, seq: int) -> str:
    return f"order-{school_id}-{order_id}-{seq}"


def delivery_code(master_key: str, school_id: int, order_id: int) -> str:
    """The buyer's one-time code for the courier: derived, so it is never stored."""
    label = f"campuscard/order-code/{school_id}/{order_id}".encode()
    digest = hmac.new(master_key.encode(), label, hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def code_matches(master_key: str, school_id: int, order_id: int, code: object) -> bool:
    if not isinstance(code, str) or not code.isdigit() or len(code) != CODE_DIGITS:
        raise ValidationFailed(f"code must be {CODE_DIGITS} digits", field="code")
    return hmac.compare_digest(delivery_code(master_key, school_id, order_id), code)


def check_reason(reason: object, field: str = "reason") -> str:
    if not isinstance(reason, str) or not 2 <= len(reason.strip()) <= 200:
        raise ValidationFailed(f"{field} must be 2-200 characters", field=field)
    return reason.strip()
