"""Named reads of the monitoring package (the pages and routes call these, never SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from campuscard.db.pool import Conn, PgPool
from campuscard.monitoring.rules import Config, config_from_rows


@dataclass(frozen=True)
class SchoolClock:
    timezone: str


async def school_clock(conn: Conn, school_id: int) -> SchoolClock:
    tz = await conn.fetchval("SELECT timezone FROM schools WHERE id = $1", school_id)
    return SchoolClock(str(tz or "Asia/Shanghai"))


async def config(conn: Conn, school_id: int) -> Config:
    rows = await conn.fetch(
        "SELECT rule, enabled, thresholds FROM monitoring_rules WHERE school_id = $1", school_id
    )
    return config_from_rows(rows)


async def schools_watching(conn: Conn | PgPool) -> list[int]:
    """Schools with at least one rule switched on."""
    rows = await conn.fetch(
        "SELECT DISTINCT school_id FROM monitoring_rules WHERE enabled ORDER BY school_id"
    )
    return [int(r["school_id"]) for r in rows]


@dataclass(frozen=True)
class StudentChannels:
    phone: str | None
    sms: bool
    quiet_start: time | None
    quiet_end: time | None


async def student_channels(conn: Conn, school_id: int, person_id: int) -> StudentChannels:
    row = await conn.fetchrow(
        """SELECT p.phone, coalesce(s.sms, true) AS sms, s.quiet_start, s.quiet_end
             FROM persons p
             LEFT JOIN monitoring_student_prefs s
                    ON s.school_id = p.school_id AND s.person_id = p.id
            WHERE p.school_id = $1 AND p.id = $2""",
        school_id,
        person_id,
    )
    if row is None:
        return StudentChannels(None, False, None, None)
    return StudentChannels(row["phone"], row["sms"], row["quiet_start"], row["quiet_end"])


@dataclass(frozen=True)
class Delivered:
    rule: str
    created_at: datetime


async def delivered_since(
    conn: Conn, school_id: int, person_id: int, since: datetime
) -> list[Delivered]:
    rows = await conn.fetch(
        """SELECT rule, created_at FROM monitoring_alerts
            WHERE school_id = $1 AND person_id = $2 AND created_at > $3
              AND delivery IN ('sent', 'quiet')""",
        school_id,
        person_id,
        since,
    )
    return [Delivered(r["rule"], r["created_at"]) for r in rows]


@dataclass(frozen=True)
class GuardianPrefs:
    user_id: int
    phone: str | None
    rules: tuple[str, ...]
    low_balance: int | None
    single_spend: int | None
    sms: bool
    quiet_start: time | None
    quiet_end: time | None


async def guardians_listening(
    conn: Conn, school_id: int, person_id: int, need_consent: bool
) -> list[GuardianPrefs]:
    """Parents of the student who opted in, still linked, with consent where it is needed."""
    rows = await conn.fetch(
        """SELECT g.user_id, u.phone, g.rules, g.low_balance, g.single_spend, g.sms,
                  g.quiet_start, g.quiet_end
             FROM monitoring_guardian_prefs g
             JOIN guardian_links l ON l.school_id = g.school_id AND l.user_id = g.user_id
                                  AND l.person_id = g.person_id
             JOIN users u ON u.id = g.user_id AND u.is_active
            WHERE g.school_id = $1 AND g.person_id = $2 AND g.enabled
              AND (NOT $3 OR (g.consent_at IS NOT NULL AND g.consent_revoked_at IS NULL))
            ORDER BY g.user_id""",
        school_id,
        person_id,
        need_consent,
    )
    return [
        GuardianPrefs(
            r["user_id"],
            r["phone"],
            tuple(r["rules"]),
            r["low_balance"],
            r["single_spend"],
            r["sms"],
            r["quiet_start"],
            r["quiet_end"],
        )
        for r in rows
    ]


async def person_name(conn: Conn, school_id: int, person_id: int) -> str:
    name = await conn.fetchval(
        "SELECT name FROM persons WHERE school_id = $1 AND id = $2", school_id, person_id
    )
    return str(name or "")


async def available(conn: Conn, school_id: int, person_id: int) -> int:
    """What the student can spend: balance less money on hold, over their purses, as at the
    engine's clock (``cc_clock()``: now, or the instant the demo's past is replayed at): each
    purse's balance after its last posting by then."""
    total = await conn.fetchval(
        """SELECT coalesce(sum(coalesce((SELECT p.balance_after FROM postings p
                                          WHERE p.school_id = $1 AND p.account_id = a.id
                                            AND p.created_at <= cc_clock()
                                          ORDER BY p.version DESC LIMIT 1), 0) - a.held), 0)
             FROM accounts a
            WHERE a.school_id = $1 AND a.person_id = $2 AND a.kind = 'purse'""",
        school_id,
        person_id,
    )
    return int(total)


async def last_money_in(conn: Conn, school_id: int, person_id: int) -> int:
    """The id of the last posting that put money into the student's purses (0: none yet)."""
    last = await conn.fetchval(
        """SELECT max(p.id) FROM postings p
             JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id
            WHERE p.school_id = $1 AND a.person_id = $2 AND a.kind = 'purse' AND p.amount > 0
              AND p.created_at <= cc_clock()""",
        school_id,
        person_id,
    )
    return int(last or 0)


async def clock(conn: Conn) -> datetime:
    """The engine's clock: now, or the past instant the demo campus replays its month at."""
    at: datetime = await conn.fetchval("SELECT cc_clock()")
    return at


async def spent_since(conn: Conn, school_id: int, person_id: int, since: datetime) -> int:
    """What the student paid at merchants (booked payments) after ``since``, by the engine's
    clock."""
    total = await conn.fetchval(
        """SELECT coalesce(sum(amount), 0) FROM payments
            WHERE school_id = $1 AND person_id = $2 AND status = 'booked' AND created_at > $3
              AND created_at <= cc_clock()""",
        school_id,
        person_id,
        since,
    )
    return int(total)
