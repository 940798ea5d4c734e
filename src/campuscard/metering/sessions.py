"""A metered session: the device asks to start (a hold is placed, the authorised amount and the
units it buys go back), reports the units used at the end (the price is captured, the rest of
the hold released), or never comes back (the hold expires and releases everything).

A late report still captures up to the hold while the hold is open: the hold's timeout (the
kind's, from the school's settings) is longer than a session may run, and the difference is the
grace window. After the hold expired the report is refused and nothing is charged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger import holds
from campuscard.ledger.holds_rules import HoldRequest
from campuscard.ledger.money import fmt
from campuscard.metering import queries
from campuscard.metering.rules import Tariff, authorise, parse_tariff, session_charge
from campuscard.platform.errors import Conflict, DomainError, NotFound, ValidationFailed


@dataclass(frozen=True)
class SessionAnswer:
    session_id: str
    kind: str
    unit: str
    state: str
    authorised: str  # yuan
    max_units: int  # what the authorised amount buys; the device stops there
    units: int | None = None
    charged: str | None = None  # yuan
    released: str | None = None
    replayed: bool = False


def affordable_units(tariff: Tariff, card_kind: str, used_before: int, authorised: int) -> int:
    """The most units the authorised amount pays for today, at most the session's maximum."""
    ladder = tariff.ladder(card_kind)
    low, high = 0, tariff.max_session_units
    while low < high:  # the price only grows with the units
        mid = (low + high + 1) // 2
        if session_charge(ladder, used_before, mid) <= authorised:
            low = mid
        else:
            high = mid - 1
    return low


@owns_transaction
async def do_configure_meter(
    tx: Tx, school_id: int, terminal_id: int, tariff_json: dict[str, Any]
) -> Tariff:
    """Make a POS-kind terminal a metered device with this tariff (or change its tariff)."""
    tariff = parse_tariff(tariff_json)
    kind_ok = await tx.fetchval(
        "SELECT kind = 'pos' FROM terminals WHERE id = $1 AND school_id = $2",
        terminal_id,
        school_id,
    )
    if kind_ok is None:
        raise NotFound("no such terminal in this school", field="terminal_id")
    if not kind_ok:
        raise ValidationFailed("a metered device is a merchant's terminal", field="terminal_id")
    await tx.execute(
        """INSERT INTO meters(school_id, terminal_id, kind, tariff) VALUES ($1, $2, $3, $4)
           ON CONFLICT (school_id, terminal_id)
           DO UPDATE SET kind = $3, tariff = $4, updated_at = EXCLUDED.updated_at""",
        school_id,
        terminal_id,
        tariff.kind,
        json.dumps(tariff.to_json()),
    )
    return tariff


async def _meter(tx: Tx, school_id: int, terminal_id: int) -> tuple[dict[str, Any], Tariff]:
    meter = await queries.meter(tx, school_id, terminal_id)
    if meter is None:
        raise NotFound("this terminal is not a metered device", field="terminal")
    tariff = meter["tariff"]
    return meter, parse_tariff(tariff if isinstance(tariff, dict) else json.loads(tariff))


def _view(
    s: dict[str, Any], tariff: Tariff, max_units: int, *, replayed: bool = False
) -> SessionAnswer:
    ended = s["state"] == "ended"
    return SessionAnswer(
        session_id=s["session_key"],
        kind=s["kind"],
        unit=tariff.unit,
        state=s["state"],
        authorised=fmt(s["authorised"]),
        max_units=max_units,
        units=s["units"],
        charged=fmt(s["amount"]) if ended else None,
        released=fmt(s["authorised"] - s["amount"]) if ended else None,
        replayed=replayed,
    )


