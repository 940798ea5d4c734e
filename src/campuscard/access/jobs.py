"""Access housekeeping: refresh reader lists, expire visitors, forget old list changes."""

from __future__ import annotations

from campuscard.access import lists, visitors
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform.tasks import periodic


@periodic("access-lists-refresh", seconds=2)
async def refresh_lists(pool: PgPool, settings: Settings) -> int:
    """Turn committed changes (and a new day's calendar) into new list versions, so readers
    find them ready; a reader asking first refreshes by itself (lists.refresh_if_stale)."""
    return await lists.refresh_all(pool)


@periodic("access-visitors-expire", seconds=60)
async def expire_visitors(pool: PgPool, settings: Settings) -> int:
    return await visitors.expire_visitors(pool)


@periodic("access-changes-prune", seconds=3600)
async def prune_changes(pool: PgPool, settings: Settings) -> int:
    return await lists.prune_changes(pool)
