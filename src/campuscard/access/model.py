"""The access model an operator keeps: zones, doors, door groups, schedules, the school's own
calendar days, grants, dormitory buildings and assignments. Every write is audited; every
write also changes what readers hold (triggers bump the school's access seq, lists.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from campuscard.access import rules
from campuscard.db import distribution
from campuscard.db.pool import Conn
from campuscard.db.tx import Tx, owns_transaction
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound, ValidationFailed

# doors, zones, groups, schedules and the calendar belong to the school's administrators;
# grants, dormitories and visitors also to the card center
MODEL_ROLES = ("school_admin",)
GRANT_ROLES = ("card_center",)
SUBJECTS = ("person", "class", "role", "card_kind")


def to_minute(at: datetime | None, field: str) -> datetime | None:
    """Grants are to the minute; a time without a zone is refused (which day would it be?)."""
    if at is None:
        return None
    if at.tzinfo is None:
        raise ValidationFailed(f"{field}: give a time zone offset, e.g. +08:00", field=field)
    if at.second or at.microsecond:
        raise ValidationFailed(f"{field}: grants are to the minute", field=field)
    return at.astimezone(UTC)


def check_name(name: str) -> str:
    """A name as the console and the API take it: trimmed, 1 to 64 characters."""
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise ValidationFailed("name: 1 to 64 characters", field="name")
    return name


def _unique(err: asyncpg.UniqueViolationError, what: str) -> Conflict:
    return Conflict(f"a {what} of this name already exists", field="name")


async def _exists(conn: Conn, table: str, school_id: int, row_id: int, field: str) -> None:
    ok = await conn.fetchval(
        f"SELECT 1 FROM {table} WHERE school_id = $1 AND id = $2", school_id, row_id
    )
    if not ok:
        raise NotFound(f"no such {field.removesuffix('_id')} in this school", field=field)


@dataclass(frozen=True)
class _Kind:
    """A row of the model the console creates and edits as a whole: its table, the noun of its
    audit actions (``access.<noun>.create``/``.update``), its audit target and its id field."""

    table: str
    noun: str
    field: str
    conflict: Callable[[asyncpg.UniqueViolationError], Conflict]

    @property
    def target(self) -> str:
        return f"access_{self.noun}"


async def _insert(
    tx: Tx,
    actor: Actor,
    school_id: int,
    kind: _Kind,
    values: dict[str, Any],
    after: dict[str, Any] | None = None,
) -> int:
    """Insert the row and audit it; a name already taken is a Conflict on ``name``."""
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(2, len(values) + 2))
    try:
        row_id: int = await tx.fetchval(
            f"INSERT INTO {kind.table}(school_id, {columns}) VALUES ($1, {params}) RETURNING id",
            school_id,
            *values.values(),
        )
    except asyncpg.UniqueViolationError as err:
        raise kind.conflict(err) from err
    await audit.record(
        tx,
        actor,
        f"access.{kind.noun}.create",
        school_id=school_id,
        target_type=kind.target,
        target_id=row_id,
        after=values if after is None else after,
    )
    return row_id


async def _before(
    tx: Tx, school_id: int, kind: _Kind, row_id: int, columns: list[str]
) -> dict[str, Any]:
    """The row as it is, locked for the change; NotFound on the kind's id field."""
    row = await tx.fetchrow(
        f"""SELECT {", ".join(columns)} FROM {kind.table}
             WHERE school_id = $1 AND id = $2 FOR UPDATE""",
        school_id,
        row_id,
    )
    if row is None:
        raise NotFound(f"no such {kind.noun} in this school", field=kind.field)
    return dict(row)


async def _update(
    tx: Tx,
    actor: Actor,
    school_id: int,
    kind: _Kind,
    row_id: int,
    values: dict[str, Any],
    *,
    before: dict[str, Any],
    after: dict[str, Any] | None = None,
) -> None:
    """Write the row's new values and audit before → after."""
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(values, start=3))
    try:
        await tx.execute(
            f"UPDATE {kind.table} SET {sets} WHERE school_id = $1 AND id = $2",
            school_id,
            row_id,
            *values.values(),
        )
    except asyncpg.UniqueViolationError as err:
        raise kind.conflict(err) from err
    await audit.record(
        tx,
        actor,
        f"access.{kind.noun}.update",
        school_id=school_id,
        target_type=kind.target,
        target_id=row_id,
        before=before,
        after=values if after is None else after,
    )


ZONE = _Kind("access_zones", "zone", "zone_id", lambda err: _unique(err, "zone"))


