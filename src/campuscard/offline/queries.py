"""Reads of the offline capability: the limits a till gets, the console's report (uploads per
day with their duplicates, gaps, chain breaks and overdrafts; each till's sequence state; the
records that broke a chain or overdrew; what holders still owe)."""

from __future__ import annotations

from datetime import date
from typing import Any

from campuscard.db.pool import Conn
from campuscard.offline import rules


async def risk_limits(conn: Conn, school_id: int) -> rules.RiskLimits:
    """The school's offline risk limits (its settings, or the safe defaults)."""
    settings = await conn.fetchval("SELECT settings FROM schools WHERE id = $1", school_id)
    return rules.risk_limits(settings)


async def days(
    conn: Conn, school_id: int, *, merchant_id: int | None = None, limit: int = 14
) -> list[dict[str, Any]]:
    """Uploads per business day, newest first: what came in and what became of it (of one
    merchant's tills when ``merchant_id`` is given)."""
    rows = await conn.fetch(
        """SELECT business_date, count(*) AS uploads, count(DISTINCT terminal_id) AS devices,
                  sum(received) AS received, sum(accepted) AS accepted,
                  sum(duplicates) AS duplicates, sum(rejected) AS rejected,
                  sum(chain_breaks) AS chain_breaks, sum(overdrafts) AS overdrafts,
                  sum(overdraft_fen) AS overdraft_fen
             FROM offline_uploads WHERE school_id = $1
              AND ($3::bigint IS NULL OR terminal_id IN
                   (SELECT id FROM terminals WHERE school_id = $1 AND merchant_id = $3))
            GROUP BY business_date ORDER BY business_date DESC LIMIT $2""",
        school_id,
        limit,
        merchant_id,
    )
    return [dict(r) for r in rows]


async def day_devices(
    conn: Conn, school_id: int, day: date, *, merchant_id: int | None = None
) -> list[dict[str, Any]]:
    """Each till's uploads of one day, with its sequence numbers still missing now."""
    rows = await conn.fetch(
        """SELECT t.sn, t.location, m.name AS merchant, count(*) AS uploads,
                  sum(u.received) AS received, sum(u.accepted) AS accepted,
                  sum(u.duplicates) AS duplicates, sum(u.rejected) AS rejected,
                  sum(u.chain_breaks) AS chain_breaks, sum(u.overdrafts) AS overdrafts,
                  sum(u.overdraft_fen) AS overdraft_fen, min(u.received_at) AS first_at,
                  max(u.received_at) AS last_at,
                  (SELECT missing FROM offline_uploads l
                    WHERE l.school_id = u.school_id AND l.terminal_id = u.terminal_id
                    ORDER BY l.id DESC LIMIT 1) AS missing_now
             FROM offline_uploads u JOIN terminals t ON t.id = u.terminal_id
             LEFT JOIN merchants m ON m.id = t.merchant_id
            WHERE u.school_id = $1 AND u.business_date = $2
              AND ($3::bigint IS NULL OR t.merchant_id = $3)
            GROUP BY u.school_id, u.terminal_id, t.sn, t.location, m.name ORDER BY t.sn""",
        school_id,
        day,
        merchant_id,
    )
    return [dict(r) for r in rows]


async def devices(
    conn: Conn, school_id: int, *, merchant_id: int | None = None
) -> list[dict[str, Any]]:
    """Every till that has uploaded: its sequence numbers, records and last upload."""
    rows = await conn.fetch(
        """SELECT t.sn, t.location, m.name AS merchant, d.contiguous_seq, d.max_seq, d.records,
                  d.last_upload_at,
                  (SELECT count(*) FROM offline_records r
                    WHERE r.school_id = d.school_id AND r.terminal_id = d.terminal_id
                      AND r.state = 'waiting') AS waiting
             FROM offline_devices d JOIN terminals t ON t.id = d.terminal_id
             LEFT JOIN merchants m ON m.id = t.merchant_id
            WHERE d.school_id = $1 AND ($2::bigint IS NULL OR t.merchant_id = $2)
            ORDER BY t.sn""",
        school_id,
        merchant_id,
    )
    return [dict(r) for r in rows]


async def notable_records(
    conn: Conn, school_id: int, day: date, *, merchant_id: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The records of a day that a person should look at: a broken chain, an overdraft, a
    refusal, or still waiting for a missing counter (day = the upload's day)."""
    rows = await conn.fetch(
        """SELECT t.sn, r.seq, r.card_number, p.name AS holder, p.number AS holder_number,
                  r.amount, r.made_at, r.state, r.refusal, r.chain_break, r.overdraft,
                  r.card_counter
             FROM offline_records r JOIN offline_uploads u
                  ON u.school_id = r.school_id AND u.id = r.upload_id
             JOIN terminals t ON t.id = r.terminal_id
             LEFT JOIN persons p ON p.id = r.person_id
            WHERE r.school_id = $1 AND u.business_date = $2
              AND (r.state <> 'settled' OR r.chain_break IS NOT NULL OR r.overdraft > 0)
              AND ($4::bigint IS NULL OR t.merchant_id = $4)
            ORDER BY t.sn, r.seq LIMIT $3""",
        school_id,
        day,
        limit,
        merchant_id,
    )
    return [dict(r) for r in rows]


async def debts(conn: Conn, school_id: int) -> dict[str, int]:
    """What holders still owe for offline overdrafts, and how many of them."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE owed > 0) AS holders, coalesce(sum(owed), 0) AS owed,
                  coalesce(sum(repaid_total), 0) AS repaid
             FROM offline_debts WHERE school_id = $1""",
        school_id,
    )
    assert row is not None
    return {k: int(row[k]) for k in ("holders", "owed", "repaid")}


async def device_state(conn: Conn, school_id: int, terminal_id: int) -> dict[str, Any] | None:
    """One till's offline store as the server sees it (None: it never uploaded): records
    received, sequence numbers still missing, records waiting on a card's chain, last upload."""
    row = await conn.fetchrow(
        """SELECT d.records, d.contiguous_seq, d.max_seq, d.last_upload_at,
                  (SELECT u.missing FROM offline_uploads u
                    WHERE u.school_id = d.school_id AND u.terminal_id = d.terminal_id
                    ORDER BY u.id DESC LIMIT 1) AS missing,
                  (SELECT count(*) FROM offline_records r
                    WHERE r.school_id = d.school_id AND r.terminal_id = d.terminal_id
                      AND r.state = 'waiting') AS waiting
             FROM offline_devices d WHERE d.school_id = $1 AND d.terminal_id = $2""",
        school_id,
        terminal_id,
    )
    return dict(row) if row else None
