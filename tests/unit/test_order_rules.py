"""Escrowed orders, the pure parts: lines and amounts, windows against the hold's timeout,
parts of what is held, the delivery code, and the 32-column receipt layout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from campuscard.orders import rules, slips
from campuscard.platform.errors import ValidationFailed


def test_lines_add_up_and_bad_lines_name_their_field() -> None:
    items = rules.parse_items([{"name": " 笔记本 ", "qty": 3, "unit_price": "5.00"}])
    assert items[0].name == "笔记本" and items[0].total == 1_500
    for raw, field in [
        ([], "items"),
        ([{"name": "x", "qty": 1.0, "unit_price": "1"}], "items[0].qty"),
        ([{"name": "x", "qty": 1, "unit_price": "-1"}], "items[0].unit_price"),
        ([{"name": "x", "qty": 999, "unit_price": "99999.99"}], "items"),
    ]:
        with pytest.raises(ValidationFailed) as err:
            rules.parse_items(raw)
        assert err.value.field == field


def test_windows_end_an_hour_before_the_hold_would() -> None:
    week = timedelta(days=7)
    assert rules.check_window(167, "ship_within_hours", hold_timeout=week) == timedelta(hours=167)
    with pytest.raises(ValidationFailed):
        rules.check_window(168, "ship_within_hours", hold_timeout=week)


def test_parts_of_what_is_held_and_how_an_order_ends() -> None:
    order: dict[str, Any] = {"amount": 6_000, "released": 4_500, "refunded": 0}
    assert rules.remaining(order) == 1_500 and rules.end_state(order) is None
    assert rules.check_part(None, 1_500) == 1_500
    with pytest.raises(ValidationFailed):
        rules.check_part(1_501, 1_500)
    assert rules.end_state({**order, "released": 6_000}) == "finished"
    assert rules.end_state({**order, "released": 0, "refunded": 6_000}) == "closed"


def test_the_delivery_code_is_six_digits_per_order() -> None:
    a = rules.delivery_code("k" * 32, 1, 41)
    assert len(a) == 6 and a.isdigit() and a != rules.delivery_code("k" * 32, 1, 42)
    assert rules.code_matches("k" * 32, 1, 41, a)
    with pytest.raises(ValidationFailed):
        rules.code_matches("k" * 32, 1, 41, "12345")


def test_the_receipt_fits_32_columns_with_chinese_text() -> None:
    order = {
        "merchant_name": "校园超市网店（东区店）特别长的名字也要折行",
        "order_no": "SO-20260901-0001",
        "state": "wait_seller_send",
        "paid_at": "2026-09-01T08:05:00+00:00",
        "timezone": "Asia/Shanghai",
        "items": [
            {
                "name": "高等数学（上）第七版同济大学",
                "qty": 2,
                "unit_price": "45.00",
                "total": "90.00",
            }
        ],
        "amount": "90.00",
        "refunded": "0.00",
        "held": "90.00",
        "buyer_name": "李明",
        "buyer_number": "2026000001",
        "delivery_address": "东区3栋402室，放在门口的快递柜里即可，谢谢",
        "tracking": "SF1234567890",
    }
    text = slips.receipt_text(order, lambda key, **_: key)
    assert all(slips.columns(line) <= slips.WIDTH for line in text.splitlines())
    assert "2026-09-01 16:05" in text  # the school's local time
    assert slips.pair("金额", "¥90.00").endswith("¥90.00")