@owns_transaction
async def do_start_session(
    tx: Tx, school_id: int, terminal_id: int, *, session_key: str, card_number: str, card_uid: str
) -> SessionAnswer:
    meter, tariff = await _meter(tx, school_id, terminal_id)
    existing = await tx.fetchrow(
        """SELECT * FROM meter_sessions
            WHERE school_id = $1 AND terminal_id = $2 AND session_key = $3""",
        school_id,
        terminal_id,
        session_key,
    )
    if existing is not None:  # the device resent its start: the same answer
        if existing["card_id"] != await tx.fetchval(
            "SELECT id FROM cards WHERE school_id = $1 AND number = $2", school_id, card_number
        ):
            raise Conflict(
                "this session id was used for another card",
                code="IDEMPOTENCY_KEY_REUSED",
                field="session_id",
            )
        s = dict(existing)
        used = s["used_before"] or 0
        return _view(
            s,
            tariff,
            affordable_units(tariff, s["card_kind"], used, s["authorised"]),
            replayed=True,
        )

    card = await tx.fetchrow(
        """SELECT c.id, c.person_id, c.kind, c.state, c.uid, p.account_status
             FROM cards c JOIN persons p ON p.school_id = c.school_id AND p.id = c.person_id
            WHERE c.school_id = $1 AND c.number = $2""",
        school_id,
        card_number,
    )
    if card is None:
        raise NotFound("no such card in this school", code="CARD_UNKNOWN", field="card_number")
    if card["uid"] != card_uid.upper():
        raise DomainError(
            "the chip UID does not belong to this card number",
            code="CARD_UID_MISMATCH",
            field="card_uid",
            status=403,
        )
    if card["state"] != "active" or card["account_status"] != "active":
        raise DomainError(
            "this card cannot pay (card "
            + card["state"]
            + ", account "
            + card["account_status"]
            + ")",
            code="CARD_NOT_ACTIVE",
            field="card_number",
            status=403,
        )
    person = card["person_id"]
    # a session whose device never came back ends when its hold has expired
    await tx.execute(
        """UPDATE meter_sessions s SET state = 'expired', ended_at = h.resolved_at
             FROM holds h
            WHERE s.school_id = $1 AND s.person_id = $2 AND s.kind = $3 AND s.state = 'open'
              AND h.school_id = s.school_id AND h.hold_key = s.hold_key AND h.state <> 'pending'""",
        school_id,
        person,
        tariff.kind,
    )
    if await tx.fetchval(
        """SELECT 1 FROM meter_sessions
            WHERE school_id = $1 AND person_id = $2 AND kind = $3 AND state = 'open'""",
        school_id,
        person,
        tariff.kind,
    ):
        raise Conflict(
            f"this card already has a {tariff.kind} session running",
            code="SESSION_RUNNING",
            field="card_number",
        )
    day = await tx.fetchval("SELECT cc_business_date($1)", school_id)
    today = await queries.today(tx, school_id, person, tariff.kind, day)
    amount = authorise(tariff, today, datetime.now(UTC))
    hold_key = f"meter-{terminal_id}-{session_key}"
    placed = await holds.place_hold(
        tx,
        school_id,
        HoldRequest(
            hold_id=hold_key,
            person_id=person,
            amount=amount,
            kind=tariff.kind,
            owner_kind="device_session",
            owner_id=f"{meter['sn']}:{session_key}",
            payee_account_id=meter["payee"],
            memo=meter["sn"],
        ),
        actor=f"terminal:{meter['sn']}",
    )
    placed.raise_refusal()
    row = await tx.fetchrow(
        """INSERT INTO meter_sessions(school_id, terminal_id, session_key, kind, person_id, card_id,
                                      card_kind, hold_key, authorised, business_date)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *""",
        school_id,
        terminal_id,
        session_key,
        tariff.kind,
        person,
        card["id"],
        card["kind"],
        hold_key,
        amount,
        day,
    )
    assert row is not None
    return _view(dict(row), tariff, affordable_units(tariff, card["kind"], today.units, amount))


@owns_transaction
async def do_end_session(
    tx: Tx, school_id: int, terminal_id: int, *, session_key: str, units: int
) -> SessionAnswer:
    """The device reports the units used: the price (at most the hold) is captured."""
    if type(units) is not int or units < 0:
        raise ValidationFailed("units must be a whole number ≥ 0", field="units")
    _, tariff = await _meter(tx, school_id, terminal_id)
    found = await tx.fetchrow(
        """SELECT * FROM meter_sessions
            WHERE school_id = $1 AND terminal_id = $2 AND session_key = $3 FOR UPDATE""",
        school_id,
        terminal_id,
        session_key,
    )
    if found is None:
        raise NotFound("no such session on this device", code="SESSION_UNKNOWN", field="session_id")
    s = dict(found)
    if s["state"] == "ended":
        if s["units"] != units:
            raise Conflict(
                "this session already ended with other units",
                code="SESSION_ENDED",
                field="units",
            )
        return _view(s, tariff, s["units"], replayed=True)
    if units > tariff.max_session_units:
        raise ValidationFailed(
            f"units are more than a session may run ({tariff.max_session_units})", field="units"
        )
    # the ladder counts the units the person used earlier that day
    before = await tx.fetchval(
        """SELECT coalesce(sum(units), 0)::bigint FROM meter_sessions
            WHERE school_id = $1 AND person_id = $2 AND kind = $3 AND business_date = $4
              AND state = 'ended'""",
        school_id,
        s["person_id"],
        s["kind"],
        s["business_date"],
    )
    charge = min(session_charge(tariff.ladder(s["card_kind"]), before, units), s["authorised"])
    actor = f"terminal:{terminal_id}"
    if charge > 0:
        answer = await holds.capture_hold(tx, school_id, s["hold_key"], charge, actor=actor)
    else:
        answer = await holds.void_hold(tx, school_id, s["hold_key"], actor=actor)
    if not answer.ok:
        code = answer.body["error"]["code"]
        if code == "HOLD_EXPIRED":
            raise Conflict(
                "the session's hold expired before its report came: nothing was charged",
                code="SESSION_EXPIRED",
                field="session_id",
            )
        answer.raise_refusal()
    row = await tx.fetchrow(
        """UPDATE meter_sessions SET state = 'ended', units = $3, amount = $4, used_before = $5,
                                     ended_at = now()
            WHERE school_id = $1 AND id = $2 RETURNING *""",
        school_id,
        s["id"],
        units,
        charge,
        before,
    )
    assert row is not None
    return _view(dict(row), tariff, units)
