"""Reads of the offline capability: the limits a till gets, the console's report."""

from __future__ import annotations

from campuscard.db.pool import Conn
from campuscard.offline import rules


async def risk_limits(conn: Conn, school_id: int) -> rules.RiskLimits:
    """The school's offline risk limits (its settings, or the safe defaults)."""
    settings = await conn.fetchval("SELECT settings FROM schools WHERE id = $1", school_id)
    return rules.risk_limits(settings)
