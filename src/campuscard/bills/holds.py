"""What a student in arrears may not do, as the school chose: no card replacement, no entry to
the exam hall. The arrears job places a hold per overdue bill; paying (or deferring) the bill
lifts it in the same transaction. Other capabilities ask ``active`` (exam-hall entry) or call
``check_none`` (card replacement refuses while one is active)."""

from __future__ import annotations

from typing import Any

from campuscard.bills import rules
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx
from campuscard.platform import i18n, notifications
from campuscard.platform.errors import DomainError, ValidationFailed

_NAMES = {"card_replacement": "card replacement", "exam_hall": "exam hall entry"}  # refusals


def _check_kind(kind: str) -> None:
    if kind not in rules.HOLD_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(rules.HOLD_KINDS)}", field="kind")


async def active(
    db: Conn | PgPool, school_id: int, person_id: int, kind: str
) -> list[dict[str, Any]]:
    """The person's active holds of ``kind`` (empty: nothing stops them), with the bill each
    is for."""
    _check_kind(kind)
    rows = await db.fetch(
        """SELECT h.id, h.kind, h.bill_id, h.placed_at, b.term, b.total - b.paid AS owed
             FROM bill_holds h JOIN bills b ON b.school_id = h.school_id AND b.id = h.bill_id
            WHERE h.school_id = $1 AND h.person_id = $2 AND h.kind = $3
              AND h.lifted_at IS NULL ORDER BY h.id""",
        school_id,
        person_id,
        kind,
    )
    return [dict(r) for r in rows]


async def check_none(db: Conn | PgPool, school_id: int, person_id: int, kind: str) -> None:
    """Refuse with ARREARS_HOLD while the person has an active hold of ``kind``."""
    found = await active(db, school_id, person_id, kind)
    if found:
        terms = ", ".join(sorted({h["term"] for h in found}))
        raise DomainError(
            f"unpaid fees of term {terms} stop {_NAMES[kind]}; pay or ask the finance office",
            code="ARREARS_HOLD",
            field="person",
            status=409,
            details={"kind": kind, "bills": [h["bill_id"] for h in found]},
        )


async def place(tx: Tx, school_id: int, person_id: int, bill_id: int, kind: str) -> bool:
    """Place a hold for an overdue bill (once); tells the holder. True if it is new."""
    _check_kind(kind)
    new = await tx.fetchval(
        """INSERT INTO bill_holds(school_id, person_id, kind, bill_id) VALUES ($1, $2, $3, $4)
           ON CONFLICT (school_id, person_id, kind, bill_id) WHERE lifted_at IS NULL DO NOTHING
           RETURNING id""",
        school_id,
        person_id,
        kind,
        bill_id,
    )
    if new is None:
        return False
    await notifications.notify(
        tx,
        school_id=school_id,
        person_id=person_id,
        kind="bill_hold",
        title=i18n.message("notice.bill_hold.title"),
        # notice.hold.card_replacement, notice.hold.exam_hall
        body=i18n.message("notice.bill_hold.body", what=i18n.message(f"notice.hold.{kind}")),
        data={"bill_id": bill_id, "hold": kind},
        dedupe_key=f"bill_hold:{school_id}:{new}",
    )
    return True


async def lift_for_bill(tx: Tx, school_id: int, bill_id: int, *, why: str) -> int:
    """Lift every active hold of the bill (paid, deferred); tells the holder once."""
    rows = await tx.fetch(
        """UPDATE bill_holds SET lifted_at = now(), lifted_why = $3
            WHERE school_id = $1 AND bill_id = $2 AND lifted_at IS NULL
            RETURNING id, person_id, kind""",
        school_id,
        bill_id,
        why,
    )
    if rows:
        await notifications.notify(
            tx,
            school_id=school_id,
            person_id=rows[0]["person_id"],
            kind="bill_hold_lifted",
            title=i18n.message("notice.bill_hold_lifted.title"),
            body=i18n.message(
                "notice.bill_hold_lifted.body",
                what=[i18n.message(f"notice.hold.{r['kind']}") for r in rows],
            ),
            data={"bill_id": bill_id},
            dedupe_key=f"bill_hold_lifted:{school_id}:{rows[0]['id']}",
        )
    return len(rows)
