"""Reads of payroll: the school's batches and one batch's report (its lines, what is paid, what
the bank has not settled yet, what failed, the totals). For the finance office only."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn, PgPool
from campuscard.ledger.money import fmt
from campuscard.payroll import rules
from campuscard.platform.actors import Actor
from campuscard.platform.errors import NotFound

READER_ROLES = ("settlement", "school_admin")
STATES = ("waiting", "paid", "pending", "failed")

_LINES = """
SELECT l.row_no, l.amount, l.route, l.memo, l.tx_id, l.transfer_id, p.id AS person_id,
       p.number, p.name, t.status AS transfer_status, t.rrn, t.response_code, t.resolved_at,
       j.created_at AS booked_at
  FROM payroll_lines l
  JOIN persons p ON p.school_id = l.school_id AND p.id = l.person_id
  LEFT JOIN bank_transfers t ON t.school_id = l.school_id AND t.id = l.transfer_id
  LEFT JOIN journal_tx j ON j.school_id = l.school_id AND j.id = l.tx_id
 WHERE l.school_id = $1 AND l.batch_id = $2
 ORDER BY l.row_no"""

# the failed payouts of a batch's lines that were paid again: who, when, how, and why the bank
# refused the first
_REPAYS = """
SELECT r.row_no, r.failed_transfer_id, r.route, r.repaid_by_name, r.repaid_at,
       t.status AS failed_status, t.response_code AS failed_response_code
  FROM payroll_line_repays r
  JOIN bank_transfers t ON t.school_id = r.school_id AND t.id = r.failed_transfer_id
 WHERE r.school_id = $1 AND r.batch_id = $2
 ORDER BY r.row_no, r.repaid_at"""


def batch_state(approval_status: str, counts: dict[str, int]) -> str:
    """waiting_approval, rejected, paying (the bank has lines to settle), paid, or
    paid_with_failures (every line settled, some refused or reversed)."""
    if approval_status != "approved":
        return "rejected" if approval_status == "rejected" else "waiting_approval"
    if counts.get("pending") or counts.get("waiting"):
        return "paying"
    return "paid_with_failures" if counts.get("failed") else "paid"


def _batch_view(b: Any) -> dict[str, Any]:
    return {
        "id": b["id"],
        "period": b["period"],
        "filename": b["filename"],
        "sha256": b["sha256"],
        "lines": b["lines"],
        "total": fmt(b["total"]),
        "approval_id": b["approval_id"],
        "approval_status": b["approval_status"],
        "uploaded_by": b["uploaded_by"],
        "uploaded_by_name": b["uploaded_by_name"],
        "uploaded_at": b["uploaded_at"].isoformat(),
        "decided_by_name": b["decided_by_name"],
        "paid_at": b["paid_at"].isoformat() if b["paid_at"] else None,
    }


async def list_batches(
    conn: Conn | PgPool, actor: Actor, school_id: int, *, limit: int = 50
) -> list[dict[str, Any]]:
    actor.require(*READER_ROLES, school_id=school_id)
    rows = await conn.fetch(
        """SELECT b.*, a.status AS approval_status, a.decided_by_name,
                  (SELECT count(*) FROM payroll_lines l
                     LEFT JOIN bank_transfers t ON t.school_id = l.school_id
                          AND t.id = l.transfer_id
                    WHERE l.school_id = b.school_id AND l.batch_id = b.id
                      AND (t.status IN ('pending', 'unknown', 'reversing')
                           OR (l.tx_id IS NULL AND l.transfer_id IS NULL))) AS open_lines,
                  (SELECT count(*) FROM payroll_lines l
                     JOIN bank_transfers t ON t.school_id = l.school_id AND t.id = l.transfer_id
                    WHERE l.school_id = b.school_id AND l.batch_id = b.id
                      AND t.status IN ('failed', 'reversed')) AS failed_lines
             FROM payroll_batches b
             JOIN approvals a ON a.school_id = b.school_id AND a.id = b.approval_id
            WHERE b.school_id = $1 ORDER BY b.id DESC LIMIT $2""",
        school_id,
        limit,
    )
    return [
        _batch_view(r)
        | {
            "state": batch_state(
                r["approval_status"],
                {"pending": r["open_lines"], "failed": r["failed_lines"]},
            )
        }
        for r in rows
    ]


async def batch_report(
    conn: Conn | PgPool, actor: Actor, school_id: int, batch_id: int
) -> dict[str, Any]:
    """The batch, its lines with their state, and per state how many lines and how much."""
    actor.require(*READER_ROLES, school_id=school_id)
    batch = await conn.fetchrow(
        """SELECT b.*, a.status AS approval_status, a.decided_by_name
             FROM payroll_batches b
             JOIN approvals a ON a.school_id = b.school_id AND a.id = b.approval_id
            WHERE b.school_id = $1 AND b.id = $2""",
        school_id,
        batch_id,
    )
    if batch is None:
        raise NotFound("no such payroll batch in this school", field="batch_id")
    earlier: dict[int, list[dict[str, Any]]] = {}
    for r in await conn.fetch(_REPAYS, school_id, batch_id):
        earlier.setdefault(r["row_no"], []).append(
            {
                "failed_transfer_id": r["failed_transfer_id"],
                "failed_status": r["failed_status"],
                "response_code": r["failed_response_code"],
                "route": r["route"],
                "repaid_by_name": r["repaid_by_name"],
                "repaid_at": r["repaid_at"].isoformat(),
            }
        )
    lines = []
    counts = dict.fromkeys(STATES, 0)
    amounts = dict.fromkeys(STATES, 0)
    for r in await conn.fetch(_LINES, school_id, batch_id):
        state = rules.line_state(r["route"], r["tx_id"], r["transfer_status"])
        counts[state] += 1
        amounts[state] += r["amount"]
        settled = r["booked_at"] or r["resolved_at"]
        lines.append(
            {
                "row": r["row_no"],
                "person_id": r["person_id"],
                "number": r["number"],
                "name": r["name"],
                "amount": fmt(r["amount"]),
                "route": r["route"],
                "memo": r["memo"],
                "state": state,
                "transfer_id": r["transfer_id"],
                "transfer_status": r["transfer_status"],
                "rrn": r["rrn"],
                "response_code": r["response_code"],
                "settled_at": settled.isoformat() if settled else None,
                "repays": earlier.get(r["row_no"], []),
            }
        )
    return _batch_view(batch) | {
        "state": batch_state(batch["approval_status"], counts),
        "counts": counts,
        "amounts": {k: fmt(v) for k, v in amounts.items()},
        "line_rows": lines,
    }
