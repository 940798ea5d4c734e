"""Holds in the ledger: place, capture (in part or whole; the rest released), void, expire.

Each is one round trip to one database function (``ledger/db/cc_hold_*.sql``) and so one
atomic statement: it can run alone on a pool or connection, or inside a caller's transaction
(an order placing its hold with the order). The database keeps ``accounts.held`` equal to the
sum of pending holds and refuses any booking that would take ``balance - held`` below the floor.

Answers are returned, not raised, so a refusal stored under a hold id commits with the caller's
work; ``HoldAnswer.raise_refusal()`` turns a refusal into the matching ``DomainError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.ledger.holds_rules import (
    HoldRequest,
    check_capture_amount,
    check_hold_id,
)
from campuscard.platform.errors import DomainError


@dataclass(frozen=True)
class HoldAnswer:
    """An HTTP-like status and a body: the hold (``cc_hold_view``) or ``{"error": …}``."""

    status: int
    body: dict[str, Any]
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def state(self) -> str | None:
        state = self.body.get("state")
        return str(state) if state is not None else None

    def raise_refusal(self) -> HoldAnswer:
        """The answer itself when it is a hold; the refusal as a ``DomainError`` otherwise."""
        if self.ok:
            return self
        err = self.body["error"]
        raise DomainError(
            err["message"],
            code=err["code"],
            field=err.get("field"),
            status=self.status,
            details=err.get("details"),
        )


def _answer(result: dict[str, Any]) -> HoldAnswer:
    return HoldAnswer(int(result["status"]), result["body"], bool(result.get("replayed")))


async def place_hold(
    db: Conn | PgPool, school_id: int, request: HoldRequest, *, actor: str = "system"
) -> HoldAnswer:
    """Set ``request.amount`` aside on the person's purse until captured, voided or expired."""
    result = await db.fetchval(
        "SELECT cc_hold_place($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        school_id,
        request.hold_id,
        request.person_id,
        request.purse,
        request.amount,
        request.kind,
        request.owner_kind,
        request.owner_id,
        request.payee_account_id,
        request.memo,
        actor,
    )
    return _answer(result)


async def capture_hold(
    db: Conn | PgPool, school_id: int, hold_id: str, amount: int, *, actor: str = "system"
) -> HoldAnswer:
    """Book ``amount`` (at most the hold) from the purse to the payee; release the rest."""
    check_hold_id(hold_id)
    check_capture_amount(amount)
    result = await db.fetchval(
        "SELECT cc_hold_capture($1, $2, $3, $4)", school_id, hold_id, amount, actor
    )
    return _answer(result)


async def void_hold(
    db: Conn | PgPool, school_id: int, hold_id: str, *, actor: str = "system"
) -> HoldAnswer:
    """Release the whole hold; nothing is booked."""
    check_hold_id(hold_id)
    result = await db.fetchval("SELECT cc_hold_void($1, $2, $3)", school_id, hold_id, actor)
    return _answer(result)


async def expire_due_holds(db: Conn | PgPool, school_id: int, *, limit: int = 500) -> int:
    """Release up to ``limit`` of the school's holds past their expiry; how many were."""
    n: int = await db.fetchval("SELECT cc_hold_expire($1, $2)", school_id, limit)
    return n


async def schools_with_due_holds(db: Conn | PgPool) -> list[int]:
    rows = await db.fetch(
        "SELECT DISTINCT school_id FROM holds WHERE state = 'pending' AND expires_at < now()"
    )
    return [r["school_id"] for r in rows]
