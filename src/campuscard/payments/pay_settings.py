"""A cardholder's payment settings: the PIN (set/change, failures, reset) and limits.

The PIN is never stored: the database keeps sha256(HMAC(pepper, pin) ":" person id), the pepper
derived from the master key (docs/decisions/0011-pin-hashing.md). The school's limits can be
overridden per person by an operator; the holder may only lower their own.
"""

from __future__ import annotations

from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger.money import fmt
from campuscard.payments import rules
from campuscard.platform import audit, auth, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Forbidden, NotFound, Unauthorized, ValidationFailed


async def school_rules(conn: Conn, school_id: int) -> rules.PaymentRules:
    settings = await conn.fetchval("SELECT settings FROM schools WHERE id = $1", school_id)
    return rules.rules_from_settings(settings)


@owns_transaction
async def set_school_rules(
    tx: Tx, actor: Actor, school_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    actor.require("school_admin", "settlement", school_id=school_id)
    current = await tx.fetchval("SELECT settings FROM schools WHERE id = $1 FOR UPDATE", school_id)
    before = rules.rules_from_settings(current)
    after = rules.check_rules(changes, base=before)
    stored = {k: v for k, v in after.to_json().items() if k != "purse_order"}
    await tx.execute(
        "UPDATE schools SET settings = jsonb_set(settings, '{payments}', $2) WHERE id = $1",
        school_id,
        stored,
    )
    await audit.record(
        tx,
        actor,
        "school.payment_rules",
        school_id=school_id,
        target_type="school",
        target_id=school_id,
        before=before.to_json(),
        after=after.to_json(),
    )
    return rules_view(after)


def rules_view(r: rules.PaymentRules) -> dict[str, Any]:
    data = r.to_json()
    for key in ("per_tx_limit", "daily_limit", "pin_over_per_tx", "pin_over_daily"):
        data[key] = fmt(data[key])
    return data


async def _person_school(conn: Conn, person_id: int) -> int:
    school_id = await conn.fetchval("SELECT school_id FROM persons WHERE id = $1", person_id)
    if school_id is None:
        raise NotFound("no such person", field="person_id")
    return int(school_id)


def _is_holder(actor: Actor, person_id: int) -> bool:
    return actor.person_id == person_id


async def get_settings(conn: Conn, actor: Actor, person_id: int) -> dict[str, Any]:
    school_id = await _person_school(conn, person_id)
    if not (_is_holder(actor, person_id) or actor.has("card_center", school_id=school_id)):
        raise NotFound("no such person", field="person_id")
    school = await school_rules(conn, school_id)
    row = await conn.fetchrow(
        "SELECT pin_hash IS NOT NULL AS pin_set, pin_failures, per_tx_limit, daily_limit, "
        "pin_set_at FROM pay_settings WHERE person_id = $1",
        person_id,
    )
    spent = await conn.fetchval(
        "SELECT spent FROM accounts WHERE school_id = $2 AND person_id = $1 AND kind = 'purse' "
        "AND purse = 'cash' AND spent_on = cc_business_date($2)",
        person_id,
        school_id,
    )
    per_tx = row["per_tx_limit"] if row and row["per_tx_limit"] else school.per_tx_limit
    daily = row["daily_limit"] if row and row["daily_limit"] else school.daily_limit
    return {
        "person_id": person_id,
        "pin_set": bool(row and row["pin_set"]),
        "pin_locked": bool(row and row["pin_failures"] >= school.pin_max_failures),
        "pin_failures": row["pin_failures"] if row else 0,
        "per_tx_limit": fmt(per_tx),
        "daily_limit": fmt(daily),
        "spent_today": fmt(int(spent or 0)),
        "school": rules_view(school),
    }


@owns_transaction
async def set_pin(
    tx: Tx,
    actor: Actor,
    settings: Settings,
    *,
    person_id: int,
    new_pin: str,
    password: str | None = None,
) -> dict[str, Any]:
    """The holder sets or changes their PIN, confirming with their sign-in password (this also
    unlocks a PIN locked by wrong tries); the card center may reset it at the counter."""
    school_id = await _person_school(tx, person_id)
    holder = _is_holder(actor, person_id)
    if not holder and not actor.has("card_center", school_id=school_id):
        raise NotFound("no such person", field="person_id")
    rules.check_pin_format(new_pin, "new_pin")
    if holder:
        if not password:
            raise ValidationFailed(
                "confirm with your password", code="FIELD_REQUIRED", field="password"
            )
        stored = await tx.fetchval("SELECT password_hash FROM users WHERE id = $1", actor.user_id)
        if stored is None or not await auth.check_password(stored, password):
            raise Unauthorized("the password is wrong", code="PASSWORD_WRONG", field="password")
    token = rules.pin_token(rules.pin_pepper(settings.master_key.get_secret_value()), new_pin)
    await tx.execute(
        """INSERT INTO pay_settings(person_id, school_id, pin_hash, pin_failures, pin_set_at)
           VALUES ($1, $2, $3, 0, now())
           ON CONFLICT (school_id, person_id) DO UPDATE SET pin_hash = EXCLUDED.pin_hash,
               pin_failures = 0, pin_set_at = EXCLUDED.pin_set_at,
               updated_at = EXCLUDED.pin_set_at""",
        person_id,
        school_id,
        rules.pin_hash(token, person_id),
    )
    await audit.record(
        tx,
        actor,
        "card.set_pin",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"by": "holder" if holder else "card_center"},
    )
    await notifications.notify(
        tx,
        school_id=school_id,
        kind="card.pin_changed",
        person_id=person_id,
        title=i18n.message("notice.pin_changed.title"),
        body=i18n.message("notice.pin_changed.body"),
    )
    return {"person_id": person_id, "pin_set": True}


