"""Reads for the console and the API: the access model, readers' sync state, door events."""

from __future__ import annotations

from typing import Any

from campuscard.db.pool import Conn
from campuscard.platform.actors import Actor

READ_ROLES = ("school_admin", "card_center")


async def overview(conn: Conn, actor: Actor, school_id: int) -> dict[str, list[dict[str, Any]]]:
    """Zones, doors (with the version each controller last fetched), groups, schedules,
    the school's own days, grants, buildings."""
    actor.require(*READ_ROLES, school_id=school_id)
    version = await conn.fetchval(
        "SELECT version FROM access_versions WHERE school_id = $1", school_id
    )
    doors = await conn.fetch(
        """SELECT d.id, d.name, d.exit_reader, d.apb_seconds, z.name AS zone, t.sn,
                  (SELECT max(v.version) FROM access_served v
                    WHERE v.school_id = d.school_id AND v.terminal_id = d.terminal_id)
                      AS held_version,
                  (SELECT max(v.served_at) FROM access_served v
                    WHERE v.school_id = d.school_id AND v.terminal_id = d.terminal_id)
                      AS synced_at,
                  ARRAY(SELECT g.name FROM access_group_doors gd
                          JOIN access_door_groups g ON g.school_id = gd.school_id
                                                   AND g.id = gd.group_id
                         WHERE gd.school_id = d.school_id AND gd.door_id = d.id
                         ORDER BY g.name) AS groups
             FROM access_doors d
             LEFT JOIN access_zones z ON z.school_id = d.school_id AND z.id = d.zone_id
             LEFT JOIN terminals t ON t.school_id = d.school_id AND t.id = d.terminal_id
            WHERE d.school_id = $1 ORDER BY d.name""",
        school_id,
    )
    out: dict[str, list[dict[str, Any]]] = {
        "zones": [
            dict(r)
            for r in await conn.fetch(
                "SELECT id, name, antipassback, reset_hour FROM access_zones "
                "WHERE school_id = $1 ORDER BY name",
                school_id,
            )
        ],
        "doors": [dict(r) | {"current_version": version or 0} for r in doors],
        "groups": [
            dict(r)
            for r in await conn.fetch(
                """SELECT g.id, g.name, count(gd.door_id) AS doors,
                          coalesce(h.entries, 0) AS entries
                     FROM access_door_groups g
                     LEFT JOIN access_group_doors gd ON gd.school_id = g.school_id
                                                    AND gd.group_id = g.id
                     LEFT JOIN access_group_heads h ON h.school_id = g.school_id
                                                   AND h.group_id = g.id
                    WHERE g.school_id = $1 GROUP BY g.id, g.name, h.entries ORDER BY g.name""",
                school_id,
            )
        ],
        "schedules": [
            dict(r)
            for r in await conn.fetch(
                "SELECT id, name, week, holiday FROM access_schedules "
                "WHERE school_id = $1 ORDER BY name",
                school_id,
            )
        ],
        "days": [
            dict(r)
            for r in await conn.fetch(
                "SELECT day, kind, as_weekday, name FROM access_calendar_days "
                "WHERE school_id = $1 AND day >= cc_business_date($1) - 31 ORDER BY day",
                school_id,
            )
        ],
        "grants": [
            dict(r)
            for r in await conn.fetch(
                """SELECT a.id, a.subject, p.name AS person, c.name AS class, a.role,
                          a.card_kind, g.name AS door_group, s.name AS schedule,
                          a.valid_from, a.valid_until, a.note
                     FROM access_grants a
                     JOIN access_door_groups g ON g.school_id = a.school_id
                                              AND g.id = a.group_id
                     JOIN access_schedules s ON s.school_id = a.school_id
                                            AND s.id = a.schedule_id
                     LEFT JOIN persons p ON p.school_id = a.school_id AND p.id = a.person_id
                     LEFT JOIN classes c ON c.school_id = a.school_id AND c.id = a.class_id
                    WHERE a.school_id = $1 AND (a.valid_until IS NULL OR a.valid_until > now())
                    ORDER BY a.id DESC LIMIT 500""",
                school_id,
            )
        ],
        "buildings": [
            dict(r)
            for r in await conn.fetch(
                """SELECT b.id, b.name, g.name AS door_group, s.name AS schedule,
                          (SELECT count(*) FROM access_dorm_assignments a
                            WHERE a.school_id = b.school_id AND a.building_id = b.id)
                              AS residents
                     FROM access_buildings b
                     JOIN access_door_groups g ON g.school_id = b.school_id
                                              AND g.id = b.group_id
                     JOIN access_schedules s ON s.school_id = b.school_id
                                            AND s.id = b.schedule_id
                    WHERE b.school_id = $1 ORDER BY b.name""",
                school_id,
            )
        ],
    }
    return out


async def recent_events(
    conn: Conn, actor: Actor, school_id: int, *, limit: int = 100, door_id: int | None = None
) -> list[dict[str, Any]]:
    actor.require(*READ_ROLES, school_id=school_id)
    rows = await conn.fetch(
        """SELECT e.terminal_id, e.seq, e.kind, e.direction, e.card_number, e.reason, e.flag,
                  e.occurred_at, e.received_at, d.name AS door, p.name AS person,
                  c.state AS card_state
             FROM access_events e
             LEFT JOIN access_doors d ON d.school_id = e.school_id AND d.id = e.door_id
             LEFT JOIN persons p ON p.school_id = e.school_id AND p.id = e.person_id
             LEFT JOIN cards c ON c.school_id = e.school_id AND c.number = e.card_number
            WHERE e.school_id = $1 AND ($3::bigint IS NULL OR e.door_id = $3)
            ORDER BY e.occurred_at DESC, e.seq DESC LIMIT $2""",
        school_id,
        limit,
        door_id,
    )
    return [dict(r) for r in rows]


