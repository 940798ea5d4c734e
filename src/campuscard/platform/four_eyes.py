"""Four eyes on money: one person proposes, a second person approves, and only then does the
money move.

A use case that could create money (an adjustment, a counter subsidy grant, a deposit above
the school's threshold, a change of a merchant's payout account, a drawer float that differs
from its last close) calls ``propose`` in its own transaction instead of doing the work: a
pending row says what to do (kind + payload) and the proposal is audited. A second person with
an approving role decides (``do_decide``): a refusal ends it; an approval runs the kind's
executor in the same transaction as the decision, stores what it returned and audits both. The
proposer never decides their own proposal (checked here and by the table's CHECK).

Executors register by kind (``@executor("adjustment")``) in the package that owns the work;
``EXECUTOR_MODULES`` names those modules so the registry is complete wherever a decision runs
(the dependency points from the owners to this module, never back).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.ledger.money import fmt
from campuscard.platform import audit
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import Conflict, DomainError, NotFound, ValidationFailed

KINDS = (
    "adjustment",
    "counter_op",
    "payout_account",
    "drawer_float",
    "bill_adjustment",
    "order_dispute",
    "payroll_batch",
)
EXECUTOR_MODULES = (
    "campuscard.ledger.adjustments",
    "campuscard.moneyflows.counter",
    "campuscard.settlement.clearing",
    "campuscard.bills.adjustments",
    "campuscard.orders.disputes",
    "campuscard.payroll.batches",
)
APPROVER_ROLES = ("settlement", "school_admin")


@dataclass(frozen=True)
class Proposal:
    id: int
    school_id: int
    kind: str
    payload: dict[str, Any]
    amount: int | None
    proposed_by: int
    proposed_by_name: str

    def proposer(self) -> Actor:
        """The proposer, for work booked in their name (their drawer, their client id)."""
        return Actor(
            name=self.proposed_by_name,
            user_id=self.proposed_by,
            school_id=self.school_id,
            grants=frozenset({Grant("settlement", self.school_id)}),
        )


Executor = Callable[[Tx, Actor, Proposal], Awaitable[dict[str, Any]]]
_EXECUTORS: dict[str, Executor] = {}


def executor(kind: str) -> Callable[[Executor], Executor]:
    """Register what an approval of ``kind`` does (in the decision's transaction)."""
    if kind not in KINDS:
        raise ValueError(f"unknown approval kind {kind!r}")

    def register(fn: Executor) -> Executor:
        _EXECUTORS[kind] = fn
        return fn

    return register


def _executor_for(kind: str) -> Executor:
    if kind not in _EXECUTORS:
        for name in EXECUTOR_MODULES:
            importlib.import_module(name)
    return _EXECUTORS[kind]


def approval_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "summary": row["summary"],
        "amount": fmt(row["amount"]) if row["amount"] is not None else None,
        "payload": row["payload"],
        "proposed_by": row["proposed_by"],
        "proposed_by_name": row["proposed_by_name"],
        "proposed_at": row["proposed_at"].isoformat(),
        "decided_by": row["decided_by"],
        "decided_by_name": row["decided_by_name"],
        "decided_at": row["decided_at"].isoformat() if row["decided_at"] else None,
        "note": row["note"],
        "result": row["result"],
    }


async def propose(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    kind: str,
    payload: dict[str, Any],
    amount: int | None,
    summary: str,
) -> dict[str, Any]:
    """Write a pending proposal in the caller's transaction; nothing else happens yet."""
    if actor.user_id is None:
        raise ValidationFailed("a proposal needs a signed-in person", field="actor")
    if kind not in KINDS:
        raise ValueError(f"unknown approval kind {kind!r}")
    row = await tx.fetchrow(
        """INSERT INTO approvals(school_id, kind, payload, amount, summary, proposed_by,
                                 proposed_by_name)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *""",
        school_id,
        kind,
        payload,
        amount,
        summary[:300],
        actor.user_id,
        actor.name,
    )
    assert row is not None
    await audit.record(
        tx,
        actor,
        "approval.propose",
        school_id=school_id,
        target_type="approval",
        target_id=row["id"],
        after={"kind": kind, "summary": summary, "payload": payload},
    )
    return {"status": "pending_approval", "approval": approval_view(row)}