def _check_zone(name: str, antipassback: str, reset_hour: int) -> str:
    if antipassback not in ("off", "hard", "soft"):
        raise ValidationFailed("antipassback is off, hard or soft", field="antipassback")
    if not 0 <= reset_hour <= 23:
        raise ValidationFailed("reset_hour is a local hour 0-23", field="reset_hour")
    return check_name(name)


@owns_transaction
async def create_zone(
    tx: Tx, actor: Actor, school_id: int, *, name: str, antipassback: str, reset_hour: int
) -> int:
    actor.require(*MODEL_ROLES, school_id=school_id)
    name = _check_zone(name, antipassback, reset_hour)
    values = {"name": name, "antipassback": antipassback, "reset_hour": reset_hour}
    return await _insert(tx, actor, school_id, ZONE, values)


@owns_transaction
async def update_zone(
    tx: Tx,
    actor: Actor,
    school_id: int,
    zone_id: int,
    *,
    name: str,
    antipassback: str,
    reset_hour: int,
) -> None:
    """Rename a zone or change its anti-passback; its doors' readers get it with their list."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    name = _check_zone(name, antipassback, reset_hour)
    values = {"name": name, "antipassback": antipassback, "reset_hour": reset_hour}
    before = await _before(tx, school_id, ZONE, zone_id, list(values))
    await _update(tx, actor, school_id, ZONE, zone_id, values, before=before)


async def _door_fields(
    tx: Tx,
    school_id: int,
    *,
    name: str,
    terminal_sn: str | None,
    zone_id: int | None,
    apb_seconds: int,
    held_open_seconds: int,
) -> tuple[str, int | None]:
    """The door's checked name and its controller's terminal id."""
    name = check_name(name)
    terminal_id = None
    if terminal_sn is not None:
        row = await tx.fetchrow(
            "SELECT id, kind FROM terminals WHERE school_id = $1 AND sn = $2",
            school_id,
            terminal_sn,
        )
        if row is None:
            raise NotFound("no such terminal in this school", field="terminal_sn")
        if row["kind"] != "door":
            raise ValidationFailed(
                "a door's controller is a terminal of kind 'door'", field="terminal_sn"
            )
        terminal_id = row["id"]
    if zone_id is not None:
        await _exists(tx, "access_zones", school_id, zone_id, "zone_id")
    if not 0 <= apb_seconds <= 86400:
        raise ValidationFailed("apb_seconds is 0 (until the reset) to 86400", field="apb_seconds")
    if not 5 <= held_open_seconds <= 3600:
        raise ValidationFailed("held_open_seconds is 5 to 3600", field="held_open_seconds")
    return name, terminal_id


def _door_conflict(err: asyncpg.UniqueViolationError) -> Conflict:
    if "terminal" in str(distribution.constraint_name(err) or ""):
        return Conflict("this terminal already controls another door", field="terminal_sn")
    return _unique(err, "door")


DOOR = _Kind("access_doors", "door", "door_id", _door_conflict)


def _door_values(
    name: str,
    terminal_id: int | None,
    zone_id: int | None,
    exit_reader: bool,
    apb_seconds: int,
    held_open_seconds: int,
) -> dict[str, Any]:
    return {
        "name": name,
        "zone_id": zone_id,
        "terminal_id": terminal_id,
        "exit_reader": exit_reader,
        "apb_seconds": apb_seconds,
        "held_open_seconds": held_open_seconds,
    }


def _door_audit(values: dict[str, Any], terminal_sn: str | None) -> dict[str, Any]:
    """What the audit log shows of a door: its controller by serial, not by row id."""
    return {k: v for k, v in values.items() if k != "terminal_id"} | {"terminal_sn": terminal_sn}


@owns_transaction
async def create_door(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    name: str,
    terminal_sn: str | None,
    zone_id: int | None = None,
    exit_reader: bool = False,
    apb_seconds: int = 0,
    held_open_seconds: int = 30,
) -> int:
    """A door and its controller (a registered terminal of kind 'door' of this school)."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    name, terminal_id = await _door_fields(
        tx,
        school_id,
        name=name,
        terminal_sn=terminal_sn,
        zone_id=zone_id,
        apb_seconds=apb_seconds,
        held_open_seconds=held_open_seconds,
    )
    values = _door_values(name, terminal_id, zone_id, exit_reader, apb_seconds, held_open_seconds)
    return await _insert(tx, actor, school_id, DOOR, values, _door_audit(values, terminal_sn))


