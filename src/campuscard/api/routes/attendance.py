"""Attendance over HTTP: points and periods (administrators), a class's daily sheet, the
teacher's corrections, the month's summary and workbook, leave requests (docs/access.md
"Attendance")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from campuscard.access.lists import school_today
from campuscard.api.deps import Body, CurrentActor
from campuscard.attendance import leaves, model, rules, sheets
from campuscard.db.pool import Conn
from campuscard.edge.deps import Pool, school_id_for
from campuscard.platform.actors import Actor
from campuscard.platform.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/admin/schools/{school}/attendance", tags=["attendance"])
persons = APIRouter(prefix="/api/v1/persons/{person_id}/leaves", tags=["attendance"])

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "the role is missing"},
    404: {"description": "no such school, class (among yours), period, student or request"},
    409: {"description": "the name is taken, or the request was decided already"},
    422: {"description": "a field is invalid; the error names it"},
}
HHMM = Field(max_length=5, description="local time HH:MM")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Created(BaseModel):
    id: int


class Done(BaseModel):
    ok: bool = True


class PointIn(Body):
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["classroom", "dorm", "gate", "lab"]
    door_ids: list[int] = Field(min_length=1, max_length=200)


class RuleIn(Body):
    class_id: int = Field(ge=1)
    point_id: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=64, description="the period, e.g. 第一节 or 晚归")
    weekdays: list[int] = Field(min_length=1, max_length=7, description="Monday = 1")
    opens_at: str = HHMM
    on_time_until: str = HHMM
    closes_at: str = HHMM
    direction: Literal["in", "out"] | None = None
    on_holidays: bool = False
    notify_guardians: bool = False


class TeachersIn(Body):
    user_ids: list[int] = Field(max_length=20)


class MarkIn(Body):
    rule_id: int = Field(ge=1)
    day: str = Field(description="YYYY-MM-DD")
    person_id: int = Field(ge=1)
    status: Literal["present", "late", "absent", "leave"] | None = Field(
        description="null removes the mark (the readers' word stands)"
    )
    note: str = Field(default="", max_length=200)


class DecideIn(Body):
    approve: bool
    note: str = Field(default="", max_length=200)


class LeaveIn(Body):
    kind: Literal["sick", "personal", "other"]
    starts_at: str = Field(description="ISO 8601 with offset")
    ends_at: str = Field(description="ISO 8601 with offset")
    reason: str = Field(min_length=1, max_length=500)


class Overview(BaseModel):
    points: list[dict[str, Any]]
    periods: list[dict[str, Any]]
    teachers: list[dict[str, Any]]


class ClassOut(BaseModel):
    id: int
    name: str
    grade: str
    students: int


class CellOut(BaseModel):
    rule_id: int
    status: Literal["present", "late", "absent", "leave", "pending"]
    signed_at: datetime | None
    marked: bool
    note: str


class RowOut(BaseModel):
    person_id: int
    number: str
    name: str
    cells: list[CellOut]


class PeriodOut(BaseModel):
    id: int
    name: str
    point: str
    opens_at: str
    on_time_until: str
    closes_at: str


class SheetOut(BaseModel):
    class_id: int
    class_name: str
    day: date
    day_kind: int = Field(description="0 a holiday, else the weekday the day runs as")
    periods: list[PeriodOut]
    rows: list[RowOut]
    counts: dict[str, int]


class SummaryRowOut(BaseModel):
    person_id: int
    number: str
    name: str
    present: int
    late: int
    absent: int
    leave: int


class SummaryOut(BaseModel):
    class_id: int
    class_name: str
    month: str
    rows: list[SummaryRowOut]
    totals: dict[str, int]
    days: list[date]


class LeaveOut(BaseModel):
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
    asked_by_student: bool = Field(description="false: a parent (or staff) asked for the student")


class DecidedOut(BaseModel):
    state: Literal["approved", "rejected"]


def day_of(text: str, field: str = "day") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise ValidationFailed(f"{field} must be YYYY-MM-DD", field=field) from err


def moment(text: str, field: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValidationFailed(f"{field} must be an ISO 8601 date-time", field=field) from err
    if at.tzinfo is None:
        raise ValidationFailed(f"{field}: give a UTC offset, e.g. +08:00", field=field)
    return at


def sheet_out(sheet: sheets.Sheet) -> SheetOut:
    return SheetOut(
        class_id=sheet.class_id,
        class_name=sheet.class_name,
        day=sheet.day,
        day_kind=sheet.day_kind,
        periods=[PeriodOut(**p.__dict__) for p in sheet.periods],
        rows=[
            RowOut(
                person_id=r.person_id,
                number=r.number,
                name=r.name,
                cells=[CellOut(**c.__dict__) for c in r.cells],
            )
            for r in sheet.rows
        ],
        counts=sheet.counts,
    )


@router.get("", response_model=Overview, responses=ERRORS)
async def overview(school: str, pool: Pool, actor: CurrentActor) -> Overview:
    """Points and their doors, every class's periods, the teachers of each class."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return Overview(**await model.overview(conn, actor, school_id))


