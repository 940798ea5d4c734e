"""Worker tasks for money in and out: provider orders whose callback never came, refunds to
send, bank transfers to resolve, automatic top-ups, subsidy expiry."""

from __future__ import annotations

from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.moneyflows import autotopup, bank_link, leaving, provider_orders, subsidies, topups
from campuscard.platform.tasks import outbox_handler, periodic

# importing topups registers the 'topup' purpose; leaving, what a posted leaving payout does
__all__ = ["leaving", "topups"]


@periodic("provider-query", seconds=30)
async def query_overdue_provider_orders(pool: PgPool, settings: Settings) -> int:
    return await provider_orders.resolve_overdue_orders(pool, settings)


@outbox_handler("provider.refund")
async def send_provider_refund(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
    await provider_orders.send_refund(settings, payload)


@periodic("bank-resolve", seconds=15)
async def resolve_bank_transfers(pool: PgPool, settings: Settings) -> int:
    """Transfers the bank never answered: reverse them (or, after a crash, ask first)."""
    return await bank_link.resolve_open_transfers(pool, settings)


@periodic("auto-topup", seconds=10)
async def auto_topups(pool: PgPool, settings: Settings) -> int:
    return len(await autotopup.run_auto_topups(pool, settings))


@periodic("subsidy-expiry", seconds=600)
async def expire_subsidies(pool: PgPool, settings: Settings) -> int:
    """Claw back the unspent part of subsidy batches past their expiry date."""
    return len(await subsidies.expire_due_batches(pool))


@outbox_handler("payout.requested")
async def send_requested_payout(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
    """A cancelled card's balance: to the bound bank card (or suspense without one)."""
    await bank_link.do_requested_payout(pool, settings, payload)