@owns_transaction
async def update_door(
    tx: Tx,
    actor: Actor,
    school_id: int,
    door_id: int,
    *,
    name: str,
    terminal_sn: str | None,
    zone_id: int | None = None,
    exit_reader: bool = False,
    apb_seconds: int = 0,
    held_open_seconds: int = 30,
) -> None:
    """Change a door: its name, controller (a replaced controller takes over the door's list),
    readers, zone and timings."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    before = await tx.fetchrow(
        """SELECT d.name, t.sn AS terminal_sn, d.zone_id, d.exit_reader, d.apb_seconds,
                  d.held_open_seconds
             FROM access_doors d
             LEFT JOIN terminals t ON t.school_id = d.school_id AND t.id = d.terminal_id
            WHERE d.school_id = $1 AND d.id = $2 FOR UPDATE OF d""",
        school_id,
        door_id,
    )
    if before is None:
        raise NotFound("no such door in this school", field="door_id")
    name, terminal_id = await _door_fields(
        tx,
        school_id,
        name=name,
        terminal_sn=terminal_sn,
        zone_id=zone_id,
        apb_seconds=apb_seconds,
        held_open_seconds=held_open_seconds,
    )
    values = _door_values(name, terminal_id, zone_id, exit_reader, apb_seconds, held_open_seconds)
    after = _door_audit(values, terminal_sn)
    await _update(tx, actor, school_id, DOOR, door_id, values, before=dict(before), after=after)


async def _check_doors(conn: Conn, school_id: int, door_ids: list[int]) -> None:
    found = await conn.fetchval(
        "SELECT count(*) FROM access_doors WHERE school_id = $1 AND id = ANY($2::bigint[])",
        school_id,
        door_ids,
    )
    if found != len(set(door_ids)):
        raise NotFound("a door in door_ids is not a door of this school", field="door_ids")


GROUP = _Kind("access_door_groups", "group", "group_id", lambda err: _unique(err, "door group"))


@owns_transaction
async def create_group(
    tx: Tx, actor: Actor, school_id: int, *, name: str, door_ids: list[int]
) -> int:
    actor.require(*MODEL_ROLES, school_id=school_id)
    name = check_name(name)
    await _check_doors(tx, school_id, door_ids)
    after = {"name": name, "door_ids": sorted(set(door_ids))}
    group_id = await _insert(tx, actor, school_id, GROUP, {"name": name}, after)
    await _set_doors(tx, school_id, group_id, door_ids)
    return group_id


async def _set_doors(tx: Tx, school_id: int, group_id: int, door_ids: list[int]) -> None:
    await tx.execute(
        """DELETE FROM access_group_doors WHERE school_id = $1 AND group_id = $2
              AND door_id <> ALL($3::bigint[])""",
        school_id,
        group_id,
        door_ids,
    )
    await tx.executemany(
        """INSERT INTO access_group_doors(school_id, group_id, door_id) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING""",
        [(school_id, group_id, d) for d in sorted(set(door_ids))],
    )


@owns_transaction
async def update_group(
    tx: Tx, actor: Actor, school_id: int, group_id: int, *, name: str, door_ids: list[int]
) -> None:
    """Rename a door group and set its doors in one change."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    name = check_name(name)
    before = await tx.fetchval(
        "SELECT name FROM access_door_groups WHERE school_id = $1 AND id = $2 FOR UPDATE",
        school_id,
        group_id,
    )
    if before is None:
        raise NotFound("no such group in this school", field="group_id")
    await _check_doors(tx, school_id, door_ids)
    if before != name:
        try:
            await tx.execute(
                "UPDATE access_door_groups SET name = $3 WHERE school_id = $1 AND id = $2",
                school_id,
                group_id,
                name,
            )
        except asyncpg.UniqueViolationError as err:
            raise _unique(err, "door group") from err
    await set_group_doors.in_tx(tx, actor, school_id, group_id, door_ids=door_ids)
    if before != name:
        await audit.record(
            tx,
            actor,
            "access.group.rename",
            school_id=school_id,
            target_type="access_group",
            target_id=group_id,
            before={"name": before},
            after={"name": name},
        )


