"""Access administration: zones, doors, door groups, schedules, the school's own days, grants,
dormitories, visitors, and the door events (docs/access.md)."""

from __future__ import annotations

import inspect
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from campuscard.access import model, queries, visitors
from campuscard.api.deps import Body, CurrentActor
from campuscard.edge.deps import Pool, school_id_for
from campuscard.platform.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/admin/schools/{school}/access", tags=["access"])

NAME = Field(min_length=1, max_length=64)
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "the role is missing"},
    404: {"description": "no such school, door, group, schedule or person"},
    409: {"description": "the name is taken"},
    422: {"description": "a field is invalid; the error names it"},
}


class Created(BaseModel):
    id: int


class Done(BaseModel):
    ok: bool = True


class ZoneIn(Body):
    name: str = NAME
    antipassback: Literal["off", "hard", "soft"] = "off"
    reset_hour: int = Field(default=4, ge=0, le=23)


class DoorIn(Body):
    name: str = NAME
    terminal_sn: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{4,40}$")
    zone_id: int | None = Field(default=None, ge=1)
    exit_reader: bool = False
    apb_seconds: int = Field(default=0, ge=0, le=86400)
    held_open_seconds: int = Field(default=30, ge=5, le=3600)


class GroupIn(Body):
    name: str = NAME
    door_ids: list[int] = Field(default_factory=list, max_length=1000)


class GroupDoorsIn(Body):
    door_ids: list[int] = Field(max_length=1000)


class ScheduleIn(Body):
    name: str = NAME
    week: dict[str, list[list[str]]] = Field(
        description='{"1": [["07:00", "22:30"]], …, "7": [["22:00", "06:00"]]} (Monday = 1)'
    )
    holiday: list[list[str]] = Field(default_factory=list)


class DayIn(Body):
    kind: Literal["holiday", "workday"]
    as_weekday: int | None = Field(default=None, ge=1, le=7)
    name: str = Field(default="", max_length=64)


class GrantIn(Body):
    subject: Literal["person", "class", "role", "card_kind"]
    person_id: int | None = Field(default=None, ge=1)
    class_id: int | None = Field(default=None, ge=1)
    role: Literal["student", "staff", "visitor"] | None = None
    card_kind: Literal["student", "staff", "temporary"] | None = None
    group_id: int = Field(ge=1)
    schedule_id: int = Field(ge=1)
    valid_from: str | None = Field(default=None, description="ISO 8601 with offset, minutes")
    valid_until: str | None = Field(default=None, description="ISO 8601 with offset, minutes")
    note: str = Field(default="", max_length=200)


class BuildingIn(Body):
    name: str = NAME
    group_id: int = Field(ge=1)
    schedule_id: int = Field(ge=1)


class DormIn(Body):
    building_id: int | None = Field(default=None, ge=1, description="null: moves out")
    room: str = Field(default="", max_length=16)
    valid_from: str | None = None
    valid_until: str | None = None


class VisitorIn(Body):
    name: str = NAME
    number: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="visitor no., e.g. V2026001")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{5,20}$")
    card_number: str = Field(pattern=r"^[0-9]{6,20}$")
    card_uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")
    host: str = Field(default="", max_length=64)
    purpose: str = Field(default="", max_length=200)
    valid_from: str
    valid_until: str
    group_ids: list[int] = Field(min_length=1, max_length=50)
    schedule_id: int = Field(ge=1)


class VisitorOut(BaseModel):
    visitor_id: int
    person_id: int
    card_id: int
    card_number: str
    valid_from: datetime
    valid_until: datetime
    grant_ids: list[int]


class Overview(BaseModel):
    zones: list[dict[str, Any]]
    doors: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    schedules: list[dict[str, Any]]
    days: list[dict[str, Any]]
    grants: list[dict[str, Any]]
    buildings: list[dict[str, Any]]


class DoorEventOut(BaseModel):
    terminal_id: int
    seq: int
    kind: str
    direction: str | None
    card_number: str | None
    reason: str
    flag: str
    occurred_at: datetime
    received_at: datetime
    door: str | None
    person: str | None
    card_state: str | None