@owns_transaction
async def do_decide(
    tx: Tx,
    actor: Actor,
    school_id: int,
    approval_id: int,
    *,
    approve: bool,
    note: str = "",
) -> dict[str, Any]:
    """A second person approves (the work runs now, in this transaction) or rejects."""
    actor.require(*APPROVER_ROLES, school_id=school_id)
    if actor.user_id is None:
        raise ValidationFailed("a decision needs a signed-in person", field="actor")
    note = note.strip()
    if len(note) > 300:
        raise ValidationFailed("note is at most 300 characters", field="note")
    if not approve and not note:
        raise ValidationFailed("say why the proposal is rejected", field="note")
    row = await tx.fetchrow(
        "SELECT * FROM approvals WHERE school_id = $1 AND id = $2 FOR UPDATE",
        school_id,
        approval_id,
    )
    if row is None:
        raise NotFound("no such approval in this school", field="approval_id")
    if row["status"] != "pending":
        raise Conflict(
            f"this proposal is already {row['status']}",
            code="APPROVAL_NOT_PENDING",
            field="approval_id",
        )
    if row["proposed_by"] == actor.user_id:
        raise DomainError(
            "a second person must approve, not the one who proposed it",
            code="SECOND_PERSON_REQUIRED",
            field="approval_id",
            status=403,
        )
    result: dict[str, Any] | None = None
    if approve:
        proposal = Proposal(
            id=row["id"],
            school_id=school_id,
            kind=row["kind"],
            payload=dict(row["payload"]),
            amount=row["amount"],
            proposed_by=row["proposed_by"],
            proposed_by_name=row["proposed_by_name"],
        )
        result = await _executor_for(row["kind"])(tx, actor, proposal)
    decided = await tx.fetchrow(
        """UPDATE approvals SET status = $3, decided_by = $4, decided_by_name = $5,
                  decided_at = now(), note = $6, result = $7
            WHERE school_id = $1 AND id = $2 RETURNING *""",
        school_id,
        approval_id,
        "approved" if approve else "rejected",
        actor.user_id,
        actor.name,
        note,
        result,
    )
    assert decided is not None
    await audit.record(
        tx,
        actor,
        "approval.approve" if approve else "approval.reject",
        school_id=school_id,
        target_type="approval",
        target_id=approval_id,
        before={"status": "pending", "proposed_by": row["proposed_by_name"]},
        after={"status": decided["status"], "note": note, "result": result},
    )
    return approval_view(decided)


async def list_approvals(
    conn: Conn, actor: Actor, school_id: int, *, pending_only: bool = True, limit: int = 100
) -> list[dict[str, Any]]:
    actor.require(*APPROVER_ROLES, school_id=school_id)
    rows = await conn.fetch(
        """SELECT * FROM approvals WHERE school_id = $1 AND ($2 = false OR status = 'pending')
            ORDER BY id DESC LIMIT $3""",
        school_id,
        pending_only,
        limit,
    )
    return [approval_view(r) for r in rows]


async def get_approval(
    conn: Conn, actor: Actor, school_id: int, approval_id: int
) -> dict[str, Any]:
    """One proposal as it stands (a client follows its proposal to the decision)."""
    actor.require(*APPROVER_ROLES, school_id=school_id)
    row = await conn.fetchrow(
        "SELECT * FROM approvals WHERE school_id = $1 AND id = $2", school_id, approval_id
    )
    if row is None:
        raise NotFound("no such approval in this school", field="approval_id")
    return approval_view(row)
