"""Personal readers: a card reader at home or in the office (a personal POS), registered by the
card center bound to exactly one card. It refuses every other card; with its card and the
cardholder's PIN it pays that cardholder's orders. It signs its requests like every terminal
(docs/terminal-protocol.md, section 13)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction
from campuscard.orders import buying, checkout, queries
from campuscard.payments import terminals
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, DomainError, NotFound, ValidationFailed


@dataclass(frozen=True)
class Reader:
    school_id: int
    terminal_id: int
    sn: str
    card_id: int
    person_id: int


async def reader_of(conn: Conn | PgPool, terminal: Any) -> Reader:
    """The personal reader behind a signed terminal; any other kind is refused."""
    if terminal.kind != "personal":
        raise DomainError(
            "only a personal reader pays orders this way",
            code="NOT_A_PERSONAL_READER",
            field="terminal",
            status=403,
        )
    row = await conn.fetchrow(
        """SELECT t.card_id, c.person_id FROM terminals t
             JOIN cards c ON c.school_id = t.school_id AND c.id = t.card_id
            WHERE t.school_id = $1 AND t.id = $2""",
        terminal.school_id,
        terminal.id,
    )
    assert row is not None  # a personal reader always has its card (CHECK)
    return Reader(terminal.school_id, terminal.id, terminal.sn, row["card_id"], row["person_id"])


@owns_transaction
async def do_register_personal_reader(
    tx: Tx,
    actor: Actor,
    settings: Settings,
    school_id: int,
    *,
    sn: str,
    card_number: str,
    location: str = "",
) -> dict[str, Any]:
    """The card center registers a reader for one card; the key is shown once."""
    actor.require("card_center", "school_admin", school_id=school_id)
    if len(location) > 100:
        raise ValidationFailed("location is at most 100 characters", field="location")
    card = await tx.fetchrow(
        "SELECT id, state, person_id FROM cards WHERE school_id = $1 AND number = $2",
        school_id,
        card_number,
    )
    if card is None:
        raise NotFound("no such card in this school", field="card_number")
    if card["state"] != "active":
        raise Conflict(
            f"the card is {card['state']}: only an active card gets a reader",
            code="CARD_NOT_ACTIVE",
            field="card_number",
        )
    await terminals.claim_serial(tx, sn)
    try:
        row = await tx.fetchrow(
            """INSERT INTO terminals(school_id, sn, kind, card_id, location)
               VALUES ($1, $2, 'personal', $3, $4) RETURNING id, key_version""",
            school_id,
            sn,
            card["id"],
            location,
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"terminal {sn!r} is already registered", field="sn") from err
    except asyncpg.CheckViolationError as err:
        raise ValidationFailed("sn must be 4-40 of [A-Za-z0-9_-]", field="sn") from err
    assert row is not None
    await audit.record(
        tx,
        actor,
        "terminal.register",
        school_id=school_id,
        target_type="terminal",
        target_id=row["id"],
        after={"sn": sn, "kind": "personal", "card": card_number, "location": location},
    )
    return {
        "id": row["id"],
        "sn": sn,
        "kind": "personal",
        "card_number": card_number,
        "key_version": row["key_version"],
        "key": terminals.terminal_key_hex(settings, sn, row["key_version"]),
    }


async def _check_card(tx: Tx, reader: Reader, card_number: str, card_uid: str) -> None:
    card = await tx.fetchrow(
        "SELECT id, uid, state FROM cards WHERE school_id = $1 AND number = $2",
        reader.school_id,
        card_number,
    )
    if card is None or card["id"] != reader.card_id or (card["uid"] or "") != card_uid.upper():
        raise DomainError(
            "this reader belongs to another card",
            code="CARD_NOT_BOUND",
            field="card_number",
            status=403,
        )
    if card["state"] != "active":
        raise DomainError(
            f"this card is {card['state']}", code="CARD_NOT_ACTIVE", field="card_number", status=403
        )


@dataclass(frozen=True)
class ReaderAnswer:
    view: dict[str, Any] | None
    refusal: DomainError | None


@owns_transaction
async def do_pay_order(
    tx: Tx,
    settings: Settings,
    reader: Reader,
    order_id: int,
    *,
    card_number: str,
    card_uid: str,
    pin: str,
) -> ReaderAnswer:
    """Card + PIN at the reader: the order of the reader's cardholder goes into a hold.

    A wrong PIN is counted (with the card's other PIN tries) and commits; the refusal is
    returned, not raised, so the count stays."""
    await _check_card(tx, reader, card_number, card_uid)
    refusal = await checkout.pin_refusal(tx, settings, reader.school_id, reader.person_id, pin)
    if refusal is not None:
        return ReaderAnswer(None, refusal)
    holder = Actor(
        name=f"terminal:{reader.sn}", school_id=reader.school_id, person_id=reader.person_id
    )
    view = await buying.pay_in_tx(
        tx,
        holder,
        reader.school_id,
        order_id,
        via="reader",
        by=f"terminal:{reader.sn}",
        pin_checked=True,
    )
    return ReaderAnswer(view, None)


async def orders_to_pay(conn: Conn | PgPool, reader: Reader) -> list[dict[str, Any]]:
    """The reader's cardholder's orders waiting for payment."""
    rows = await queries.orders_of_person(conn, reader.school_id, reader.person_id)
    return [o for o in rows if o["state"] == "wait_buyer_pay"]
