"""Settlement arithmetic: commission and how it is spread over a merchant's terminal lines.

The rule (docs/decisions/0071-commission-rounding.md):
  * the base is the merchant-day net sales: gross - reversals - refunds, over everything the
    day cleared for that merchant (adjustments on its accounts are paid out, not commissioned);
  * commission = net_sales * commission_bp / 10000, rounded half-up to the fen, computed once
    per merchant-day (not per payment, which would round thousands of times);
  * a day with net sales <= 0 has no commission (a refund does not earn the merchant one back);
  * the merchant's commission is spread over its terminal lines in proportion to their positive
    net sales by the largest-remainder method, so the lines add up to the merchant figure exactly.
Integers only; no float is ever involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

BP_DENOMINATOR = 10_000


def commission_fen(net_sales: int, commission_bp: int) -> int:
    """Commission on ``net_sales`` fen at ``commission_bp`` basis points, half-up to the fen."""
    if type(net_sales) is not int or type(commission_bp) is not int:
        raise TypeError("commission works on int fen and int basis points")
    if not 0 <= commission_bp <= BP_DENOMINATOR:
        raise ValueError("commission_bp must be 0..10000")
    if net_sales <= 0 or commission_bp == 0:
        return 0
    # half-up: add half the denominator before the floor division (both positive here)
    return (net_sales * commission_bp + BP_DENOMINATOR // 2) // BP_DENOMINATOR


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` fen over ``weights`` (only positive weights take a share) so the parts
    sum to ``total`` exactly: floor shares first, then one fen each to the largest remainders
    (ties to the earlier line)."""
    if total < 0:
        raise ValueError("total must not be negative")
    positive = [max(w, 0) for w in weights]
    base = sum(positive)
    if total == 0 or base == 0:
        if total and not base:
            raise ValueError("cannot allocate a commission without positive sales")
        return [0] * len(weights)
    shares = [total * w // base for w in positive]
    remainders = [total * w % base for w in positive]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def rate_text(commission_bp: int) -> str:
    """150 -> "1.50%" (integer arithmetic)."""
    return f"{commission_bp // 100}.{commission_bp % 100:02d}%"


def payout_ref(school_id: int, day: date, merchant_id: int) -> str:
    """The reference of a merchant's payout line, unique and the same on every re-download:
    'STL' + school (4) + date (8) + merchant (8) — the bank echoes it on its statement."""
    return f"STL{school_id:04d}{day:%Y%m%d}{merchant_id:08d}"