def when(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValidationFailed(f"{field} must be an ISO 8601 date-time", field=field) from err
    return model.to_minute(at, field)


def day_of(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise ValidationFailed("day must be YYYY-MM-DD", field="day") from err


@router.get("", response_model=Overview, responses=ERRORS)
async def overview(school: str, pool: Pool, actor: CurrentActor) -> Overview:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return Overview(**await queries.overview(conn, actor, school_id))


@router.get("/events", response_model=list[DoorEventOut], responses=ERRORS)
async def door_events(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    door_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[DoorEventOut]:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await queries.recent_events(conn, actor, school_id, limit=limit, door_id=door_id)
    return [DoorEventOut(**r) for r in rows]


@router.post("/zones", status_code=201, response_model=Created, responses=ERRORS)
async def create_zone(school: str, body: ZoneIn, pool: Pool, actor: CurrentActor) -> Created:
    school_id = await school_id_for(pool, actor, school)
    return Created(id=await model.create_zone(pool, actor, school_id, **body.model_dump()))


@router.put("/zones/{zone_id}", response_model=Done, responses=ERRORS)
async def update_zone(
    school: str, zone_id: int, body: ZoneIn, pool: Pool, actor: CurrentActor
) -> Done:
    school_id = await school_id_for(pool, actor, school)
    await model.update_zone(pool, actor, school_id, zone_id, **body.model_dump())
    return Done()


@router.post("/doors", status_code=201, response_model=Created, responses=ERRORS)
async def create_door(school: str, body: DoorIn, pool: Pool, actor: CurrentActor) -> Created:
    school_id = await school_id_for(pool, actor, school)
    return Created(id=await model.create_door(pool, actor, school_id, **body.model_dump()))


@router.put("/doors/{door_id}", response_model=Done, responses=ERRORS)
async def update_door(
    school: str, door_id: int, body: DoorIn, pool: Pool, actor: CurrentActor
) -> Done:
    """Every field of the door is sent again; a controller left out is taken off the door."""
    school_id = await school_id_for(pool, actor, school)
    await model.update_door(pool, actor, school_id, door_id, **body.model_dump())
    return Done()


@router.post("/groups", status_code=201, response_model=Created, responses=ERRORS)
async def create_group(school: str, body: GroupIn, pool: Pool, actor: CurrentActor) -> Created:
    school_id = await school_id_for(pool, actor, school)
    return Created(
        id=await model.create_group(pool, actor, school_id, name=body.name, door_ids=body.door_ids)
    )


@router.put("/groups/{group_id}", response_model=Done, responses=ERRORS)
async def update_group(
    school: str, group_id: int, body: GroupIn, pool: Pool, actor: CurrentActor
) -> Done:
    """Rename the group and set its doors."""
    school_id = await school_id_for(pool, actor, school)
    await model.update_group(
        pool, actor, school_id, group_id, name=body.name, door_ids=body.door_ids
    )
    return Done()


@router.put("/groups/{group_id}/doors", response_model=Done, responses=ERRORS)
async def set_group_doors(
    school: str, group_id: int, body: GroupDoorsIn, pool: Pool, actor: CurrentActor
) -> Done:
    school_id = await school_id_for(pool, actor, school)
    await model.set_group_doors(pool, actor, school_id, group_id, door_ids=body.door_ids)
    return Done()


@router.post("/schedules", status_code=201, response_model=Created, responses=ERRORS)
async def create_schedule(
    school: str, body: ScheduleIn, pool: Pool, actor: CurrentActor
) -> Created:
    school_id = await school_id_for(pool, actor, school)
    return Created(
        id=await model.save_schedule(
            pool, actor, school_id, name=body.name, week=body.week, holiday=body.holiday
        )
    )


@router.put("/schedules/{schedule_id}", response_model=Created, responses=ERRORS)
async def update_schedule(
    school: str, schedule_id: int, body: ScheduleIn, pool: Pool, actor: CurrentActor
) -> Created:
    school_id = await school_id_for(pool, actor, school)
    return Created(
        id=await model.save_schedule(
            pool,
            actor,
            school_id,
            name=body.name,
            week=body.week,
            holiday=body.holiday,
            schedule_id=schedule_id,
        )
    )


@router.put("/calendar/{day}", response_model=Done, responses=ERRORS)
async def set_day(school: str, day: str, body: DayIn, pool: Pool, actor: CurrentActor) -> Done:
    """The school's own day: a closure (term break) or a day run as a given weekday."""
    school_id = await school_id_for(pool, actor, school)
    actor.require(*model.MODEL_ROLES, school_id=school_id)  # before the body is read further
    await model.set_calendar_day(
        pool,
        actor,
        school_id,
        day=day_of(day),
        kind=body.kind,
        as_weekday=body.as_weekday,
        name=body.name,
    )
    return Done()


@router.delete("/calendar/{day}", response_model=Done, responses=ERRORS)
async def remove_day(school: str, day: str, pool: Pool, actor: CurrentActor) -> Done:
    school_id = await school_id_for(pool, actor, school)
    actor.require(*model.MODEL_ROLES, school_id=school_id)  # before the body is read further
    await model.remove_calendar_day(pool, actor, school_id, day=day_of(day))
    return Done()


def _delete_route(kind: str) -> None:
    """``DELETE …/{kind}s/{<kind>_id}`` for a zone, door, door group, schedule or building."""
    id_name = f"{kind}_id"

    async def endpoint(school: str, pool: Pool, actor: CurrentActor, **ids: int) -> Done:
        school_id = await school_id_for(pool, actor, school)
        await model.delete(pool, actor, school_id, kind, ids[id_name])
        return Done()

    # the path names its id as the other routes of the kind do (zone_id, door_id, …)
    signature = inspect.signature(endpoint)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    id_param = Annotated[int, Path(ge=1, le=2**62)]
    params.append(inspect.Parameter(id_name, inspect.Parameter.KEYWORD_ONLY, annotation=id_param))
    endpoint.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    endpoint.__doc__ = (
        f"Delete a {kind} nothing uses any more. While anything still does (doors of a zone, "
        "grants of a group or schedule, residents of a building, a door's recorded passages) "
        "the answer is 409 IN_USE naming it in details.used_by, and nothing changes."
    )
    router.add_api_route(
        f"/{kind}s/{{{id_name}}}",
        endpoint,
        methods=["DELETE"],
        response_model=Done,
        responses=ERRORS,
        name=f"delete_{kind}",
        summary=f"Delete {kind}",
    )


for _kind in model.DELETABLE:
    _delete_route(_kind)


@router.post("/grants", status_code=201, response_model=Created, responses=ERRORS)
async def create_grant(school: str, body: GrantIn, pool: Pool, actor: CurrentActor) -> Created:
    school_id = await school_id_for(pool, actor, school)
    actor.require(*model.GRANT_ROLES, school_id=school_id)  # before the body is read further
    value: int | str | None = {
        "person": body.person_id,
        "class": body.class_id,
        "role": body.role,
        "card_kind": body.card_kind,
    }[body.subject]
    if value is None:
        field: str = {"person": "person_id", "class": "class_id"}.get(body.subject, body.subject)
        raise ValidationFailed(f"a grant to a {body.subject} names {field}", field=field)
    return Created(
        id=await model.create_grant(
            pool,
            actor,
            school_id,
            subject=body.subject,
            subject_value=value,
            group_id=body.group_id,
            schedule_id=body.schedule_id,
            valid_from=when(body.valid_from, "valid_from"),
            valid_until=when(body.valid_until, "valid_until"),
            note=body.note,
        )
    )


@router.post("/grants/{grant_id}/end", response_model=Done, responses=ERRORS)
async def end_grant(school: str, grant_id: int, pool: Pool, actor: CurrentActor) -> Done:
    school_id = await school_id_for(pool, actor, school)
    await model.end_grant(pool, actor, school_id, grant_id)
    return Done()


@router.post("/buildings", status_code=201, response_model=Created, responses=ERRORS)
async def create_building(
    school: str, body: BuildingIn, pool: Pool, actor: CurrentActor
) -> Created:
    school_id = await school_id_for(pool, actor, school)
    return Created(id=await model.create_building(pool, actor, school_id, **body.model_dump()))


@router.put("/buildings/{building_id}", response_model=Done, responses=ERRORS)
async def update_building(
    school: str, building_id: int, body: BuildingIn, pool: Pool, actor: CurrentActor
) -> Done:
    school_id = await school_id_for(pool, actor, school)
    await model.update_building(pool, actor, school_id, building_id, **body.model_dump())
    return Done()


@router.put("/dorm/{person_id}", response_model=Done, responses=ERRORS)
async def assign_dorm(
    school: str, person_id: int, body: DormIn, pool: Pool, actor: CurrentActor
) -> Done:
    """Living in a building opens its doors; ``building_id`` null moves the person out."""
    school_id = await school_id_for(pool, actor, school)
    await model.assign_dorm(
        pool,
        actor,
        school_id,
        person_id=person_id,
        building_id=body.building_id,
        room=body.room,
        valid_from=when(body.valid_from, "valid_from"),
        valid_until=when(body.valid_until, "valid_until"),
    )
    return Done()


@router.post("/visitors", status_code=201, response_model=VisitorOut, responses=ERRORS)
async def issue_visitor(
    school: str, body: VisitorIn, pool: Pool, actor: CurrentActor
) -> VisitorOut:
    """A temporary card for a window and a few door groups; it expires by itself."""
    school_id = await school_id_for(pool, actor, school)
    actor.require(*model.GRANT_ROLES, school_id=school_id)  # before the body is read further
    start, end = when(body.valid_from, "valid_from"), when(body.valid_until, "valid_until")
    assert start is not None
    assert end is not None
    card = await visitors.issue_visitor_card(
        pool,
        actor,
        school_id,
        name=body.name,
        number=body.number,
        phone=body.phone,
        card_number=body.card_number,
        card_uid=body.card_uid,
        host=body.host,
        purpose=body.purpose,
        valid_from=start,
        valid_until=end,
        group_ids=body.group_ids,
        schedule_id=body.schedule_id,
    )
    return VisitorOut(**card.__dict__)
