"""Leave requests: a student or a parent asks, a teacher of the class decides; a leave a
teacher (or an administrator) records is approved at once. An approved leave turns the
periods it covers from absent into on leave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from campuscard.attendance import rules
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.platform import audit, i18n, notifications
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed


@dataclass(frozen=True)
class Leave:
    id: int
    person_id: int
    number: str
    name: str
    class_name: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    state: str
    requested_by: str
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str
    created_at: datetime
    asked_by_student: bool = False  # False: a parent (or staff) asked for the student


async def _student(conn: Conn, school_id: int, person_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT p.id, p.name, p.number, p.class_id, p.kind FROM persons p
            WHERE p.school_id = $1 AND p.id = $2 AND p.status = 'enrolled'""",
        school_id,
        person_id,
    )
    if row is None or row["kind"] != "student":
        raise NotFound("no such student in this school", field="person_id")
    return dict(row)


async def _teaches(conn: Conn, actor: Actor, school_id: int, class_id: int | None) -> bool:
    """May the actor decide for a student of ``class_id``: an administrator, or its teacher."""
    if actor.has("school_admin", school_id=school_id):
        return True
    if class_id is None or not actor.has("teacher", school_id=school_id):
        return False
    return bool(
        await conn.fetchval(
            """SELECT 1 FROM attendance_class_teachers
                WHERE school_id = $1 AND class_id = $2 AND user_id = $3""",
            school_id,
            class_id,
            actor.user_id,
        )
    )


async def _is_guardian(conn: Conn, actor: Actor, person_id: int) -> bool:
    if actor.user_id is None:
        return False
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM guardian_links WHERE user_id = $1 AND person_id = $2",
            actor.user_id,
            person_id,
        )
    )


async def may_act_for(conn: Conn, actor: Actor, school_id: int, person_id: int) -> bool:
    """The student themself, a parent linked to them, a teacher of their class, or an
    administrator of their school."""
    if actor.person_id == person_id or await _is_guardian(conn, actor, person_id):
        return True
    class_id = await conn.fetchval(
        "SELECT class_id FROM persons WHERE school_id = $1 AND id = $2", school_id, person_id
    )
    return await _teaches(conn, actor, school_id, class_id)


async def school_of_student(conn: Conn, actor: Actor, person_id: int) -> int:
    """The student's school; anyone who may not act for them is told it does not exist."""
    school_id: int | None = await conn.fetchval(
        "SELECT school_id FROM persons WHERE id = $1", person_id
    )
    if school_id is None or not await may_act_for(conn, actor, school_id, person_id):
        raise NotFound("no such student", field="person_id")
    return school_id