async def person_by_number(conn: Conn, school_id: int, number: str) -> int | None:
    """The id of the person with this student or staff number (a grant's form names it)."""
    person_id: int | None = await conn.fetchval(
        "SELECT id FROM persons WHERE school_id = $1 AND number = $2", school_id, number.strip()
    )
    return person_id


async def choices(conn: Conn, school_id: int) -> dict[str, list[dict[str, Any]]]:
    """What the console's forms choose from: classes and doors."""
    classes = await conn.fetch(
        "SELECT id, name FROM classes WHERE school_id = $1 ORDER BY name", school_id
    )
    doors = await conn.fetch(
        "SELECT id, name FROM access_doors WHERE school_id = $1 ORDER BY name", school_id
    )
    return {"classes": [dict(r) for r in classes], "doors": [dict(r) for r in doors]}


async def door_terminals(conn: Conn, school_id: int) -> list[dict[str, Any]]:
    """The school's door controllers (terminals of kind 'door') and the door each controls."""
    rows = await conn.fetch(
        """SELECT t.sn, d.name AS door FROM terminals t
             LEFT JOIN access_doors d ON d.school_id = t.school_id AND d.terminal_id = t.id
            WHERE t.school_id = $1 AND t.kind = 'door' ORDER BY t.sn""",
        school_id,
    )
    return [dict(r) for r in rows]


_EDITABLE = {
    "zone": "SELECT id, name, antipassback, reset_hour FROM access_zones "
    "WHERE school_id = $1 AND id = $2",
    "door": """SELECT d.id, d.name, coalesce(t.sn, '') AS terminal_sn, d.zone_id, d.exit_reader,
                      d.apb_seconds, d.held_open_seconds
                 FROM access_doors d
                 LEFT JOIN terminals t ON t.school_id = d.school_id AND t.id = d.terminal_id
                WHERE d.school_id = $1 AND d.id = $2""",
    "group": """SELECT g.id, g.name,
                       ARRAY(SELECT door_id FROM access_group_doors gd
                              WHERE gd.school_id = g.school_id AND gd.group_id = g.id
                              ORDER BY door_id) AS door_ids
                  FROM access_door_groups g WHERE g.school_id = $1 AND g.id = $2""",
    "schedule": "SELECT id, name, week, holiday FROM access_schedules "
    "WHERE school_id = $1 AND id = $2",
    "building": "SELECT id, name, group_id, schedule_id FROM access_buildings "
    "WHERE school_id = $1 AND id = $2",
    "point": """SELECT p.id, p.name, p.kind,
                       ARRAY(SELECT door_id FROM attendance_point_doors pd
                              WHERE pd.school_id = p.school_id AND pd.point_id = p.id
                              ORDER BY door_id) AS door_ids
                  FROM attendance_points p WHERE p.school_id = $1 AND p.id = $2""",
    "teachers": """SELECT c.id, c.name,
                          ARRAY(SELECT user_id FROM attendance_class_teachers t
                                 WHERE t.school_id = c.school_id AND t.class_id = c.id
                                 ORDER BY user_id) AS user_ids
                     FROM classes c WHERE c.school_id = $1 AND c.id = $2""",
}


async def editable(
    conn: Conn, actor: Actor, school_id: int, kind: str, row_id: int
) -> dict[str, Any] | None:
    """One row of the access or attendance model as its console form edits it."""
    actor.require(*READ_ROLES, school_id=school_id)
    row = await conn.fetchrow(_EDITABLE[kind], school_id, row_id)
    return dict(row) if row is not None else None


async def school_teachers(conn: Conn, school_id: int) -> list[dict[str, Any]]:
    """Users of the school with the teacher role (who may keep a class's attendance)."""
    rows = await conn.fetch(
        """SELECT DISTINCT u.id, u.username,
                  coalesce(nullif(u.display_name, ''), u.username) AS name
             FROM users u JOIN user_roles r ON r.user_id = u.id
            WHERE r.school_id = $1 AND r.role = 'teacher' ORDER BY u.username""",
        school_id,
    )
    return [dict(r) for r in rows]


async def list_state(conn: Conn, school_id: int) -> dict[str, Any]:
    """The readers' list version, and whether a change made since is still to be compiled into
    the next one (the worker's tick or the first reader that asks does it, within seconds)."""
    row = await conn.fetchrow(
        """SELECT coalesce(v.version, 0) AS version, v.refreshed_at,
                  coalesce(h.seq, 0) > coalesce(v.refreshed_seq, 0) AS pending
             FROM schools s
             LEFT JOIN access_heads h ON h.school_id = s.id
             LEFT JOIN access_versions v ON v.school_id = s.id
            WHERE s.id = $1""",
        school_id,
    )
    return dict(row) if row is not None else {"version": 0, "refreshed_at": None, "pending": False}


async def visitors(
    conn: Conn, actor: Actor, school_id: int, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Visitors whose card is still valid or ended in the last week, newest first."""
    actor.require(*READ_ROLES, school_id=school_id)
    rows = await conn.fetch(
        """SELECT v.id, p.name, p.number, c.number AS card_number, v.host, v.purpose,
                  v.valid_from, v.valid_until, v.state
             FROM access_visitors v
             JOIN persons p ON p.school_id = v.school_id AND p.id = v.person_id
             JOIN cards c ON c.school_id = v.school_id AND c.id = v.card_id
            WHERE v.school_id = $1 AND v.valid_until > now() - interval '7 days'
            ORDER BY v.valid_from DESC, v.id DESC LIMIT $2""",
        school_id,
        limit,
    )
    return [dict(r) for r in rows]
