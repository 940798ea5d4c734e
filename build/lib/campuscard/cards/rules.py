"""Card life as a pure state machine: which action moves a card from which state to which.

    issued ──activate──▶ active ◀──unblock── lost
                           │  ▲                ▲
                  freeze   │  │ unfreeze       │ report_loss (holder online/kiosk, operator)
                           ▼  │                │
                          frozen          active
    active | lost | frozen ──replace──▶ replaced   (a new card, same account; blacklisted for ever)
    any live state or expired ──cancel──▶ cancelled (deposit and balance paid out)
    issued | active | lost | frozen ──expire──▶ expired

No I/O here: cards/lifecycle.py applies a transition inside its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from campuscard.platform.errors import Conflict, ValidationFailed

STATES = ("issued", "active", "lost", "frozen", "replaced", "cancelled", "expired")
LIVE_STATES = frozenset({"issued", "active", "lost", "frozen"})
KINDS = ("student", "staff", "temporary")
# States a device must refuse; replaced/cancelled/expired stay on the blacklist for ever.
BLOCKED_STATES = frozenset({"lost", "frozen", "replaced", "cancelled", "expired"})
PERMANENT_BLOCKS = frozenset({"replaced", "cancelled", "expired"})


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str
    # who may start it: an operator of the card center, the holder (online, kiosk), the system
    by_holder: bool = False
    by_system: bool = False


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition("activate", frozenset({"issued"}), "active", by_holder=True),
        Transition("report_loss", frozenset({"active", "frozen"}), "lost", by_holder=True),
        Transition("unblock", frozenset({"lost"}), "active"),
        Transition("freeze", frozenset({"active"}), "frozen"),
        Transition("unfreeze", frozenset({"frozen"}), "active"),
        Transition("replace", frozenset({"active", "lost", "frozen"}), "replaced"),
        Transition("cancel", frozenset(LIVE_STATES | {"expired"}), "cancelled"),
        Transition("expire", frozenset(LIVE_STATES), "expired", by_system=True),
    )
}

_STATE_ZH = {
    "issued": "已发卡未启用",
    "active": "正常",
    "lost": "已挂失",
    "frozen": "已冻结",
    "replaced": "已补换",
    "cancelled": "已注销",
    "expired": "已过期",
}


def next_state(state: str, action: str) -> str:
    """The state after ``action``; a transition that is not allowed is a clear 409."""
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise ValidationFailed(f"unknown card action {action!r}", field="action")
    if state not in transition.sources:
        allowed = ", ".join(sorted(transition.sources))
        raise Conflict(
            f"cannot {action.replace('_', ' ')} a card that is {state} "
            f"({_STATE_ZH.get(state, state)}); allowed from: {allowed}",
            code="CARD_TRANSITION_REFUSED",
            field="state",
            details={"state": state, "action": action},
        )
    return transition.target


def check_card_number(number: object, field: str = "number") -> str:
    if not isinstance(number, str) or not (6 <= len(number) <= 20) or not number.isdigit():
        raise ValidationFailed(
            f"{field} must be 6-20 digits", code="CARD_NUMBER_INVALID", field=field
        )
    return number


def check_uid(uid: object, field: str = "uid") -> str:
    """A chip UID: 8-20 hex digits, stored upper-case (readers differ in case)."""
    if not isinstance(uid, str):
        raise ValidationFailed(f"{field} must be hex digits", code="CARD_UID_INVALID", field=field)
    value = uid.strip().upper()
    if not (8 <= len(value) <= 20) or any(ch not in "0123456789ABCDEF" for ch in value):
        raise ValidationFailed(
            f"{field} must be 8-20 hex digits", code="CARD_UID_INVALID", field=field
        )
    return value


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise ValidationFailed(
            f"kind must be one of {', '.join(KINDS)}", code="CARD_KIND_INVALID", field="kind"
        )
    return str(kind)


def is_expired(expires_on: date | None, business_date: date) -> bool:
    return expires_on is not None and expires_on < business_date
