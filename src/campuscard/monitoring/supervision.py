"""The school's supervision view: alerts counted by rule, class and day; a counsellor sees the
risk tier of the students of their classes, not the payments behind it; opening the alerts of
one student (the drill-down) needs a reason and is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.monitoring.rules import risk_tier
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound, ValidationFailed

SUPERVISORS = ("counsellor", "school_admin")
SCHOOL_WIDE = ("school_admin",)  # the school's own supervision; a counsellor sees their classes


@dataclass(frozen=True)
class Count:
    business_date: date
    rule: str
    class_name: str
    alerts: int


@dataclass(frozen=True)
class Tier:
    person_id: int
    number: str
    name: str
    class_name: str
    tier: str


async def classes_in_scope(
    conn: Conn, actor: Actor, school_id: int, *, school_wide: tuple[str, ...]
) -> list[int] | None:
    """The classes whose students ``actor`` may see: None for the whole school (a role in
    ``school_wide`` in this school, or a platform admin), else the classes the counsellor
    looks after (``monitoring_counsellor_classes``; none: an empty list)."""
    if actor.is_platform_admin or any(
        g.role in school_wide and g.school_id == school_id for g in actor.grants
    ):
        return None
    rows = await conn.fetch(
        "SELECT class_id FROM monitoring_counsellor_classes WHERE school_id = $1 AND user_id = $2",
        school_id,
        actor.user_id,
    )
    return [int(r["class_id"]) for r in rows]


async def _classes(conn: Conn, actor: Actor, school_id: int) -> list[int] | None:
    """The classes a counsellor looks after; None: every class (a school admin)."""
    actor.require(*SUPERVISORS, school_id=school_id)
    return await classes_in_scope(conn, actor, school_id, school_wide=SCHOOL_WIDE)


async def dashboard(
    conn: Conn, actor: Actor, school_id: int, *, since: date, until: date
) -> list[Count]:
    if until < since or (until - since).days > 366:
        raise ValidationFailed("give at most a year, until on or after since", field="until")
    classes = await _classes(conn, actor, school_id)
    rows = await conn.fetch(
        """SELECT a.business_date, a.rule, coalesce(c.name, '') AS class_name, count(*) AS n
             FROM monitoring_alerts a
             JOIN persons p ON p.school_id = a.school_id AND p.id = a.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE a.school_id = $1 AND a.business_date BETWEEN $2 AND $3
              AND ($4::bigint[] IS NULL OR p.class_id = ANY($4))
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
        school_id,
        since,
        until,
        classes,
    )
    return [Count(r["business_date"], r["rule"], r["class_name"], r["n"]) for r in rows]


async def risk_tiers(conn: Conn, actor: Actor, school_id: int) -> list[Tier]:
    """Students with alerts in the last 30 days and their tier: no amounts, no payments."""
    classes = await _classes(conn, actor, school_id)
    rows = await conn.fetch(
        """SELECT p.id, p.number, p.name, coalesce(c.name, '') AS class_name,
                  array_agg(a.severity) AS severities
             FROM monitoring_alerts a
             JOIN persons p ON p.school_id = a.school_id AND p.id = a.person_id
             LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id
            WHERE a.school_id = $1 AND a.created_at > now() - interval '30 days'
              AND ($2::bigint[] IS NULL OR p.class_id = ANY($2))
            GROUP BY 1, 2, 3, 4 ORDER BY p.number""",
        school_id,
        classes,
    )
    return [
        Tier(r["id"], r["number"], r["name"], r["class_name"], risk_tier(list(r["severities"])))
        for r in rows
    ]


@owns_transaction
async def do_drill_down(
    tx: Tx, actor: Actor, school_id: int, person_id: int, *, reason: str
) -> list[dict[str, Any]]:
    """The alerts behind one student's tier, with their reasons; audited with the reason given."""
    if not 4 <= len(reason.strip()) <= 200:
        raise ValidationFailed("say why, in 4 to 200 characters", field="reason")
    classes = await _classes(tx, actor, school_id)
    class_id = await tx.fetchval(
        "SELECT class_id FROM persons WHERE school_id = $1 AND id = $2", school_id, person_id
    )
    if (class_id is None and classes is not None) or (
        classes is not None and class_id not in classes
    ):
        raise NotFound("student not found", field="person_id")
    rows = await tx.fetch(
        """SELECT id, rule, severity, reason, delivery, business_date FROM monitoring_alerts
            WHERE school_id = $1 AND person_id = $2 AND created_at > now() - interval '30 days'
            ORDER BY id DESC""",
        school_id,
        person_id,
    )
    await audit.record(
        tx,
        actor,
        "monitoring.drill_down",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"reason": reason.strip(), "alerts": len(rows)},
    )
    return [
        {
            "id": r["id"],
            "rule": r["rule"],
            "severity": r["severity"],
            "reason": r["reason"],
            "delivery": r["delivery"],
            "business_date": r["business_date"].isoformat(),
        }
        for r in rows
    ]
