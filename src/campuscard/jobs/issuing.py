"""Housekeeping for self-service pickup: expire old codes, release silent authorizations."""

from __future__ import annotations

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.jobs.registry import periodic
from campuscard.services import pickup


@periodic("pickup-expiry", seconds=60)
async def expire_pickup_codes(pool: PgPool, settings: Settings) -> int:
    async with pool.acquire() as conn, conn.transaction():
        expired = await pickup.expire_codes(conn)
        released = await pickup.release_stale_authorizations(conn, settings)
    return expired + released
