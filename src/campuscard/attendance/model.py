"""What the school's administrators set up for attendance: points (the doors whose swipes
count), rules per class and period, and the teachers of each class. Every write is audited."""

from __future__ import annotations

from datetime import time
from typing import Any

import asyncpg

from campuscard.attendance import rules
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

ADMIN_ROLES = ("school_admin",)


async def check_class(conn: Conn, actor: Actor, school_id: int, class_id: int) -> dict[str, Any]:
    """The class, if the actor may read and keep its attendance: a school administrator, or
    one of the class's teachers. Another teacher's class is answered as not found."""
    actor.require("teacher", school_id=school_id)
    row = await conn.fetchrow(
        "SELECT id, name, grade FROM classes WHERE school_id = $1 AND id = $2",
        school_id,
        class_id,
    )
    if row is None:
        raise NotFound("no such class in this school", field="class_id")
    if actor.has(*ADMIN_ROLES, school_id=school_id):
        return dict(row)
    mine = await conn.fetchval(
        """SELECT 1 FROM attendance_class_teachers
            WHERE school_id = $1 AND class_id = $2 AND user_id = $3""",
        school_id,
        class_id,
        actor.user_id,
    )
    if not mine:
        raise NotFound("no such class among the classes you teach", field="class_id")
    return dict(row)


async def my_classes(conn: Conn, actor: Actor, school_id: int) -> list[dict[str, Any]]:
    """The classes whose attendance the actor keeps: all of them for an administrator."""
    actor.require("teacher", school_id=school_id)
    everything = actor.has(*ADMIN_ROLES, school_id=school_id)
    rows = await conn.fetch(
        """SELECT c.id, c.name, c.grade,
                  (SELECT count(*) FROM persons p
                    WHERE p.school_id = c.school_id AND p.class_id = c.id
                      AND p.kind = 'student' AND p.status = 'enrolled') AS students
             FROM classes c
            WHERE c.school_id = $1 AND c.kind = 'class'
              AND ($2 OR EXISTS (SELECT 1 FROM attendance_class_teachers t
                                  WHERE t.school_id = c.school_id AND t.class_id = c.id
                                    AND t.user_id = $3))
            ORDER BY c.name""",
        school_id,
        everything,
        actor.user_id,
    )
    return [dict(r) for r in rows]


async def _check_point(tx: Tx, school_id: int, name: str, kind: str, door_ids: list[int]) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise ValidationFailed("name: 1 to 64 characters", field="name")
    if kind not in rules.POINT_KINDS:
        raise ValidationFailed(f"kind is one of {', '.join(rules.POINT_KINDS)}", field="kind")
    if not door_ids:
        raise ValidationFailed("an attendance point has at least one door", field="door_ids")
    found = await tx.fetchval(
        "SELECT count(*) FROM access_doors WHERE school_id = $1 AND id = ANY($2::bigint[])",
        school_id,
        door_ids,
    )
    if found != len(set(door_ids)):
        raise NotFound("a door in door_ids is not a door of this school", field="door_ids")
    return name