@owns_transaction
async def request_leave(
    tx: Tx,
    actor: Actor,
    school_id: int,
    person_id: int,
    *,
    kind: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
) -> int:
    """The student themself or a parent asks (pending, the class's teachers are told); a
    teacher of the class or an administrator records it approved."""
    student = await _student(tx, school_id, person_id)
    teacher = await _teaches(tx, actor, school_id, student["class_id"])
    if (
        not teacher
        and actor.person_id != person_id
        and not await _is_guardian(tx, actor, person_id)
    ):
        raise NotFound("no such student in this school", field="person_id")
    if kind not in rules.LEAVE_KINDS:
        raise ValidationFailed(f"kind is one of {', '.join(rules.LEAVE_KINDS)}", field="kind")
    reason = reason.strip()
    if not 1 <= len(reason) <= 500:
        raise ValidationFailed("give a reason (up to 500 characters)", field="reason")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValidationFailed("give times with a UTC offset, e.g. +08:00", field="starts_at")
    if ends_at <= starts_at:
        raise ValidationFailed("ends_at is after starts_at", field="ends_at")
    if ends_at - starts_at > timedelta(days=rules.MAX_LEAVE_DAYS):
        raise ValidationFailed(
            f"a leave is at most {rules.MAX_LEAVE_DAYS} days; ask again for more", field="ends_at"
        )
    if starts_at < datetime.now(UTC) - timedelta(days=rules.LEAVE_PAST_DAYS):
        raise ValidationFailed(
            f"a leave starts at most {rules.LEAVE_PAST_DAYS} days ago", field="starts_at"
        )
    overlapping = await tx.fetchval(
        """SELECT id FROM attendance_leaves
            WHERE school_id = $1 AND person_id = $2 AND state IN ('pending', 'approved')
              AND starts_at < $4 AND ends_at > $3 LIMIT 1""",
        school_id,
        person_id,
        starts_at,
        ends_at,
    )
    if overlapping:
        raise Conflict(
            f"this overlaps leave request {overlapping}; cancel it or ask for other times",
            field="starts_at",
        )
    state = "approved" if teacher else "pending"
    leave_id: int = await tx.fetchval(
        """INSERT INTO attendance_leaves(school_id, person_id, kind, starts_at, ends_at, reason,
                                         state, requested_by, requested_by_user, decided_by,
                                         decided_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                   CASE WHEN $7 = 'approved' THEN $8 END,
                   CASE WHEN $7 = 'approved' THEN now() END)
           RETURNING id""",
        school_id,
        person_id,
        kind,
        starts_at,
        ends_at,
        reason,
        state,
        actor.name,
        actor.user_id,
    )
    await audit.record(
        tx,
        actor,
        "attendance.leave.request",
        school_id=school_id,
        target_type="attendance_leave",
        target_id=leave_id,
        after={
            "person_id": person_id,
            "kind": kind,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
            "state": state,
        },
    )
    if state == "pending":
        for t in await tx.fetch(
            """SELECT user_id FROM attendance_class_teachers
                WHERE school_id = $1 AND class_id = $2 ORDER BY user_id""",
            school_id,
            student["class_id"],
        ):
            await notifications.notify(
                tx,
                school_id=school_id,
                kind="attendance.leave_requested",
                title=i18n.message("notice.leave_requested.title"),
                body=i18n.message(
                    "notice.leave_requested.body",
                    name=student["name"],
                    number=student["number"],
                    # notice.leave.sick, notice.leave.personal, notice.leave.other
                    what=i18n.message(f"notice.leave.{kind}"),
                    reason=reason,
                ),
                user_id=t["user_id"],
                data={"leave_id": leave_id, "person_id": person_id},
                dedupe_key=f"leave_requested:{school_id}:{leave_id}:{t['user_id']}",
            )
    return leave_id


@owns_transaction
async def decide_leave(
    tx: Tx, actor: Actor, school_id: int, leave_id: int, *, approve: bool, note: str = ""
) -> str:
    """A teacher of the student's class approves or rejects a pending request; the student
    and the parents are told."""
    actor.require("teacher", school_id=school_id)
    row = await tx.fetchrow(
        """SELECT l.person_id, l.state, l.kind, l.starts_at, l.ends_at, p.class_id, p.name
             FROM attendance_leaves l
             JOIN persons p ON p.school_id = l.school_id AND p.id = l.person_id
            WHERE l.school_id = $1 AND l.id = $2 FOR UPDATE OF l""",
        school_id,
        leave_id,
    )
    if row is None or not await _teaches(tx, actor, school_id, row["class_id"]):
        raise NotFound("no such leave request among your classes", field="leave_id")
    if row["state"] != "pending":
        raise Conflict(f"this request is already {row['state']}", field="leave_id")
    state = "approved" if approve else "rejected"
    await tx.execute(
        """UPDATE attendance_leaves SET state = $3, decided_by = $4, decided_at = now(),
                  decision_note = $5
            WHERE school_id = $1 AND id = $2""",
        school_id,
        leave_id,
        state,
        actor.name,
        note[:200],
    )
    await audit.record(
        tx,
        actor,
        f"attendance.leave.{'approve' if approve else 'reject'}",
        school_id=school_id,
        target_type="attendance_leave",
        target_id=leave_id,
        before={"state": "pending"},
        after={"state": state, "note": note[:200]},
    )
    # notice.leave_decided.approved / .rejected, and .approved_note / .rejected_note
    title = i18n.message(f"notice.leave_decided.{state}")
    body = i18n.message(
        f"notice.leave_decided.{state}_note" if note else f"notice.leave_decided.{state}_body",
        name=row["name"],
        what=i18n.message(f"notice.leave.{row['kind']}"),
        note=note,
    )
    data = {"leave_id": leave_id, "state": state}
    await notifications.notify(
        tx,
        school_id=school_id,
        kind="attendance.leave_decided",
        title=title,
        body=body,
        person_id=row["person_id"],
        data=data,
        dedupe_key=f"leave_decided:{school_id}:{leave_id}:person",
    )
    for g in await tx.fetch(
        "SELECT user_id FROM guardian_links WHERE person_id = $1 ORDER BY user_id",
        row["person_id"],
    ):
        await notifications.notify(
            tx,
            school_id=school_id,
            kind="attendance.leave_decided",
            title=title,
            body=body,
            user_id=g["user_id"],
            data=data,
            dedupe_key=f"leave_decided:{school_id}:{leave_id}:parent:{g['user_id']}",
        )
    return state


