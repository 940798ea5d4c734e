"""Read-only queries of metered devices: a device's tariff, a person's day on a kind."""

from __future__ import annotations

from datetime import date
from typing import Any

from campuscard.db.pool import Conn
from campuscard.metering.rules import Today


async def meter(conn: Conn, school_id: int, terminal_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT m.kind, m.tariff, t.merchant_id, t.sn,
                  (SELECT a.id FROM accounts a WHERE a.merchant_id = t.merchant_id
                      AND a.kind = 'merchant' AND a.shard = t.id % mc.shards) AS payee
             FROM meters m JOIN terminals t ON t.id = m.terminal_id
             JOIN merchants mc ON mc.id = t.merchant_id
            WHERE m.school_id = $1 AND m.terminal_id = $2""",
        school_id,
        terminal_id,
    )
    return dict(row) if row else None


async def today(conn: Conn, school_id: int, person_id: int, kind: str, day: date) -> Today:
    """Sessions of the day on this kind (ended or not), what they took and the units used."""
    row = await conn.fetchrow(
        """SELECT count(*) AS sessions, coalesce(sum(amount), 0) AS spent,
                  coalesce(sum(units), 0) AS units, max(ended_at) AS last_end
             FROM meter_sessions
            WHERE school_id = $1 AND person_id = $2 AND kind = $3 AND business_date = $4""",
        school_id,
        person_id,
        kind,
        day,
    )
    assert row is not None
    return Today(int(row["sessions"]), int(row["spent"]), int(row["units"]), row["last_end"])


async def sessions(conn: Conn, school_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT s.id, s.kind, t.sn, s.session_key, s.state, s.authorised, s.units, s.amount,
                  s.started_at, s.ended_at, h.state AS hold_state
             FROM meter_sessions s JOIN terminals t ON t.id = s.terminal_id
             JOIN holds h ON h.school_id = s.school_id AND h.hold_key = s.hold_key
            WHERE s.school_id = $1 ORDER BY s.id DESC LIMIT $2""",
        school_id,
        limit,
    )
    return [dict(r) for r in rows]
