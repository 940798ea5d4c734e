"""Payment rules of a school (limits, PIN thresholds, purse order) and the pure arithmetic of
splitting a payment over purses and a refund back onto them.

The booking itself runs in the database (``cc_pay`` in db/migrations/0011_payments.sql), which
applies the same rules in one round trip; the defaults here and in ``cc_payment_rules`` match.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from campuscard.ledger import purse_order as purse_policy
from campuscard.platform.errors import ValidationFailed

PIN_LENGTH = 6


@dataclass(frozen=True)
class PaymentRules:
    per_tx_limit: int = 100_000  # 1,000.00 yuan per payment
    daily_limit: int = 300_000  # 3,000.00 yuan per business day
    pin_over_per_tx: int = 5_000  # a payment above 50.00 yuan needs the PIN
    pin_over_daily: int = 20_000  # ... and so does one that takes the day above 200.00 yuan
    pin_max_failures: int = 3  # wrong PINs before the card is locked
    # read from the school's one purse policy (ledger/purse_order.py), not set here
    purse_order: tuple[str, ...] = field(default=("subsidy", "cash"))
    reversal_minutes: int = 10  # a terminal may reverse its payment this long after it

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["purse_order"] = list(self.purse_order)
        return data


def rules_from_settings(settings: Mapping[str, Any] | None) -> PaymentRules:
    """The school's rules from ``schools.settings['payments']``, validated."""
    raw = dict((settings or {}).get("payments") or {})
    raw.pop("purse_order", None)
    policy = purse_policy.policy_of(settings)
    order = ("cash", "subsidy") if policy == "cash_first" else ("subsidy", "cash")
    return check_rules(raw, base=PaymentRules(purse_order=order))


def check_rules(raw: Mapping[str, Any], *, base: PaymentRules) -> PaymentRules:
    known = set(PaymentRules.__dataclass_fields__) - {"purse_order"}
    for key in raw:
        if key not in known:
            raise ValidationFailed(f"unknown payment rule {key!r}", field=key)
    values = base.to_json() | dict(raw)
    for key in ("per_tx_limit", "daily_limit", "pin_over_per_tx", "pin_over_daily"):
        if type(values[key]) is not int or values[key] < 0:
            raise ValidationFailed(f"{key} must be a non-negative number of fen", field=key)
    if type(values["pin_max_failures"]) is not int or not 1 <= values["pin_max_failures"] <= 10:
        raise ValidationFailed("pin_max_failures must be 1-10", field="pin_max_failures")
    if type(values["reversal_minutes"]) is not int or not 1 <= values["reversal_minutes"] <= 1440:
        raise ValidationFailed("reversal_minutes must be 1-1440", field="reversal_minutes")
    order = tuple(values["purse_order"])
    if values["per_tx_limit"] > values["daily_limit"]:
        raise ValidationFailed("per_tx_limit cannot exceed daily_limit", field="per_tx_limit")
    return PaymentRules(**(values | {"purse_order": order}))


def split_payment(
    amount: int, balances: Mapping[str, int], order: Sequence[str]
) -> dict[str, int] | None:
    """How much each purse pays, taking purses in ``order``; None if they do not cover it."""
    left = amount
    taken: dict[str, int] = {}
    for purse in order:
        take = min(left, max(balances.get(purse, 0), 0))
        taken[purse] = take
        left -= take
    return None if left > 0 else taken


def split_refund(
    amount: int, paid: Mapping[str, int], refunded: Mapping[str, int]
) -> dict[str, int]:
    """A refund goes back to the purses that paid: cash first, then subsidy, never more than
    each purse paid net of earlier refunds."""
    to_cash = min(amount, paid.get("cash", 0) - refunded.get("cash", 0))
    to_subsidy = amount - to_cash
    if to_subsidy > paid.get("subsidy", 0) - refunded.get("subsidy", 0):
        raise ValidationFailed("refund is more than what is left of the payment", field="amount")
    return {"cash": to_cash, "subsidy": to_subsidy}


def pin_required(amount: int, spent_today: int, rules: PaymentRules) -> bool:
    return amount > rules.pin_over_per_tx or spent_today + amount > rules.pin_over_daily


def check_pin_format(pin: object, field: str = "pin") -> str:
    if not isinstance(pin, str) or len(pin) != PIN_LENGTH or not pin.isdigit():
        raise ValidationFailed(
            f"{field} must be {PIN_LENGTH} digits", code="PIN_FORMAT", field=field
        )
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise ValidationFailed(
            f"{field} is too easy to guess (all one digit or a run)",
            code="PIN_TOO_WEAK",
            field=field,
        )
    return pin


def pin_token(pepper: bytes, pin: str) -> str:
    """What the server sends to the database instead of the PIN: HMAC(pepper, pin)."""
    return hmac.new(pepper, f"pin|{pin}".encode(), hashlib.sha256).hexdigest()


def pin_hash(token: str, person_id: int) -> str:
    """What is stored: sha256(token ":" person id). Without the pepper (derived from the master
    key, never in the database) a stolen table cannot be brute-forced offline."""
    return hashlib.sha256(f"{token}:{person_id}".encode()).hexdigest()


def pin_pepper(master_key: str) -> bytes:
    return hmac.new(master_key.encode(), b"campuscard/pin-pepper/v1", hashlib.sha256).digest()
