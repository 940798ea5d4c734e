"""Card applications: the verification order of seed 004, the states, and the fee policy."""

from __future__ import annotations

from typing import Any

from campuscard.ledger.money import Money
from campuscard.platform.errors import Conflict, ValidationFailed

# Seed 004 claim 2: province, then school, then class, then name, then number.
VERIFICATION_ORDER = ("province", "school", "class", "name", "number")
# the API's words (English, for client makers); a page words the refusal from its code and
# field (err.VERIFICATION_FAILED with field.<name>), so a parent reads it in the page's language
MISMATCH_MESSAGES = {
    "province": "the school's province does not match our records",
    "school": "the school does not match our records",
    "class": "the class does not match our records",
    "name": "the student's name does not match our records",
    "number": "the student number does not match our records",
}

OPEN_STATES = ("pending_approval", "awaiting_payment", "ready", "in_production", "produced")
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending_approval": frozenset(
        {"awaiting_payment", "ready", "in_production", "rejected", "cancelled"}
    ),
    "awaiting_payment": frozenset({"ready", "in_production", "cancelled"}),
    "ready": frozenset({"issued", "cancelled"}),
    "in_production": frozenset({"produced", "cancelled"}),
    "produced": frozenset({"issued"}),
    "rejected": frozenset(),
    "issued": frozenset(),
    "cancelled": frozenset(),
}


def verification_failed(field: str) -> ValidationFailed:
    return ValidationFailed(
        f"verification failed: {MISMATCH_MESSAGES[field]}",
        code="VERIFICATION_FAILED",
        field=field,
        details={"order": list(VERIFICATION_ORDER), "mismatch": field},
    )


def first_mismatch(matches: tuple[bool, bool, bool] | None) -> str | None:
    """The first of class, name, number that the closest student record does not match
    (province and school are checked before a record is looked for); None = verified."""
    if matches is None:
        return "class"
    for field, ok in zip(("class", "name", "number"), matches, strict=True):
        if not ok:
            return field
    return None


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(
            f"an application that is {current} cannot become {target}",
            code="APPLICATION_STATE",
            field="status",
        )


def after_approval(delivery: str, fee_due: bool) -> str:
    """Where an approved application goes next."""
    if fee_due:
        return "awaiting_payment"
    return "ready" if delivery == "kiosk" else "in_production"


def card_fee(school_settings: dict[str, Any], category: str) -> tuple[int, bool]:
    """(fee in fen, waived?) from the school's ``settings.issuing``:
    ``{"card_fee": "20.00", "fee_waived_categories": ["hardship"]}``. No fee set = waived."""
    issuing = school_settings.get("issuing") or {}
    raw = issuing.get("card_fee")
    fee = Money.parse(raw, field="card_fee").fen if isinstance(raw, str) and raw else 0
    waived_for = issuing.get("fee_waived_categories") or []
    return fee, fee == 0 or category in waived_for
