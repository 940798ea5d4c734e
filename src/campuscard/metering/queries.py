"""Read-only queries of metered devices: a device's tariff, a person's day on a kind."""

from __future__ import annotations

from datetime import date
from typing import Any

from campuscard.db.pool import Conn
from campuscard.metering.rules import Today


async def meter(conn: Conn, school_id: int, terminal_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT m.kind, m.tariff, t.merchant_id, t.sn,
                  (SELECT a.id FROM accounts a WHERE a.school_id = $1
                      AND a.merchant_id = t.merchant_id
                      AND a.kind = 'merchant' AND a.shard = t.id % mc.shards) AS payee
             FROM meters m JOIN terminals t ON t.school_id = m.school_id AND t.id = m.terminal_id
             JOIN merchants mc ON mc.school_id = t.school_id AND mc.id = t.merchant_id
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
             FROM meter_sessions s
             JOIN terminals t ON t.school_id = s.school_id AND t.id = s.terminal_id
             JOIN holds h ON h.school_id = s.school_id AND h.hold_key = s.hold_key
            WHERE s.school_id = $1 ORDER BY s.id DESC LIMIT $2""",
        school_id,
        limit,
    )
    return [dict(r) for r in rows]


async def devices(conn: Conn, school_id: int) -> list[dict[str, Any]]:
    """Every metered device with its tariff, what it did today and its sessions running now."""
    rows = await conn.fetch(
        """SELECT m.kind, m.tariff, t.sn, t.location, t.status, mc.name AS merchant,
                  (SELECT count(*) FROM meter_sessions s
                    WHERE s.school_id = $1 AND s.terminal_id = m.terminal_id
                      AND s.business_date = $2) AS sessions_today,
                  (SELECT coalesce(sum(s.amount), 0) FROM meter_sessions s
                    WHERE s.school_id = $1 AND s.terminal_id = m.terminal_id
                      AND s.business_date = $2) AS taken_today,
                  (SELECT count(*) FROM meter_sessions s
                    WHERE s.school_id = $1 AND s.terminal_id = m.terminal_id
                      AND s.state = 'open') AS running
             FROM meters m JOIN terminals t ON t.school_id = m.school_id AND t.id = m.terminal_id
             LEFT JOIN merchants mc ON mc.school_id = t.school_id AND mc.id = t.merchant_id
            WHERE m.school_id = $1 ORDER BY m.kind, t.sn""",
        school_id,
        await conn.fetchval("SELECT cc_business_date($1)", school_id),
    )
    return [dict(r) for r in rows]


async def open_holds(conn: Conn, school_id: int, *, limit: int = 200) -> list[dict[str, Any]]:
    """Money on hold now, every kind (metered sessions, orders, utility top-ups), oldest first."""
    rows = await conn.fetch(
        """SELECT h.hold_key, h.kind, h.owner_kind, h.owner_id, h.amount, h.placed_at,
                  h.expires_at, h.expires_at < now() AS overdue, p.name AS holder,
                  p.number AS holder_number, a.purse
             FROM holds h JOIN persons p ON p.school_id = h.school_id AND p.id = h.person_id
             JOIN accounts a ON a.school_id = h.school_id AND a.id = h.account_id
            WHERE h.school_id = $1 AND h.state = 'pending'
            ORDER BY h.placed_at, h.id LIMIT $2""",
        school_id,
        limit,
    )
    return [dict(r) for r in rows]