@owns_transaction
async def cancel_leave(tx: Tx, actor: Actor, school_id: int, person_id: int, leave_id: int) -> None:
    """Whoever may ask for the student's leave may withdraw it while it is pending, or an
    approved one that has not started."""
    row = await tx.fetchrow(
        """SELECT l.person_id, l.state, l.starts_at, p.class_id FROM attendance_leaves l
             JOIN persons p ON p.school_id = l.school_id AND p.id = l.person_id
            WHERE l.school_id = $1 AND l.id = $2 AND l.person_id = $3 FOR UPDATE OF l""",
        school_id,
        leave_id,
        person_id,
    )
    allowed = row is not None and (
        actor.person_id == row["person_id"]
        or await _is_guardian(tx, actor, row["person_id"])
        or await _teaches(tx, actor, school_id, row["class_id"])
    )
    if row is None or not allowed:
        raise NotFound("no such leave request", field="leave_id")
    if row["state"] not in ("pending", "approved") or (
        row["state"] == "approved" and row["starts_at"] <= datetime.now(UTC)
    ):
        raise Conflict("only a pending request or a leave not started can be withdrawn")
    await tx.execute(
        "UPDATE attendance_leaves SET state = 'cancelled' WHERE school_id = $1 AND id = $2",
        school_id,
        leave_id,
    )
    await audit.record(
        tx,
        actor,
        "attendance.leave.cancel",
        school_id=school_id,
        target_type="attendance_leave",
        target_id=leave_id,
        before={"state": row["state"]},
        after={"state": "cancelled"},
    )


_SELECT = """SELECT l.id, l.person_id, p.number, p.name, coalesce(c.name, '') AS class_name,
                    l.kind, l.starts_at, l.ends_at, l.reason, l.state, l.requested_by,
                    l.decided_by, l.decided_at, l.decision_note, l.created_at,
                    coalesce(u.person_id = l.person_id, false) AS asked_by_student
               FROM attendance_leaves l
               JOIN persons p ON p.school_id = l.school_id AND p.id = l.person_id
               LEFT JOIN users u ON u.id = l.requested_by_user
               LEFT JOIN classes c ON c.school_id = p.school_id AND c.id = p.class_id"""


async def leaves_to_decide(
    conn: Conn, actor: Actor, school_id: int, *, state: str = "pending", limit: int = 200
) -> list[Leave]:
    """Requests of the classes the actor teaches (every class for an administrator)."""
    actor.require("teacher", school_id=school_id)
    everything = actor.has("school_admin", school_id=school_id)
    rows = await conn.fetch(
        _SELECT
        + """ WHERE l.school_id = $1 AND ($2 = '' OR l.state = $2)
                AND ($3 OR EXISTS (SELECT 1 FROM attendance_class_teachers t
                                    WHERE t.school_id = p.school_id AND t.class_id = p.class_id
                                      AND t.user_id = $4))
              ORDER BY l.starts_at DESC, l.id DESC LIMIT $5""",
        school_id,
        state,
        everything,
        actor.user_id,
        limit,
    )
    return [Leave(**dict(r)) for r in rows]


async def leaves_of(conn: Conn, school_id: int, person_id: int, *, limit: int = 100) -> list[Leave]:
    """A student's own requests (the caller has checked who may read them)."""
    rows = await conn.fetch(
        _SELECT + " WHERE l.school_id = $1 AND l.person_id = $2 ORDER BY l.starts_at DESC LIMIT $3",
        school_id,
        person_id,
        limit,
    )
    return [Leave(**dict(r)) for r in rows]


async def periods_of(conn: Conn, school_id: int, person_id: int) -> list[dict[str, Any]]:
    """The periods the student's class keeps, for choosing which ones a leave covers (the
    caller has checked who may read them)."""
    rows = await conn.fetch(
        """SELECT r.id, r.name, r.weekdays, r.opens_at, r.closes_at
             FROM attendance_rules r
             JOIN persons p ON p.school_id = r.school_id AND p.class_id = r.class_id
            WHERE r.school_id = $1 AND p.id = $2 AND r.active
            ORDER BY r.opens_at, r.name""",
        school_id,
        person_id,
    )
    return [dict(r) | {"weekdays": list(r["weekdays"])} for r in rows]
