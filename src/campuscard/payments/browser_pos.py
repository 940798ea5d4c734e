"""The POS page in a browser, bound to one registered POS terminal.

A merchant manager binds a browser to one of the merchant's active POS terminals once (the
till PC at a window); the binding is a cookie sealed with an HMAC under the master key, so it
cannot be forged or moved to another merchant's terminal. Payments from the page are booked
by the same ``payments.book_payment`` as a device's, on that terminal, so takings per window
and terminal, limits, receipts and the terminal's business rules are identical. The page's
requests are authenticated by the staff member's web session and CSRF token instead of the
device signature; the server supplies a fresh nonce for each booking.
See docs/decisions/0051-browser-pos-bound-to-a-terminal.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import date
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.payments import code_rules
from campuscard.payments.booking import CardPayer
from campuscard.payments.terminals import SignedTerminal, TerminalRow
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Forbidden, NotFound, ValidationFailed

POS_ROLES = ("merchant_staff", "merchant_manager")
UID_RE = re.compile(r"[0-9A-Fa-f]{8,20}")
_TERMINAL_COLUMNS = (
    "id, sn, school_id, kind, status, merchant_id, outlet_id, key_version, prev_key_version"
)


def _mac(settings: Settings, terminal_id: int, merchant_id: int) -> str:
    key = hashlib.sha256(b"browser-pos|" + settings.master_key.get_secret_value().encode())
    message = f"{terminal_id}|{merchant_id}".encode()
    return hmac.new(key.digest(), message, hashlib.sha256).hexdigest()[:32]


def seal_binding(settings: Settings, terminal_id: int, merchant_id: int) -> str:
    return f"{terminal_id}.{merchant_id}.{_mac(settings, terminal_id, merchant_id)}"


def open_binding(settings: Settings, value: str | None) -> int | None:
    """The terminal id in a binding cookie, or None if absent or tampered with."""
    parts = (value or "").split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    if len(parts[0]) > 18 or len(parts[1]) > 18:
        return None
    terminal_id, merchant_id = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2], _mac(settings, terminal_id, merchant_id)):
        return None
    return terminal_id


def _works_at(actor: Actor, merchant_id: int | None, school_id: int, *roles: str) -> bool:
    return any(
        g.role in roles and g.merchant_id == merchant_id and g.school_id == school_id
        for g in actor.grants
    )


async def pos_terminals(conn: Conn, actor: Actor) -> list[dict[str, Any]]:
    """The active POS terminals of the merchants the actor manages (to bind a browser)."""
    grants = [g for g in actor.grants if g.role == "merchant_manager"]
    rows = await conn.fetch(
        """SELECT t.id, t.sn, t.location, o.name AS outlet, m.name AS merchant
             FROM terminals t JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
             LEFT JOIN outlets o ON o.school_id = t.school_id AND o.id = t.outlet_id
            WHERE t.school_id = ANY($2::int[]) AND t.merchant_id = ANY($1::bigint[])
              AND t.kind = 'pos' AND t.status = 'active'
            ORDER BY m.name, o.name NULLS LAST, t.sn""",
        [g.merchant_id for g in grants],
        sorted({g.school_id for g in grants if g.school_id is not None}),
    )
    return [dict(r) for r in rows]


async def _terminal(conn: Conn, terminal_id: int) -> TerminalRow:
    row = await conn.fetchrow(
        f"SELECT {_TERMINAL_COLUMNS} FROM terminals WHERE id = $1", terminal_id
    )
    if row is None:
        raise NotFound("no such terminal", field="terminal_id")
    return TerminalRow(**dict(row))


@owns_transaction
async def do_bind_terminal(tx: Tx, actor: Actor, terminal_id: int) -> TerminalRow:
    """A merchant manager binds this browser to one of the merchant's active POS terminals."""
    terminal = await _terminal(tx, terminal_id)
    if not _works_at(actor, terminal.merchant_id, terminal.school_id, "merchant_manager"):
        raise NotFound("no such terminal", field="terminal_id")
    if terminal.kind != "pos" or terminal.status != "active":
        raise ValidationFailed(
            "only an active POS terminal can be used by the POS page", field="terminal_id"
        )
    await audit.record(
        tx,
        actor,
        "pos.browser_bind",
        school_id=terminal.school_id,
        target_type="terminal",
        target_id=terminal.id,
        after={"sn": terminal.sn},
    )
    return terminal


