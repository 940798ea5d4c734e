"""Payroll's worker task: an approved batch's bank payouts are sent outside any transaction
(the approval defers it through the outbox). Timeouts and doubts are the bank link's periodic
resolve's ('bank-resolve', moneyflows/jobs.py); importing batches registers what a posted payroll
payout does."""

from __future__ import annotations

from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.payroll import batches
from campuscard.platform.tasks import outbox_handler


@outbox_handler(batches.SEND_TOPIC)
async def send_payroll_batch(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
    await batches.send_batch(pool, settings, int(payload["school_id"]), int(payload["batch_id"]))