@owns_transaction
async def set_group_doors(
    tx: Tx, actor: Actor, school_id: int, group_id: int, *, door_ids: list[int]
) -> None:
    actor.require(*MODEL_ROLES, school_id=school_id)
    await _exists(tx, "access_door_groups", school_id, group_id, "group_id")
    await _check_doors(tx, school_id, door_ids)
    before = await tx.fetchval(
        """SELECT coalesce(array_agg(door_id ORDER BY door_id), '{}') FROM access_group_doors
            WHERE school_id = $1 AND group_id = $2""",
        school_id,
        group_id,
    )
    await _set_doors(tx, school_id, group_id, door_ids)
    await audit.record(
        tx,
        actor,
        "access.group.doors",
        school_id=school_id,
        target_type="access_group",
        target_id=group_id,
        before={"door_ids": list(before)},
        after={"door_ids": sorted(set(door_ids))},
    )


@owns_transaction
async def save_schedule(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    name: str,
    week: Any,
    holiday: Any,
    schedule_id: int | None = None,
) -> int:
    """Create a schedule, or replace one's intervals (``schedule_id``)."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    name = check_name(name)
    parsed = rules.parse_schedule(week, holiday)
    wire_week = {str(d): [_hhmm(iv) for iv in ivs] for d, ivs in sorted(parsed.week.items())}
    wire_holiday = [_hhmm(iv) for iv in parsed.holiday]
    try:
        if schedule_id is None:
            schedule_id = await tx.fetchval(
                """INSERT INTO access_schedules(school_id, name, week, holiday)
                   VALUES ($1, $2, $3, $4) RETURNING id""",
                school_id,
                name,
                json.dumps(wire_week),
                json.dumps(wire_holiday),
            )
            action = "access.schedule.create"
        else:
            updated = await tx.fetchval(
                """UPDATE access_schedules SET name = $3, week = $4, holiday = $5
                    WHERE school_id = $1 AND id = $2 RETURNING id""",
                school_id,
                schedule_id,
                name,
                json.dumps(wire_week),
                json.dumps(wire_holiday),
            )
            if updated is None:
                raise NotFound("no such schedule in this school", field="schedule_id")
            action = "access.schedule.update"
    except asyncpg.UniqueViolationError as err:
        raise _unique(err, "schedule") from err
    assert schedule_id is not None
    await audit.record(
        tx,
        actor,
        action,
        school_id=school_id,
        target_type="access_schedule",
        target_id=schedule_id,
        after={"name": name, "week": wire_week, "holiday": wire_holiday},
    )
    return schedule_id


def _hhmm(interval: tuple[int, int]) -> list[str]:
    return [f"{m // 60:02d}:{m % 60:02d}" for m in interval]


@owns_transaction
async def set_calendar_day(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    day: date,
    kind: str,
    as_weekday: int | None,
    name: str,
) -> None:
    """The school's own day: a closure (holiday intervals) or a day run as a given weekday."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    if kind not in ("holiday", "workday"):
        raise ValidationFailed("kind is holiday or workday", field="kind")
    if kind == "workday" and (as_weekday is None or not 1 <= as_weekday <= 7):
        raise ValidationFailed("a workday runs as a weekday 1 (Monday) to 7", field="as_weekday")
    if kind == "holiday":
        as_weekday = None
    await tx.execute(
        """INSERT INTO access_calendar_days(school_id, day, kind, as_weekday, name)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (school_id, day) DO UPDATE
              SET kind = EXCLUDED.kind, as_weekday = EXCLUDED.as_weekday, name = EXCLUDED.name""",
        school_id,
        day,
        kind,
        as_weekday,
        name,
    )
    await audit.record(
        tx,
        actor,
        "access.calendar.set",
        school_id=school_id,
        target_type="access_day",
        target_id=day.isoformat(),
        after={"kind": kind, "as_weekday": as_weekday, "name": name},
    )


@owns_transaction
async def remove_calendar_day(tx: Tx, actor: Actor, school_id: int, *, day: date) -> None:
    actor.require(*MODEL_ROLES, school_id=school_id)
    gone = await tx.fetchval(
        "DELETE FROM access_calendar_days WHERE school_id = $1 AND day = $2 RETURNING day",
        school_id,
        day,
    )
    if gone is None:
        raise NotFound("the school has no own entry for this day", field="day")
    await audit.record(
        tx,
        actor,
        "access.calendar.remove",
        school_id=school_id,
        target_type="access_day",
        target_id=day.isoformat(),
    )