@owns_transaction
async def set_limits(
    tx: Tx,
    actor: Actor,
    *,
    person_id: int,
    per_tx_limit: int | None,
    daily_limit: int | None,
) -> dict[str, Any]:
    """Set a person's own limits (None: back to the school's). The holder may only lower them
    below the school's; the card center may set any."""
    school_id = await _person_school(tx, person_id)
    holder = _is_holder(actor, person_id)
    operator = actor.has("card_center", "settlement", school_id=school_id)
    if not holder and not operator:
        raise NotFound("no such person", field="person_id")
    school = await school_rules(tx, school_id)
    for field, value, cap in (
        ("per_tx_limit", per_tx_limit, school.per_tx_limit),
        ("daily_limit", daily_limit, school.daily_limit),
    ):
        if value is not None and value <= 0:
            raise ValidationFailed(f"{field} must be more than zero", field=field)
        if value is not None and value > cap and not operator:
            raise Forbidden(
                f"{field} can only be lowered (the school's is {fmt(cap)})",
                code="LIMIT_ABOVE_SCHOOL",
                field=field,
            )
    if per_tx_limit is not None and daily_limit is not None and per_tx_limit > daily_limit:
        raise ValidationFailed("per_tx_limit cannot exceed daily_limit", field="per_tx_limit")
    before = await tx.fetchrow(
        "SELECT per_tx_limit, daily_limit FROM pay_settings WHERE person_id = $1", person_id
    )
    await tx.execute(
        """INSERT INTO pay_settings(person_id, school_id, per_tx_limit, daily_limit)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (school_id, person_id) DO UPDATE SET per_tx_limit = EXCLUDED.per_tx_limit,
               daily_limit = EXCLUDED.daily_limit, updated_at = EXCLUDED.updated_at""",
        person_id,
        school_id,
        per_tx_limit,
        daily_limit,
    )
    await audit.record(
        tx,
        actor,
        "card.set_limits",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        before=dict(before) if before else None,
        after={
            "per_tx_limit": per_tx_limit,
            "daily_limit": daily_limit,
            "by": "holder" if holder else "operator",
        },
    )
    return await get_settings(tx, actor, person_id)
