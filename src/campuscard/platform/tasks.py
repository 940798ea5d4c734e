"""Registries the worker runs: outbox handlers by topic, and periodic jobs.

A feature registers its handler or job in its own module (``@outbox_handler("sms")``,
``@periodic("provider-query", seconds=30)``) and lists that module in ``JOB_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import PgPool

OutboxHandler = Callable[[PgPool, Settings, dict[str, Any]], Awaitable[None]]
PeriodicJob = Callable[[PgPool, Settings], Awaitable[Any]]

OUTBOX_HANDLERS: dict[str, OutboxHandler] = {}


@dataclass(frozen=True)
class Periodic:
    name: str
    seconds: float
    run: PeriodicJob


PERIODIC: dict[str, Periodic] = {}

# Modules that register handlers and jobs; imported by the worker.
JOB_MODULES: list[str] = [
    "campuscard.moneyflows.jobs",
    "campuscard.settlement.jobs",
    "campuscard.platform.jobs",
    "campuscard.issuing.jobs",
    "campuscard.cards.jobs",
    "campuscard.ledger.jobs",
    "campuscard.payments.jobs",
    "campuscard.bills.jobs",
    "campuscard.offline.jobs",
    "campuscard.monitoring.jobs",
    "campuscard.access.jobs",
    "campuscard.orders.jobs",
    "campuscard.attendance.jobs",
    "campuscard.payroll.jobs",
]


def outbox_handler(topic: str) -> Callable[[OutboxHandler], OutboxHandler]:
    def register(fn: OutboxHandler) -> OutboxHandler:
        OUTBOX_HANDLERS[topic] = fn
        return fn

    return register


def periodic(name: str, *, seconds: float) -> Callable[[PeriodicJob], PeriodicJob]:
    def register(fn: PeriodicJob) -> PeriodicJob:
        PERIODIC[name] = Periodic(name, seconds, fn)
        return fn

    return register


def load_job_modules() -> None:
    for name in JOB_MODULES:
        importlib.import_module(name)
