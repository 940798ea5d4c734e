"""Pure rules: the card state machine, terminal signing (checked against the worked example in
docs/terminal-protocol.md), payment rules and purse splits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from campuscard.cards import rules as cards
from campuscard.payments import rules as payments
from campuscard.platform import signing
from campuscard.platform.errors import Conflict, ValidationFailed

DOC = Path(__file__).resolve().parents[2] / "docs" / "terminal-protocol.md"


@pytest.mark.parametrize(
    ("state", "action", "target"),
    [
        ("issued", "activate", "active"),
        ("active", "report_loss", "lost"),
        ("frozen", "report_loss", "lost"),
        ("lost", "unblock", "active"),
        ("active", "freeze", "frozen"),
        ("frozen", "unfreeze", "active"),
        ("active", "replace", "replaced"),
        ("lost", "replace", "replaced"),
        ("expired", "cancel", "cancelled"),
        ("lost", "cancel", "cancelled"),
        ("active", "expire", "expired"),
    ],
)
def test_allowed_transitions(state: str, action: str, target: str) -> None:
    assert cards.next_state(state, action) == target


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("active", "activate"),
        ("lost", "freeze"),
        ("active", "unblock"),
        ("replaced", "unblock"),
        ("replaced", "activate"),
        ("cancelled", "replace"),
        ("expired", "report_loss"),
        ("cancelled", "cancel"),
    ],
)
def test_refused_transitions_say_why(state: str, action: str) -> None:
    with pytest.raises(Conflict) as err:
        cards.next_state(state, action)
    assert err.value.code == "CARD_TRANSITION_REFUSED"
    assert state in err.value.message


def test_every_blocked_state_is_reachable_and_terminal_states_stay() -> None:
    targets = {t.target for t in cards.TRANSITIONS.values()}
    assert targets >= cards.BLOCKED_STATES
    for state in cards.PERMANENT_BLOCKS - {"expired"}:
        assert not any(state in t.sources for t in cards.TRANSITIONS.values())


def test_uid_and_number_checks() -> None:
    assert cards.check_uid(" 04a1b2c3 ") == "04A1B2C3"
    with pytest.raises(ValidationFailed):
        cards.check_uid("XYZ12345")
    with pytest.raises(ValidationFailed):
        cards.check_card_number("12a45678")


def _doc_value(label: str) -> str:
    m = re.search(rf"^{re.escape(label)}\s+(.+)$", DOC.read_text(), re.MULTILINE)
    assert m, label
    return m.group(1).strip()


def test_worked_example_in_the_protocol_doc_is_right() -> None:
    key = signing.derive_terminal_key(
        _doc_value("master key"), _doc_value("SN"), int(_doc_value("key version"))
    )
    body = _doc_value("body").encode()
    args = (
        _doc_value("method"),
        _doc_value("path"),
        _doc_value("timestamp"),
        _doc_value("nonce"),
        body,
    )
    assert key.hex() == _doc_value("terminal key")
    assert signing.body_digest(body) == _doc_value("body sha256")
    assert signing.sign(key, *args) == _doc_value("signature")
    text = DOC.read_text()
    assert signing.string_to_sign(*args) in text
    get_sig = signing.sign(
        key,
        "GET",
        "/api/v1/terminal/blacklist?since=17",
        "1795000000",
        "a1b2c3d4e5f60718293a4b5c",
        b"",
    )
    assert get_sig in text and signing.body_digest(b"") in text


def test_signature_changes_with_every_signed_part() -> None:
    key = b"k" * 32
    base = ("POST", "/api/v1/terminal/pay", "1795000000", "n" * 16, b"{}")
    sig = signing.sign(key, *base)
    for i, changed in enumerate(
        ("GET", "/api/v1/terminal/pay?x=1", "1795000001", "m" * 16, b"{ }")
    ):
        parts = list(base)
        parts[i] = changed
        assert signing.sign(key, *parts) != sig  # type: ignore[arg-type]
    assert signing.signature_matches(key, *base, sig)
    assert not signing.signature_matches(b"x" * 32, *base, sig)


def test_purse_split_and_refund_split() -> None:
    order = ("subsidy", "cash")
    assert payments.split_payment(4250, {"cash": 10000, "subsidy": 3000}, order) == {
        "subsidy": 3000,
        "cash": 1250,
    }
    assert payments.split_payment(20000, {"cash": 10000, "subsidy": 3000}, order) is None
    assert payments.split_payment(100, {"cash": 500, "subsidy": 500}, ("cash", "subsidy")) == {
        "cash": 100,
        "subsidy": 0,
    }
    paid = {"cash": 1000, "subsidy": 2000}
    assert payments.split_refund(1200, paid, {}) == {"cash": 1000, "subsidy": 200}
    assert payments.split_refund(500, paid, {"cash": 1000, "subsidy": 200}) == {
        "cash": 0,
        "subsidy": 500,
    }
    with pytest.raises(ValidationFailed):
        payments.split_refund(1900, paid, {"cash": 1000, "subsidy": 200})


def test_rules_validation_and_pin_rules() -> None:
    rules = payments.rules_from_settings({"payments": {"pin_over_per_tx": 3000}})
    assert rules.pin_over_per_tx == 3000 and rules.daily_limit == 300_000
    assert payments.pin_required(3001, 0, rules)
    assert not payments.pin_required(3000, 0, rules)
    assert payments.pin_required(100, rules.pin_over_daily, rules)
    for bad in (
        {"purse_order": ["cash"]},
        {"per_tx_limit": -1},
        {"nope": 1},
        {"per_tx_limit": 10, "daily_limit": 5},
        {"pin_max_failures": 0},
    ):
        with pytest.raises(ValidationFailed):
            payments.check_rules(bad, base=payments.PaymentRules())
    for pin in ("123456", "111111", "12345", "12a456", "654321"):
        with pytest.raises(ValidationFailed):
            payments.check_pin_format(pin)
    assert payments.check_pin_format("135790") == "135790"


def test_pin_hash_depends_on_pepper_and_person() -> None:
    a = payments.pin_hash(payments.pin_token(b"p" * 32, "135790"), 1)
    assert a != payments.pin_hash(payments.pin_token(b"q" * 32, "135790"), 1)
    assert a != payments.pin_hash(payments.pin_token(b"p" * 32, "135790"), 2)
    assert "135790" not in a