@router.post("/points", status_code=201, response_model=Created, responses=ERRORS)
async def create_point(school: str, body: PointIn, pool: Pool, actor: CurrentActor) -> Created:
    school_id = await school_id_for(pool, actor, school)
    return Created(
        id=await model.create_point(
            pool, actor, school_id, name=body.name, kind=body.kind, door_ids=body.door_ids
        )
    )


@router.put("/points/{point_id}", response_model=Done, responses=ERRORS)
async def update_point(
    school: str, point_id: int, body: PointIn, pool: Pool, actor: CurrentActor
) -> Done:
    school_id = await school_id_for(pool, actor, school)
    await model.update_point(
        pool, actor, school_id, point_id, name=body.name, kind=body.kind, door_ids=body.door_ids
    )
    return Done()


@router.post("/rules", status_code=201, response_model=Created, responses=ERRORS)
async def create_rule(school: str, body: RuleIn, pool: Pool, actor: CurrentActor) -> Created:
    """A period a class signs in for: present until on_time_until, late until closes_at."""
    school_id = await school_id_for(pool, actor, school)
    actor.require(*model.ADMIN_ROLES, school_id=school_id)  # before the body is read further
    return Created(
        id=await model.create_rule(
            pool,
            actor,
            school_id,
            class_id=body.class_id,
            point_id=body.point_id,
            name=body.name,
            weekdays=body.weekdays,
            opens_at=rules.parse_time(body.opens_at, "opens_at"),
            on_time_until=rules.parse_time(body.on_time_until, "on_time_until"),
            closes_at=rules.parse_time(body.closes_at, "closes_at"),
            direction=body.direction,
            on_holidays=body.on_holidays,
            notify_guardians=body.notify_guardians,
        )
    )


@router.post("/rules/{rule_id}/end", response_model=Done, responses=ERRORS)
async def end_rule(school: str, rule_id: int, pool: Pool, actor: CurrentActor) -> Done:
    school_id = await school_id_for(pool, actor, school)
    await model.end_rule(pool, actor, school_id, rule_id)
    return Done()


@router.get("/classes", response_model=list[ClassOut], responses=ERRORS)
async def my_classes(school: str, pool: Pool, actor: CurrentActor) -> list[ClassOut]:
    """The classes whose attendance you keep (every class for an administrator)."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        return [ClassOut(**r) for r in await model.my_classes(conn, actor, school_id)]


@router.put("/classes/{class_id}/teachers", response_model=Done, responses=ERRORS)
async def set_teachers(
    school: str, class_id: int, body: TeachersIn, pool: Pool, actor: CurrentActor
) -> Done:
    school_id = await school_id_for(pool, actor, school)
    await model.set_class_teachers(pool, actor, school_id, class_id, user_ids=body.user_ids)
    return Done()


@router.get("/classes/{class_id}/sheet", response_model=SheetOut, responses=ERRORS)
async def daily_sheet(
    school: str,
    class_id: int,
    pool: Pool,
    actor: CurrentActor,
    day: Annotated[date | None, Query(description="default: today at the school")] = None,
) -> SheetOut:
    """Each student's status in each period of the day: present, late, absent, on leave (or
    pending while the period is open)."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        day = day or await _today(conn, school_id)
        return sheet_out(await sheets.daily_sheet(conn, actor, school_id, class_id, day))


@router.put("/classes/{class_id}/marks", response_model=Done, responses=ERRORS)
async def set_mark(
    school: str, class_id: int, body: MarkIn, pool: Pool, actor: CurrentActor
) -> Done:
    """The teacher's correction of one student's period on one day."""
    school_id = await school_id_for(pool, actor, school)
    actor.require("teacher", school_id=school_id)  # before the body is read further
    await sheets.set_mark(
        pool,
        actor,
        school_id,
        class_id,
        rule_id=body.rule_id,
        day=day_of(body.day),
        person_id=body.person_id,
        status=body.status,
        note=body.note,
    )
    return Done()


MONTH = Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM; default: this month")


