"""Worker side of getting a card: issue the pickup code once a card fee is paid, expire old
codes and release authorizations a kiosk went silent on."""

from __future__ import annotations

from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.db.tx import transaction
from campuscard.issuing import applications, card_fee, pickup
from campuscard.platform.tasks import outbox_handler, periodic

_ = card_fee  # registers the 'card_fee' provider order purpose in the worker too


@outbox_handler("pickup.issue_code")
async def issue_code_after_payment(
    pool: PgPool, settings: Settings, payload: dict[str, Any]
) -> None:
    async with pool.acquire() as conn:
        await applications.do_issue_pending_code(conn, settings, int(payload["application_id"]))


@periodic("pickup-expiry", seconds=60)
async def expire_pickup_codes(pool: PgPool, settings: Settings) -> int:
    async with transaction(pool) as tx:
        expired = await pickup.expire_codes(tx)
        released = await pickup.release_stale_authorizations(tx, settings)
    return expired + released


@periodic("forget-pickup-guesses", seconds=3600)
async def forget_pickup_guesses(pool: PgPool, settings: Settings) -> int:
    """Counts of wrong pickup codes are kept a day after their window opened, then forgotten
    (the window itself is pickup_guess_window_minutes)."""
    async with pool.acquire() as conn:
        done = await conn.execute(
            "DELETE FROM pickup_guesses WHERE window_start < now() - interval '1 day'"
        )
    return int(done.split()[-1])