async def grant_in_tx(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    subject: str,
    subject_value: int | str,
    group_id: int,
    schedule_id: int,
    valid_from: datetime | None,
    valid_until: datetime | None,
    note: str = "",
) -> int:
    """Who -> which door group -> which schedule, between which times (to the minute)."""
    actor.require(*GRANT_ROLES, school_id=school_id)
    if subject not in SUBJECTS:
        raise ValidationFailed(f"subject is one of {', '.join(SUBJECTS)}", field="subject")
    valid_from = to_minute(valid_from, "valid_from")
    valid_until = to_minute(valid_until, "valid_until")
    if valid_from and valid_until and valid_until <= valid_from:
        raise ValidationFailed("valid_until must be after valid_from", field="valid_until")
    cols: dict[str, Any] = {"person_id": None, "class_id": None, "role": None, "card_kind": None}
    if subject == "person":
        if not isinstance(subject_value, int):
            raise ValidationFailed("a person is given by id", field="person_id")
        await _exists(tx, "persons", school_id, subject_value, "person_id")
        cols["person_id"] = subject_value
    elif subject == "class":
        if not isinstance(subject_value, int):
            raise ValidationFailed("a class is given by id", field="class_id")
        await _exists(tx, "classes", school_id, subject_value, "class_id")
        cols["class_id"] = subject_value
    elif subject == "role":
        if subject_value not in ("student", "staff", "visitor"):
            raise ValidationFailed("role is student, staff or visitor", field="role")
        cols["role"] = subject_value
    else:
        if subject_value not in ("student", "staff", "temporary"):
            raise ValidationFailed("card_kind is student, staff or temporary", field="card_kind")
        cols["card_kind"] = subject_value
    await _exists(tx, "access_door_groups", school_id, group_id, "group_id")
    await _exists(tx, "access_schedules", school_id, schedule_id, "schedule_id")
    grant_id: int = await tx.fetchval(
        """INSERT INTO access_grants(school_id, subject, person_id, class_id, role, card_kind,
                                     group_id, schedule_id, valid_from, valid_until, note,
                                     created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id""",
        school_id,
        subject,
        cols["person_id"],
        cols["class_id"],
        cols["role"],
        cols["card_kind"],
        group_id,
        schedule_id,
        valid_from,
        valid_until,
        note,
        actor.name,
    )
    await audit.record(
        tx,
        actor,
        "access.grant.create",
        school_id=school_id,
        target_type="access_grant",
        target_id=grant_id,
        after={
            "subject": subject,
            "value": subject_value,
            "group_id": group_id,
            "schedule_id": schedule_id,
            "valid_from": valid_from.isoformat() if valid_from else None,
            "valid_until": valid_until.isoformat() if valid_until else None,
        },
    )
    return grant_id


@owns_transaction
async def create_grant(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    subject: str,
    subject_value: int | str,
    group_id: int,
    schedule_id: int,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    note: str = "",
) -> int:
    return await grant_in_tx(
        tx,
        actor,
        school_id,
        subject=subject,
        subject_value=subject_value,
        group_id=group_id,
        schedule_id=schedule_id,
        valid_from=valid_from,
        valid_until=valid_until,
        note=note,
    )


@owns_transaction
async def end_grant(tx: Tx, actor: Actor, school_id: int, grant_id: int) -> None:
    """A grant ends now (kept for the record); one that had not started yet is removed."""
    actor.require(*GRANT_ROLES, school_id=school_id)
    row = await tx.fetchrow(
        """SELECT valid_from, valid_until FROM access_grants
            WHERE school_id = $1 AND id = $2 FOR UPDATE""",
        school_id,
        grant_id,
    )
    if row is None:
        raise NotFound("no such grant in this school", field="grant_id")
    now_min = await tx.fetchval("SELECT date_trunc('minute', now())")
    if row["valid_until"] is not None and row["valid_until"] <= now_min:
        raise Conflict("this grant has already ended", field="grant_id")
    if row["valid_from"] is not None and row["valid_from"] >= now_min:
        await tx.execute(
            "DELETE FROM access_grants WHERE school_id = $1 AND id = $2", school_id, grant_id
        )
    else:
        await tx.execute(
            "UPDATE access_grants SET valid_until = $3 WHERE school_id = $1 AND id = $2",
            school_id,
            grant_id,
            now_min,
        )
    await audit.record(
        tx,
        actor,
        "access.grant.end",
        school_id=school_id,
        target_type="access_grant",
        target_id=grant_id,
    )


BUILDING = _Kind("access_buildings", "building", "building_id", lambda e: _unique(e, "building"))


