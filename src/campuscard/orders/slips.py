"""An order's slip, the pure part: the plain-text layout for a small receipt printer (58 mm,
32 columns; a Chinese character takes two), built from the order as the shop sees it."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

WIDTH = 32


def local_minute(iso: str | None, tz: str) -> str:
    """An answer's UTC instant as the school's local date and minute ("2026-09-01 16:05")."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def columns(text: str) -> int:
    """How many printer columns ``text`` takes: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def cut(text: str, width: int) -> str:
    """``text`` shortened to at most ``width`` columns."""
    out, used = [], 0
    for ch in text:
        w = columns(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out)


def wrap(text: str, width: int = WIDTH) -> list[str]:
    lines, rest = [], text
    while rest:
        part = cut(rest, width) or rest[:1]
        lines.append(part)
        rest = rest[len(part) :]
    return lines or [""]


def pair(left: str, right: str, width: int = WIDTH) -> str:
    """``left`` and ``right`` on one line, right-aligned; the left side is shortened to fit."""
    room = width - columns(right) - 1
    left = cut(left, max(room, 0))
    return left + " " * (width - columns(left) - columns(right)) + right


def receipt_text(order: dict[str, Any], t: Callable[..., str], *, width: int = WIDTH) -> str:
    """The order slip as lines of at most ``width`` columns, labels in the page's language."""
    rule = "-" * width
    lines = [*wrap(order["merchant_name"], width), rule]
    lines.append(pair(t("o.order_no"), order["order_no"], width))
    lines.append(pair(t("o.state"), t(f"o.state.{order['state']}"), width))
    if order.get("paid_at"):
        paid = local_minute(order["paid_at"], order["timezone"])
        lines.append(pair(t("o.paid_at"), paid, width))
    lines.append(rule)
    for item in order["items"]:
        lines.extend(wrap(item["name"], width))
        lines.append(pair(f"  {item['qty']} x {item['unit_price']}", item["total"], width))
    lines.append(rule)
    lines.append(pair(t("o.amount"), "¥" + order["amount"], width))
    if order["refunded"] != "0.00":
        lines.append(pair(t("o.refunded"), "¥" + order["refunded"], width))
    lines.append(pair(t("o.held"), "¥" + order["held"], width))
    lines.append(rule)
    lines.append(pair(t("o.buyer"), f"{order['buyer_name']} {order['buyer_number']}", width))
    if order["delivery_address"]:
        lines.append(t("o.address") + ":")
        lines.extend(wrap(order["delivery_address"], width))
    if order["tracking"]:
        lines.append(pair(t("o.tracking"), order["tracking"], width))
    lines.append(rule)
    lines.extend(wrap(t("o.slip_footer"), width))
    return "\n".join(lines) + "\n"