@owns_transaction
async def create_point(
    tx: Tx, actor: Actor, school_id: int, *, name: str, kind: str, door_ids: list[int]
) -> int:
    actor.require(*ADMIN_ROLES, school_id=school_id)
    name = await _check_point(tx, school_id, name, kind, door_ids)
    try:
        point_id: int = await tx.fetchval(
            "INSERT INTO attendance_points(school_id, name, kind) VALUES ($1, $2, $3) RETURNING id",
            school_id,
            name,
            kind,
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict("an attendance point of this name already exists", field="name") from err
    await tx.executemany(
        "INSERT INTO attendance_point_doors(school_id, point_id, door_id) VALUES ($1, $2, $3)",
        [(school_id, point_id, d) for d in sorted(set(door_ids))],
    )
    await audit.record(
        tx,
        actor,
        "attendance.point.create",
        school_id=school_id,
        target_type="attendance_point",
        target_id=point_id,
        after={"name": name, "kind": kind, "door_ids": sorted(set(door_ids))},
    )
    return point_id


@owns_transaction
async def update_point(
    tx: Tx,
    actor: Actor,
    school_id: int,
    point_id: int,
    *,
    name: str,
    kind: str,
    door_ids: list[int],
) -> None:
    """Rename a point or change its doors; sheets are worked out when read, so a changed
    door counts for the days still to be read (decision 0181)."""
    actor.require(*ADMIN_ROLES, school_id=school_id)
    before = await tx.fetchrow(
        """SELECT name, kind, ARRAY(SELECT door_id FROM attendance_point_doors d
                                     WHERE d.school_id = p.school_id AND d.point_id = p.id
                                     ORDER BY door_id) AS door_ids
             FROM attendance_points p WHERE school_id = $1 AND id = $2 FOR UPDATE""",
        school_id,
        point_id,
    )
    if before is None:
        raise NotFound("no such attendance point in this school", field="point_id")
    name = await _check_point(tx, school_id, name, kind, door_ids)
    try:
        await tx.execute(
            "UPDATE attendance_points SET name = $3, kind = $4 WHERE school_id = $1 AND id = $2",
            school_id,
            point_id,
            name,
            kind,
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict("an attendance point of this name already exists", field="name") from err
    await tx.execute(
        """DELETE FROM attendance_point_doors WHERE school_id = $1 AND point_id = $2
              AND door_id <> ALL($3::bigint[])""",
        school_id,
        point_id,
        door_ids,
    )
    await tx.executemany(
        """INSERT INTO attendance_point_doors(school_id, point_id, door_id) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING""",
        [(school_id, point_id, d) for d in sorted(set(door_ids))],
    )
    await audit.record(
        tx,
        actor,
        "attendance.point.update",
        school_id=school_id,
        target_type="attendance_point",
        target_id=point_id,
        before={
            "name": before["name"],
            "kind": before["kind"],
            "door_ids": list(before["door_ids"]),
        },
        after={"name": name, "kind": kind, "door_ids": sorted(set(door_ids))},
    )


@owns_transaction
async def create_rule(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    class_id: int,
    point_id: int,
    name: str,
    weekdays: list[int],
    opens_at: time,
    on_time_until: time,
    closes_at: time,
    direction: str | None = None,
    on_holidays: bool = False,
    notify_guardians: bool = False,
) -> int:
    """A period the class signs in for at a point."""
    actor.require(*ADMIN_ROLES, school_id=school_id)
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise ValidationFailed("name: 1 to 64 characters", field="name")
    rules.check_period(weekdays, opens_at, on_time_until, closes_at)
    if direction not in (None, "in", "out"):
        raise ValidationFailed("direction is in, out or null (either)", field="direction")
    for table, row_id, field in (
        ("classes", class_id, "class_id"),
        ("attendance_points", point_id, "point_id"),
    ):
        ok = await tx.fetchval(
            f"SELECT 1 FROM {table} WHERE school_id = $1 AND id = $2", school_id, row_id
        )
        if not ok:
            raise NotFound(f"no such {field.removesuffix('_id')} in this school", field=field)
    try:
        rule_id: int = await tx.fetchval(
            """INSERT INTO attendance_rules(school_id, class_id, point_id, name, weekdays,
                                            opens_at, on_time_until, closes_at, direction,
                                            on_holidays, notify_guardians, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id""",
            school_id,
            class_id,
            point_id,
            name,
            sorted(set(weekdays)),
            opens_at,
            on_time_until,
            closes_at,
            direction,
            on_holidays,
            notify_guardians,
            actor.name,
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict("this class already has a period of this name", field="name") from err
    await audit.record(
        tx,
        actor,
        "attendance.rule.create",
        school_id=school_id,
        target_type="attendance_rule",
        target_id=rule_id,
        after={
            "class_id": class_id,
            "point_id": point_id,
            "name": name,
            "weekdays": sorted(set(weekdays)),
            "opens_at": opens_at.isoformat("minutes"),
            "on_time_until": on_time_until.isoformat("minutes"),
            "closes_at": closes_at.isoformat("minutes"),
            "direction": direction,
            "on_holidays": on_holidays,
            "notify_guardians": notify_guardians,
        },
    )
    return rule_id


@owns_transaction
async def end_rule(tx: Tx, actor: Actor, school_id: int, rule_id: int) -> None:
    """A period no longer kept (a timetable change); past sheets keep it."""
    actor.require(*ADMIN_ROLES, school_id=school_id)
    done = await tx.fetchval(
        """UPDATE attendance_rules SET active = false
            WHERE school_id = $1 AND id = $2 AND active RETURNING id""",
        school_id,
        rule_id,
    )
    if done is None:
        raise NotFound("no such active period in this school", field="rule_id")
    await audit.record(
        tx,
        actor,
        "attendance.rule.end",
        school_id=school_id,
        target_type="attendance_rule",
        target_id=rule_id,
    )


@owns_transaction
async def set_class_teachers(
    tx: Tx, actor: Actor, school_id: int, class_id: int, *, user_ids: list[int]
) -> None:
    """Who keeps this class's attendance: users of this school with the teacher role."""
    actor.require(*ADMIN_ROLES, school_id=school_id)
    ok = await tx.fetchval(
        "SELECT 1 FROM classes WHERE school_id = $1 AND id = $2", school_id, class_id
    )
    if not ok:
        raise NotFound("no such class in this school", field="class_id")
    wanted = sorted(set(user_ids))
    teachers = await tx.fetchval(
        """SELECT count(DISTINCT u.id) FROM users u JOIN user_roles r ON r.user_id = u.id
            WHERE u.id = ANY($2::bigint[]) AND r.role = 'teacher' AND r.school_id = $1""",
        school_id,
        wanted,
    )
    if teachers != len(wanted):
        raise ValidationFailed(
            "every user in user_ids is a teacher of this school", field="user_ids"
        )
    before = [
        r["user_id"]
        for r in await tx.fetch(
            """SELECT user_id FROM attendance_class_teachers
                WHERE school_id = $1 AND class_id = $2 ORDER BY user_id""",
            school_id,
            class_id,
        )
    ]
    await tx.execute(
        """DELETE FROM attendance_class_teachers
            WHERE school_id = $1 AND class_id = $2 AND user_id <> ALL($3::bigint[])""",
        school_id,
        class_id,
        wanted,
    )
    await tx.executemany(
        """INSERT INTO attendance_class_teachers(school_id, class_id, user_id)
           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
        [(school_id, class_id, u) for u in wanted],
    )
    await audit.record(
        tx,
        actor,
        "attendance.class.teachers",
        school_id=school_id,
        target_type="class",
        target_id=class_id,
        before={"user_ids": before},
        after={"user_ids": wanted},
    )


async def overview(conn: Conn, actor: Actor, school_id: int) -> dict[str, list[dict[str, Any]]]:
    """Points with their doors, the periods of every class, and each class's teachers."""
    actor.require(*ADMIN_ROLES, school_id=school_id)
    points = await conn.fetch(
        """SELECT p.id, p.name, p.kind,
                  ARRAY(SELECT d.name FROM attendance_point_doors pd
                          JOIN access_doors d ON d.school_id = pd.school_id AND d.id = pd.door_id
                         WHERE pd.school_id = p.school_id AND pd.point_id = p.id
                         ORDER BY d.name) AS doors
             FROM attendance_points p WHERE p.school_id = $1 ORDER BY p.name""",
        school_id,
    )
    periods = await conn.fetch(
        """SELECT r.id, r.name, c.name AS class, p.name AS point, r.weekdays,
                  to_char(r.opens_at, 'HH24:MI') AS opens_at,
                  to_char(r.on_time_until, 'HH24:MI') AS on_time_until,
                  to_char(r.closes_at, 'HH24:MI') AS closes_at,
                  r.direction, r.on_holidays, r.notify_guardians, r.class_id, r.point_id
             FROM attendance_rules r
             JOIN classes c ON c.school_id = r.school_id AND c.id = r.class_id
             JOIN attendance_points p ON p.school_id = r.school_id AND p.id = r.point_id
            WHERE r.school_id = $1 AND r.active ORDER BY c.name, r.opens_at""",
        school_id,
    )
    teachers = await conn.fetch(
        """SELECT t.class_id, c.name AS class, t.user_id, u.username,
                  coalesce(nullif(u.display_name, ''), u.username) AS teacher
             FROM attendance_class_teachers t
             JOIN classes c ON c.school_id = t.school_id AND c.id = t.class_id
             JOIN users u ON u.id = t.user_id
            WHERE t.school_id = $1 ORDER BY c.name, u.username""",
        school_id,
    )
    return {
        "points": [dict(r) for r in points],
        "periods": [dict(r) | {"weekdays": list(r["weekdays"])} for r in periods],
        "teachers": [dict(r) for r in teachers],
    }