@owns_transaction
async def create_building(
    tx: Tx, actor: Actor, school_id: int, *, name: str, group_id: int, schedule_id: int
) -> int:
    """A dormitory building: its residents may open its door group on its schedule."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    name = check_name(name)
    await _exists(tx, "access_door_groups", school_id, group_id, "group_id")
    await _exists(tx, "access_schedules", school_id, schedule_id, "schedule_id")
    values = {"name": name, "group_id": group_id, "schedule_id": schedule_id}
    return await _insert(tx, actor, school_id, BUILDING, values)


@owns_transaction
async def update_building(
    tx: Tx,
    actor: Actor,
    school_id: int,
    building_id: int,
    *,
    name: str,
    group_id: int,
    schedule_id: int,
) -> None:
    """Rename a building or change the doors and hours its residents get."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    name = check_name(name)
    values = {"name": name, "group_id": group_id, "schedule_id": schedule_id}
    before = await _before(tx, school_id, BUILDING, building_id, list(values))
    await _exists(tx, "access_door_groups", school_id, group_id, "group_id")
    await _exists(tx, "access_schedules", school_id, schedule_id, "schedule_id")
    await _update(tx, actor, school_id, BUILDING, building_id, values, before=before)


@owns_transaction
async def assign_dorm(
    tx: Tx,
    actor: Actor,
    school_id: int,
    *,
    person_id: int,
    building_id: int | None,
    room: str = "",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> None:
    """Move a person into a building (its doors open for them by themselves), or out of any
    building (``building_id`` None)."""
    actor.require(*GRANT_ROLES, school_id=school_id)
    await _exists(tx, "persons", school_id, person_id, "person_id")
    if building_id is None:
        await tx.execute(
            "DELETE FROM access_dorm_assignments WHERE school_id = $1 AND person_id = $2",
            school_id,
            person_id,
        )
    else:
        await _exists(tx, "access_buildings", school_id, building_id, "building_id")
        valid_from = to_minute(valid_from, "valid_from")
        valid_until = to_minute(valid_until, "valid_until")
        await tx.execute(
            """INSERT INTO access_dorm_assignments(school_id, person_id, building_id, room,
                                                   valid_from, valid_until)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (school_id, person_id) DO UPDATE
                  SET building_id = EXCLUDED.building_id, room = EXCLUDED.room,
                      valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until""",
            school_id,
            person_id,
            building_id,
            room,
            valid_from,
            valid_until,
        )
    await audit.record(
        tx,
        actor,
        "access.dorm.assign",
        school_id=school_id,
        target_type="person",
        target_id=person_id,
        after={"building_id": building_id, "room": room},
    )


SCHEDULE = _Kind("access_schedules", "schedule", "schedule_id", lambda e: _unique(e, "schedule"))
# what an operator may delete, and what keeps a row in use (the foreign keys say it; a door's
# recorded passages are checked first, so its name stays in their history)
DELETABLE = {"zone": ZONE, "door": DOOR, "group": GROUP, "schedule": SCHEDULE, "building": BUILDING}
USED_BY = {
    "access_doors": "doors",
    "access_presence": "people inside the zone",
    "attendance_point_doors": "attendance points",
    "access_grants": "grants (ended ones too)",
    "access_buildings": "buildings",
    "access_dorm_assignments": "residents",
    "access_events": "recorded passages",
}


def _in_use(kind: _Kind, used_by: str) -> Conflict:
    return Conflict(
        f"this {kind.noun} is still used by {USED_BY.get(used_by, used_by)}: change those first",
        code="IN_USE",
        field="id",
        details={"used_by": used_by},
    )


@owns_transaction
async def delete(tx: Tx, actor: Actor, school_id: int, kind_name: str, row_id: int) -> None:
    """Delete a zone, door, group, schedule or building nobody uses any more (a mistake, a door
    walled up); the readers drop it with their next list. Refused with IN_USE while anything
    still refers to it, a door also while it has recorded passages."""
    actor.require(*MODEL_ROLES, school_id=school_id)
    kind = DELETABLE[kind_name]
    before = await _before(tx, school_id, kind, row_id, ["name"])
    if kind is DOOR and await tx.fetchval(
        "SELECT 1 FROM access_events WHERE school_id = $1 AND door_id = $2 LIMIT 1",
        school_id,
        row_id,
    ):
        raise _in_use(kind, "access_events")
    try:
        await tx.execute(
            f"DELETE FROM {kind.table} WHERE school_id = $1 AND id = $2", school_id, row_id
        )
    except asyncpg.ForeignKeyViolationError as err:
        raise _in_use(kind, err.table_name or "") from err
    await audit.record(
        tx,
        actor,
        f"access.{kind.noun}.delete",
        school_id=school_id,
        target_type=kind.target,
        target_id=row_id,
        before=before,
    )
