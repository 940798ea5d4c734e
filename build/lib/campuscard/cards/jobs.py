"""Card and terminal housekeeping: expire cards past their date, forget old terminal nonces."""

from __future__ import annotations

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.payments import terminals
from campuscard.platform.actors import SYSTEM
from campuscard.platform.tasks import periodic


@periodic("cards-expire", seconds=3600)
async def expire_cards(pool: PgPool, settings: Settings) -> int:
    """Cards whose expires_on has passed (school business day) become expired (blacklisted)."""
    total = 0
    async with pool.acquire() as conn:
        while True:
            done = await lifecycle.expire_due_cards(conn, SYSTEM, limit=500)
            total += done
            if done < 500:
                return total


@periodic("terminal-nonces-purge", seconds=300)
async def purge_nonces(pool: PgPool, settings: Settings) -> int:
    """Nonces older than the timestamp window can never be replayed (the timestamp is refused)."""
    return await terminals.purge_nonces(pool)
