"""Who hears about a student's alerts, as the people concerned chose it (each change audited).

- The student sets their own quiet hours and whether alerts also come by SMS.
- A parent linked to the student opts in, chooses which alerts, their own low-balance and
  large-spend amounts, SMS or not, and their own quiet hours.
- Where the school requires it (adult students: the default), a parent hears nothing until the
  student consents for that parent; the student may withdraw consent at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.monitoring import queries
from campuscard.monitoring.rules import ALERT_RULES
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound, ValidationFailed


@dataclass(frozen=True)
class StudentPrefs:
    person_id: int
    sms: bool
    quiet_start: str | None
    quiet_end: str | None


@dataclass(frozen=True)
class GuardianPrefs:
    person_id: int
    user_id: int
    enabled: bool
    rules: list[str]
    low_balance: int | None
    single_spend: int | None
    sms: bool
    quiet_start: str | None
    quiet_end: str | None
    consent: bool


def _hm(value: time | None) -> str | None:
    return value.strftime("%H:%M") if value is not None else None


def check_quiet(start: time | None, end: time | None) -> None:
    if (start is None) != (end is None):
        raise ValidationFailed("give both quiet_start and quiet_end, or neither", field="quiet_end")
    if start is not None and start == end:
        raise ValidationFailed("quiet hours must not start and end at once", field="quiet_end")


async def _cardholder(tx: Tx, actor: Actor) -> tuple[int, int]:
    if actor.person_id is None:
        raise NotFound("no cardholder is linked to this sign-in", field="person")
    school_id = await tx.fetchval("SELECT school_id FROM persons WHERE id = $1", actor.person_id)
    if school_id is None:
        raise NotFound("person not found", field="person")
    return int(school_id), actor.person_id


@owns_transaction
async def do_set_student_prefs(
    tx: Tx, actor: Actor, *, sms: bool, quiet_start: time | None, quiet_end: time | None
) -> StudentPrefs:
    check_quiet(quiet_start, quiet_end)
    school_id, person_id = await _cardholder(tx, actor)
    await tx.execute(
        """INSERT INTO monitoring_student_prefs(school_id, person_id, sms, quiet_start, quiet_end)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (school_id, person_id) DO UPDATE
                 SET sms = $3, quiet_start = $4, quiet_end = $5,
                     updated_at = EXCLUDED.updated_at""",
        school_id,
        person_id,
        sms,
        quiet_start,
        quiet_end,
    )
    prefs = StudentPrefs(person_id, sms, _hm(quiet_start), _hm(quiet_end))
    await audit.record(
        tx,
        actor,
        "monitoring.student_prefs",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"sms": sms, "quiet_start": prefs.quiet_start, "quiet_end": prefs.quiet_end},
    )
    return prefs


async def _linked(conn: Conn, user_id: int, person_id: int) -> int:
    school_id = await conn.fetchval(
        "SELECT school_id FROM guardian_links WHERE user_id = $1 AND person_id = $2",
        user_id,
        person_id,
    )
    if school_id is None:
        raise NotFound("no such child of this parent", field="person_id")
    return int(school_id)


def _guardian_view(row: Any) -> GuardianPrefs:
    return GuardianPrefs(
        row["person_id"],
        row["user_id"],
        row["enabled"],
        list(row["rules"]),
        row["low_balance"],
        row["single_spend"],
        row["sms"],
        _hm(row["quiet_start"]),
        _hm(row["quiet_end"]),
        row["consent_at"] is not None and row["consent_revoked_at"] is None,
    )


@owns_transaction
async def do_set_guardian_prefs(
    tx: Tx,
    actor: Actor,
    person_id: int,
    *,
    enabled: bool,
    rules: list[str],
    low_balance: int | None,
    single_spend: int | None,
    sms: bool,
    quiet_start: time | None,
    quiet_end: time | None,
) -> GuardianPrefs:
    """A parent's subscription to one child's alerts (opt-in; consent is the student's)."""
    if actor.user_id is None or not actor.has("guardian"):
        raise NotFound("no such child of this parent", field="person_id")
    school_id = await _linked(tx, actor.user_id, person_id)
    for i, rule in enumerate(rules):
        if rule not in ALERT_RULES:
            raise ValidationFailed(f"unknown rule {rule!r}", field=f"rules[{i}]")
    for name, value in (("low_balance", low_balance), ("single_spend", single_spend)):
        if value is not None and value <= 0:
            raise ValidationFailed("must be more than 0", field=name)
    check_quiet(quiet_start, quiet_end)
    row = await tx.fetchrow(
        """INSERT INTO monitoring_guardian_prefs(school_id, person_id, user_id, enabled, rules,
                          low_balance, single_spend, sms, quiet_start, quiet_end)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (school_id, person_id, user_id) DO UPDATE
                 SET enabled = $4, rules = $5, low_balance = $6, single_spend = $7, sms = $8,
                     quiet_start = $9, quiet_end = $10, updated_at = EXCLUDED.updated_at
           RETURNING *""",
        school_id,
        person_id,
        actor.user_id,
        enabled,
        sorted(set(rules)),
        low_balance,
        single_spend,
        sms,
        quiet_start,
        quiet_end,
    )
    view = _guardian_view(row)
    await audit.record(
        tx,
        actor,
        "monitoring.guardian_prefs",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"enabled": enabled, "rules": view.rules, "sms": sms},
    )
    return view


