"""Holds, the pure part: what a hold request must look like before it reaches the database.

A hold sets money aside on a purse (a shower running, a laundry cycle, an escrowed order) and
resolves exactly once: captured in part or whole (the rest released), voided, or expired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from campuscard.platform.errors import ValidationFailed

HOLD_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
NAME = re.compile(r"^[a-z_]{2,24}$")
STATES = ("pending", "captured", "voided", "expired")
PURSES = ("cash", "subsidy")

# How long each kind stays open unless the school's settings say otherwise
# (settings.holds.timeouts.<kind>, seconds); the database applies the same table
# (ledger/db/cc_hold_timeout.sql).
DEFAULT_TIMEOUTS: dict[str, int] = {
    "shower": 30 * 60,
    "water": 30 * 60,
    "laundry": 3 * 3600,
    "computer_lab": 4 * 3600,
    "bus": 10 * 60,
    "order": 7 * 86400,
    "bill": 86400,
}

# The expiry job's period; the ledger check allows an open hold at most two periods overdue.
EXPIRY_PERIOD_SECONDS = 60


@dataclass(frozen=True)
class HoldRequest:
    hold_id: str
    person_id: int
    amount: int  # fen
    kind: str
    owner_kind: str
    owner_id: str
    payee_account_id: int
    purse: str | None = None
    memo: str = ""

    def __post_init__(self) -> None:
        check_hold_id(self.hold_id)
        if type(self.amount) is not int or self.amount <= 0:
            raise ValidationFailed("amount must be greater than zero", field="amount")
        if not NAME.match(self.kind):
            raise ValidationFailed("kind must be 2-24 lowercase letters or _", field="kind")
        if not NAME.match(self.owner_kind):
            raise ValidationFailed(
                "owner kind must be 2-24 lowercase letters or _", field="owner_kind"
            )
        if not 1 <= len(self.owner_id) <= 64:
            raise ValidationFailed("owner id must be 1-64 characters", field="owner_id")
        if self.purse is not None and self.purse not in PURSES:
            raise ValidationFailed("purse must be cash or subsidy", field="purse")
        if len(self.memo) > 200:
            raise ValidationFailed("memo must be at most 200 characters", field="memo")


def check_hold_id(hold_id: str) -> None:
    if not HOLD_ID.match(hold_id):
        raise ValidationFailed("hold id must be 8-64 letters, digits or _ . : -", field="hold_id")


def check_capture_amount(amount: int) -> None:
    if type(amount) is not int or amount <= 0:
        raise ValidationFailed(
            "amount must be greater than zero (void a hold that was not used)", field="amount"
        )


def timeout_seconds(settings: dict[str, Any], kind: str) -> int | None:
    """A school's timeout for a kind of hold, in seconds (None: the school has none)."""
    configured = settings.get("holds", {}).get("timeouts", {}).get(kind)
    if configured is not None:
        return int(configured)
    return DEFAULT_TIMEOUTS.get(kind)


def available(balance: int, held: int) -> int:
    """What a purse can spend: its balance less its open holds."""
    return balance - held