async def _today(conn: Conn, school_id: int) -> date:
    return (await school_today(conn, school_id))[0]


@router.get("/classes/{class_id}/summary", response_model=SummaryOut, responses=ERRORS)
async def month_summary(
    school: str,
    class_id: int,
    pool: Pool,
    actor: CurrentActor,
    month: Annotated[str | None, MONTH] = None,
) -> SummaryOut:
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        month = month or (await _today(conn, school_id)).strftime("%Y-%m")
        s = await sheets.month_summary(conn, actor, school_id, class_id, month)
    return SummaryOut(
        class_id=s.class_id,
        class_name=s.class_name,
        month=s.month,
        rows=[SummaryRowOut(**r.__dict__) for r in s.rows],
        totals=s.totals,
        days=s.days,
    )


@router.get(
    "/classes/{class_id}/export",
    responses=ERRORS
    | {
        200: {
            "content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
            "description": "the month's workbook",
        }
    },
    response_class=Response,
)
async def month_export(
    school: str,
    class_id: int,
    pool: Pool,
    actor: CurrentActor,
    month: Annotated[str | None, MONTH] = None,
    lang: Annotated[
        Literal["zh-CN", "en"] | None,
        Query(
            description="language of the sheet names, headers and statuses; default: the reader's"
        ),
    ] = None,
) -> Response:
    """The month as a workbook: the summary and every student's every period."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        month = month or (await _today(conn, school_id)).strftime("%Y-%m")
        body = await sheets.month_workbook(
            conn, actor, school_id, class_id, month, lang or actor.locale
        )
    return Response(
        body,
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="attendance-{class_id}-{month}.xlsx"'
        },
    )


@router.get("/leaves", response_model=list[LeaveOut], responses=ERRORS)
async def leaves_to_decide(
    school: str,
    pool: Pool,
    actor: CurrentActor,
    state: Annotated[
        Literal["pending", "approved", "rejected", "cancelled", ""],
        Query(description="empty: every state"),
    ] = "pending",
) -> list[LeaveOut]:
    """Leave requests of the classes you teach."""
    school_id = await school_id_for(pool, actor, school)
    async with pool.acquire() as conn:
        rows = await leaves.leaves_to_decide(conn, actor, school_id, state=state)
    return [LeaveOut(**r.__dict__) for r in rows]


@router.post("/leaves/{leave_id}/decide", response_model=DecidedOut, responses=ERRORS)
async def decide_leave(
    school: str, leave_id: int, body: DecideIn, pool: Pool, actor: CurrentActor
) -> DecidedOut:
    school_id = await school_id_for(pool, actor, school)
    state = await leaves.decide_leave(
        pool, actor, school_id, leave_id, approve=body.approve, note=body.note
    )
    return DecidedOut(state="approved" if state == "approved" else "rejected")


async def _school_of_student(pool: Pool, actor: Actor, person_id: int) -> int:
    async with pool.acquire() as conn:
        return await leaves.school_of_student(conn, actor, person_id)


@persons.get("", response_model=list[LeaveOut], responses=ERRORS)
async def my_leaves(person_id: int, pool: Pool, actor: CurrentActor) -> list[LeaveOut]:
    """A student's leave requests: the student, a parent, the class's teachers."""
    school_id = await _school_of_student(pool, actor, person_id)
    async with pool.acquire() as conn:
        rows = await leaves.leaves_of(conn, school_id, person_id)
    return [LeaveOut(**r.__dict__) for r in rows]


@persons.post("", status_code=201, response_model=Created, responses=ERRORS)
async def request_leave(person_id: int, body: LeaveIn, pool: Pool, actor: CurrentActor) -> Created:
    """Ask for leave (the student or a parent: pending until a teacher decides); a teacher of
    the class records it approved."""
    school_id = await _school_of_student(pool, actor, person_id)
    return Created(
        id=await leaves.request_leave(
            pool,
            actor,
            school_id,
            person_id,
            kind=body.kind,
            starts_at=moment(body.starts_at, "starts_at"),
            ends_at=moment(body.ends_at, "ends_at"),
            reason=body.reason,
        )
    )


@persons.post("/{leave_id}/cancel", response_model=Done, responses=ERRORS)
async def cancel_leave(person_id: int, leave_id: int, pool: Pool, actor: CurrentActor) -> Done:
    """Withdraw a pending request, or an approved leave that has not started."""
    school_id = await _school_of_student(pool, actor, person_id)
    await leaves.cancel_leave(pool, actor, school_id, person_id, leave_id)
    return Done()
