"""Visitors and temporary cards: the card center issues a visiting scholar or correspondence
student a temporary card for a window and a few door groups. Readers refuse it outside the
window on their own (the window is in their list); when the window ends the card expires by
itself (jobs.py), and leaves every list at the next sync."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from campuscard.access import model
from campuscard.cards import lifecycle
from campuscard.db.pool import PgPool
from campuscard.db.tx import Tx, owns_transaction, transaction
from campuscard.people import directory
from campuscard.platform import audit
from campuscard.platform.actors import SYSTEM, Actor
from campuscard.platform.errors import DomainError, ValidationFailed

MAX_DAYS = 366
CARD_FIELDS = {"number": "card_number", "uid": "card_uid"}


@dataclass(frozen=True)
class VisitorCard:
    visitor_id: int
    person_id: int
    card_id: int
    card_number: str
    valid_from: datetime
    valid_until: datetime
    grant_ids: list[int]


@owns_transaction
async def issue_visitor_card(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    name: str,
    number: str,
    phone: str | None,
    card_number: str,
    card_uid: str,
    host: str,
    purpose: str,
    valid_from: datetime,
    valid_until: datetime,
    group_ids: list[int],
    schedule_id: int,
) -> VisitorCard:
    """A visitor record, a temporary card and one grant per door group, all for the window."""
    actor.require(*model.GRANT_ROLES, school_id=school_id)
    name = model.check_name(name)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", number):
        raise ValidationFailed("number: 1-32 letters, digits, _ or -", field="number")
    if phone is not None and not re.fullmatch(r"\+?[0-9]{5,20}", phone):
        raise ValidationFailed("phone: 5-20 digits, an optional leading +", field="phone")
    if len(host) > 64:
        raise ValidationFailed("host: at most 64 characters", field="host")
    if len(purpose) > 200:
        raise ValidationFailed("purpose: at most 200 characters", field="purpose")
    start = model.to_minute(valid_from, "valid_from")
    end = model.to_minute(valid_until, "valid_until")
    assert start is not None
    assert end is not None
    if end <= start:
        raise ValidationFailed("valid_until must be after valid_from", field="valid_until")
    if (end - start).days > MAX_DAYS:
        raise ValidationFailed(
            f"a visitor card is valid for at most {MAX_DAYS} days", field="valid_until"
        )
    if not group_ids:
        raise ValidationFailed("name at least one door group", field="group_ids")
    person_id = await directory.create_person.in_tx(
        tx,
        actor,
        school_id,
        directory.PersonData(kind="visitor", number=number, name=name, phone=phone),
    )
    # a backstop for the card's own expiry job; this module's job expires it at the minute
    last_day = await tx.fetchval(
        "SELECT ($1::timestamptz AT TIME ZONE timezone)::date + 1 FROM schools WHERE id = $2",
        end,
        school_id,
    )
    try:
        card = await lifecycle.issue_card.in_tx(
            tx,
            actor,
            person_id=person_id,
            number=card_number,
            uid=card_uid,
            kind="temporary",
            expires_on=last_day,
            reason="visitor",
        )
    except DomainError as err:  # the card's own fields, named as this use case names them
        if err.field not in CARD_FIELDS:
            raise
        raise type(err)(
            err.message, code=err.code, field=CARD_FIELDS[err.field], status=err.status
        ) from err
    grants = [
        await model.grant_in_tx(
            tx,
            actor,
            school_id,
            subject="person",
            subject_value=person_id,
            group_id=g,
            schedule_id=schedule_id,
            valid_from=start,
            valid_until=end,
            note=f"visitor: {purpose}"[:200],
        )
        for g in sorted(set(group_ids))
    ]
    visitor_id: int = await tx.fetchval(
        """INSERT INTO access_visitors(school_id, person_id, card_id, host, purpose, valid_from,
                                       valid_until, issued_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
        school_id,
        person_id,
        card["id"],
        host,
        purpose,
        start,
        end,
        actor.name,
    )
    await audit.record(
        tx,
        actor,
        "access.visitor.issue",
        school_id=school_id,
        target_type="access_visitor",
        target_id=visitor_id,
        after={"card": card["number"], "from": start.isoformat(), "until": end.isoformat()},
    )
    return VisitorCard(visitor_id, person_id, card["id"], card["number"], start, end, grants)


async def expire_visitors(pool: PgPool, *, limit: int = 200) -> int:
    """Visitors whose window has ended: the card expires (blacklisted, off the door lists).
    Up to ``limit``, school by school: on Citus a statement that locks rows names its school."""
    done = 0
    async with transaction(pool) as tx:
        for school_id in [r["id"] for r in await tx.fetch("SELECT id FROM schools ORDER BY id")]:
            if done >= limit:
                break
            rows = await tx.fetch(
                """SELECT id, card_id FROM access_visitors
                    WHERE school_id = $2 AND state = 'active' AND valid_until <= now()
                    ORDER BY valid_until LIMIT $1 FOR UPDATE SKIP LOCKED""",
                limit - done,
                school_id,
            )
            for r in rows:
                await lifecycle.expire_card(
                    tx, SYSTEM, school_id, r["card_id"], reason="visitor window ended"
                )
                await tx.execute(
                    "UPDATE access_visitors SET state = 'expired' WHERE school_id = $1 AND id = $2",
                    school_id,
                    r["id"],
                )
                done += 1
    return done
