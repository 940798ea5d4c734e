"""Checkout checks when an order is paid: the cardholder's PIN (counted with the card's other
PIN tries, so a reader or a phone cannot be used to guess it) and the delivery address against
the one on file — a new address needs the PIN and then becomes the one on file."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.payments import pay_settings
from campuscard.payments import rules as pay_rules
from campuscard.platform.errors import DomainError


def same_address(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


async def pin_refusal(
    tx: Tx, settings: Settings, school_id: int, person_id: int, pin: str
) -> DomainError | None:
    """None when the PIN is right (its failure count is reset); else the refusal, with the
    wrong try counted in the caller's transaction — the caller commits before refusing."""
    stored = await tx.fetchrow(
        "SELECT pin_hash, pin_failures FROM pay_settings WHERE school_id = $1 AND person_id = $2",
        school_id,
        person_id,
    )
    limits = await pay_settings.school_rules(tx, school_id)
    if stored is None or stored["pin_hash"] is None:
        return DomainError(
            "the cardholder has not set a PIN yet (set it online or at a kiosk)",
            code="PIN_NOT_SET",
            field="pin",
            status=403,
        )
    if stored["pin_failures"] >= limits.pin_max_failures:
        return DomainError(
            "too many wrong PINs: the card is locked", code="PIN_LOCKED", field="pin", status=403
        )
    token = pay_rules.pin_token(pay_rules.pin_pepper(settings.master_key.get_secret_value()), pin)
    if pay_rules.pin_hash(token, person_id) != stored["pin_hash"]:
        failures = await tx.fetchval(
            """UPDATE pay_settings SET pin_failures = pin_failures + 1, updated_at = now()
                WHERE school_id = $1 AND person_id = $2 RETURNING pin_failures""",
            school_id,
            person_id,
        )
        left = max(limits.pin_max_failures - int(failures), 0)
        return DomainError(
            "wrong PIN: the card is locked" if left == 0 else "wrong PIN",
            code="PIN_LOCKED" if left == 0 else "PIN_WRONG",
            field="pin",
            status=403,
            details={"tries_left": left},
        )
    if stored["pin_failures"]:
        await tx.execute(
            "UPDATE pay_settings SET pin_failures = 0 WHERE school_id = $1 AND person_id = $2",
            school_id,
            person_id,
        )
    return None


@owns_transaction
async def do_check_pin(
    tx: Tx, settings: Settings, school_id: int, person_id: int, pin: str
) -> DomainError | None:
    """The PIN checked in a transaction of its own, so a wrong try stays counted."""
    return await pin_refusal(tx, settings, school_id, person_id, pin)


async def check_address(
    tx: Tx, school_id: int, person_id: int, address: str, *, pin_checked: bool
) -> None:
    """An order to the address on file (or with none given) passes; a first address is taken on
    file; another address needs the PIN, and then replaces the one on file."""
    if not address.strip():
        return
    on_file: str = await tx.fetchval(
        "SELECT delivery_address FROM persons WHERE school_id = $1 AND id = $2 FOR UPDATE",
        school_id,
        person_id,
    )
    if on_file and same_address(on_file, address):
        return
    if on_file and not pin_checked:
        raise DomainError(
            "the order goes to an address other than the one on file: pay with your PIN",
            code="ADDRESS_CHANGE_NEEDS_PIN",
            field="pin",
            status=403,
            details={"on_file": on_file},
        )
    await tx.execute(
        "UPDATE persons SET delivery_address = $3 WHERE school_id = $1 AND id = $2",
        school_id,
        person_id,
        address.strip(),
    )


async def address_on_file(conn: Conn | PgPool, school_id: int, person_id: int) -> str:
    value: str | None = await conn.fetchval(
        "SELECT delivery_address FROM persons WHERE school_id = $1 AND id = $2",
        school_id,
        person_id,
    )
    return value or ""