@owns_transaction
async def do_set_consent(tx: Tx, actor: Actor, guardian_user_id: int, *, given: bool) -> bool:
    """The student gives (or withdraws) consent for one linked parent to hear their alerts."""
    school_id, person_id = await _cardholder(tx, actor)
    await _linked(tx, guardian_user_id, person_id)
    await tx.execute(
        """INSERT INTO monitoring_guardian_prefs(school_id, person_id, user_id, enabled,
                                                 consent_at)
           VALUES ($1, $2, $3, false, CASE WHEN $4 THEN now() END)
           ON CONFLICT (school_id, person_id, user_id) DO UPDATE
                 SET consent_at = CASE WHEN $4 THEN EXCLUDED.updated_at
                                       ELSE monitoring_guardian_prefs.consent_at END,
                     consent_revoked_at = CASE WHEN $4 THEN NULL ELSE EXCLUDED.updated_at END,
                     updated_at = EXCLUDED.updated_at""",
        school_id,
        person_id,
        guardian_user_id,
        given,
    )
    await audit.record(
        tx,
        actor,
        "monitoring.consent.give" if given else "monitoring.consent.withdraw",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"guardian_user_id": guardian_user_id},
    )
    return given


async def guardian_prefs_of(conn: Conn, actor: Actor, person_id: int) -> GuardianPrefs | None:
    if actor.user_id is None:
        raise NotFound("no such child of this parent", field="person_id")
    school_id = await _linked(conn, actor.user_id, person_id)
    row = await conn.fetchrow(
        "SELECT * FROM monitoring_guardian_prefs WHERE school_id = $1 AND person_id = $2 "
        "AND user_id = $3",
        school_id,
        person_id,
        actor.user_id,
    )
    return _guardian_view(row) if row else None


async def student_prefs_of(conn: Conn, actor: Actor) -> StudentPrefs:
    """The signed-in student's own choices (SMS on and the school's quiet hours by default)."""
    if actor.person_id is None:
        raise NotFound("no cardholder is linked to this sign-in", field="person")
    row = await conn.fetchrow(
        """SELECT sms, quiet_start, quiet_end FROM monitoring_student_prefs
            WHERE school_id = $1 AND person_id = $2""",
        actor.school_id,
        actor.person_id,
    )
    if row is None:
        return StudentPrefs(actor.person_id, True, None, None)
    return StudentPrefs(actor.person_id, row["sms"], _hm(row["quiet_start"]), _hm(row["quiet_end"]))


@dataclass(frozen=True)
class ParentConsent:
    user_id: int
    name: str
    opted_in: bool  # the parent subscribed to alerts
    consent: bool  # the student agreed


async def parents_of(conn: Conn, actor: Actor) -> list[ParentConsent]:
    """The parents linked to the signed-in student, whether each subscribed to alerts and
    whether the student consented."""
    if actor.person_id is None:
        raise NotFound("no cardholder is linked to this sign-in", field="person")
    rows = await conn.fetch(
        """SELECT l.user_id, coalesce(nullif(u.display_name, ''), u.username) AS name,
                  coalesce(g.enabled, false) AS enabled,
                  g.consent_at IS NOT NULL AND g.consent_revoked_at IS NULL AS consent
             FROM guardian_links l
             JOIN users u ON u.id = l.user_id
             LEFT JOIN monitoring_guardian_prefs g
                    ON g.school_id = l.school_id AND g.person_id = l.person_id
                   AND g.user_id = l.user_id
            WHERE l.school_id = $1 AND l.person_id = $2 ORDER BY l.user_id""",
        actor.school_id,
        actor.person_id,
    )
    return [ParentConsent(r["user_id"], r["name"], r["enabled"], bool(r["consent"])) for r in rows]


async def consent_needed(conn: Conn, school_id: int) -> bool:
    """Whether parents hear only with the student's consent (the school's setting)."""
    return bool((await queries.config(conn, school_id)).get("delivery", "guardian_consent"))