async def bound_terminal(conn: Conn, actor: Actor, terminal_id: int) -> TerminalRow:
    """The bound terminal, if it is still an active POS of a merchant the actor works for."""
    terminal = await _terminal(conn, terminal_id)
    if not _works_at(actor, terminal.merchant_id, terminal.school_id, *POS_ROLES):
        raise Forbidden("this till is bound to another merchant's terminal", code="POS_NOT_YOURS")
    if terminal.status != "active" or terminal.kind != "pos":
        raise Forbidden("this terminal is disabled", code="TERMINAL_DISABLED")
    return terminal


def as_signed(terminal: TerminalRow) -> SignedTerminal:
    """The bound terminal as the payment engine's caller; a fresh nonce per request."""
    return SignedTerminal(
        terminal=terminal,
        key_version=terminal.key_version,
        nonce="web-" + secrets.token_urlsafe(24),
        timestamp=int(time.time()),
        body=b"",
    )


def is_payment_code(scanned: str) -> bool:
    """A scanned payment code (QR or Code 128 on the phone) is 20 digits; a card reader types
    the chip UID instead."""
    text = scanned.strip()
    return len(text) == code_rules.CODE_LENGTH and text.isascii() and text.isdigit()


async def card_payer(conn: Conn, school_id: int, scanned: str) -> CardPayer:
    """A card read by a keyboard-wedge reader types its chip UID (hex) and Enter."""
    text = scanned.strip()
    if not UID_RE.fullmatch(text):
        raise ValidationFailed(
            "hold the card to the reader (a chip UID of 8-20 hex digits)",
            code="CARD_UNREADABLE",
            field="scan",
        )
    number = await conn.fetchval(
        "SELECT number FROM cards WHERE uid = $1 AND school_id = $2", text.upper(), school_id
    )
    if number is None:
        if text.isdigit() and await conn.fetchval(
            "SELECT 1 FROM cards WHERE number = $1 AND school_id = $2", text, school_id
        ):  # the cashier typed the number printed on the card: the till reads the chip
            raise ValidationFailed(
                "that is the number printed on the card; hold the card to the reader "
                "(the till reads the chip UID)",
                code="CARD_NUMBER_TYPED",
                field="scan",
            )
        raise NotFound("this card is not known here", code="CARD_UNKNOWN", field="scan")
    return CardPayer(number, text.upper())


async def takings(
    conn: Conn, actor: Actor, merchant_id: int, school_id: int, day: date
) -> list[dict[str, Any]]:
    """Today's takings per window (outlet) and terminal: payments, amount, refunds, net."""
    if not _works_at(actor, merchant_id, school_id, *POS_ROLES):
        actor.require("settlement", school_id=school_id)
    rows = await conn.fetch(
        """SELECT o.name AS outlet, t.sn AS terminal, t.location,
                  count(*) FILTER (WHERE p.status = 'booked') AS payments,
                  coalesce(sum(p.amount) FILTER (WHERE p.status = 'booked'), 0)::bigint AS amount,
                  coalesce(sum(p.refunded) FILTER (WHERE p.status = 'booked'), 0)::bigint
                      AS refunded
             FROM payments p JOIN terminals t ON t.school_id = p.school_id AND t.id = p.terminal_id
             LEFT JOIN outlets o ON o.school_id = p.school_id AND o.id = p.outlet_id
            WHERE p.school_id = $3 AND p.merchant_id = $1 AND p.business_date = $2
            GROUP BY o.name, t.sn, t.location ORDER BY o.name NULLS LAST, t.sn""",
        merchant_id,
        day,
        school_id,
    )
    return [dict(r) | {"net": int(r["amount"]) - int(r["refunded"])} for r in rows]


async def recent_payments(
    conn: Conn, terminal: TerminalRow, *, limit: int = 10
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT p.id, p.amount, p.refunded, p.status, p.method, p.created_at,
                  left(s.name, 1) || repeat('*', greatest(char_length(s.name) - 1, 1)) AS holder
             FROM payments p JOIN persons s ON s.school_id = p.school_id AND s.id = p.person_id
            WHERE p.school_id = $3 AND p.terminal_id = $1 AND p.business_date = cc_business_date($3)
            ORDER BY p.id DESC LIMIT $2""",
        terminal.id,
        limit,
        terminal.school_id,
    )
    return [dict(r) for r in rows]
