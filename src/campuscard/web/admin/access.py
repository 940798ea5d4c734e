"""Console pages for the doors (docs/access.md): doors and what each controller holds, zones,
door groups, schedules, the school's own days (add and remove), grants (give and end),
buildings, attendance points and periods, and the live door events."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from campuscard.access import model, queries, rules
from campuscard.access.lists import school_today
from campuscard.attendance import model as attendance_model
from campuscard.edge.deps import Pool
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, PostPage, UserPage, opt_int, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)

READERS = {"school_admin", "card_center"}
menu.add("admin", "a.access", BASE + "/access", READERS, 45)
menu.add("admin", "a.door_events", BASE + "/access/events", READERS, 46)
WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)


async def _access_page(
    page: Page, pool: Pool, code: str, school_id: int, error: DomainError | None = None
) -> Response:
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        overview = await queries.overview(conn, actor, school_id)
        for schedule in overview["schedules"]:  # stored as JSON text
            for key in ("week", "holiday"):
                if isinstance(schedule[key], str):
                    schedule[key] = json.loads(schedule[key])
        classes = (await queries.choices(conn, school_id))["classes"]
        attendance = (
            await attendance_model.overview(conn, actor, school_id)
            if actor.has("school_admin", school_id=school_id)
            else None
        )
        today, tz = await school_today(conn, school_id)
        lists = await queries.list_state(conn, school_id)
        guests = await queries.visitors(conn, actor, school_id)
    public = rules.public_days(today, rules.HORIZON_DAYS)
    return render(
        page,
        "admin/access.html",
        lists=lists,
        guests=guests,
        public=public,
        public_until=rules.public_calendar_ends(),
        horizon_end=today + timedelta(days=rules.HORIZON_DAYS),
        status=error.status if error else 200,
        o=overview,
        classes=classes,
        attendance=attendance,
        today=today,
        tz=tz,
        weekdays=WEEKDAYS,
        can_model=actor.has(*model.MODEL_ROLES, school_id=school_id),
        error=error,
    )


@router.get("/s/{code}/access")
async def access_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.access")
    return await _access_page(page, pool, code, school_id)


@router.post("/s/{code}/access/days")
async def add_day(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    day: Annotated[date, Form()],
    kind: Annotated[str, Form(pattern="^(holiday|workday)$")],
    as_weekday: Annotated[str, Form(max_length=1)] = "",
    name: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.access")
    assert page.user is not None
    try:
        await model.set_calendar_day(
            pool,
            page.user,
            school_id,
            day=day,
            kind=kind,
            as_weekday=opt_int(as_weekday, "as_weekday") if kind == "workday" else None,
            name=name.strip(),
        )
    except DomainError as err:
        if err.status in (403, 404):
            raise
        return await _access_page(page, pool, code, school_id, error=err)
    return redirect(f"/admin/s/{code}/access#days", request=page.request)


@router.post("/s/{code}/access/days/{day}/remove")
async def remove_day(page: PostPage, pool: Pool, code: SchoolCode, day: date) -> Response:
    school_id = await enter(page, pool, code, "a.access")
    assert page.user is not None
    await model.remove_calendar_day(pool, page.user, school_id, day=day)
    return redirect(f"/admin/s/{code}/access#days", request=page.request)


def school_minute(text: str, tz: str, field: str) -> datetime | None:
    """A datetime-local field (school time, to the minute) as an aware time."""
    text = text.strip()
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValidationFailed(f"{field} must be a date and time", field=field) from err
    return at.replace(second=0, microsecond=0, tzinfo=ZoneInfo(tz))


@router.post("/s/{code}/access/grants")
async def add_grant(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    subject: Annotated[str, Form(pattern="^(person|class|role|card_kind)$")],
    group_id: Annotated[int, Form(ge=1, le=2**62)],
    schedule_id: Annotated[int, Form(ge=1, le=2**62)],
    person_number: Annotated[str, Form(max_length=32)] = "",
    class_id: Annotated[str, Form(max_length=20)] = "",
    role: Annotated[str, Form(pattern="^(|student|staff|visitor)$")] = "",
    card_kind: Annotated[str, Form(pattern="^(|student|staff|temporary)$")] = "",
    valid_from: Annotated[str, Form(max_length=20)] = "",
    valid_until: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.access")
    actor = page.user
    assert actor is not None
    try:
        async with pool.acquire() as conn:
            _, tz = await school_today(conn, school_id)
            value: int | str | None
            if subject == "person":
                person = await queries.person_by_number(conn, school_id, person_number)
                if person is None:
                    raise NotFound("no person with this number", field="person_number")
                value = person
            elif subject == "class":
                value = opt_int(class_id, "class_id")
            else:
                value = role if subject == "role" else card_kind
            if not value:
                raise ValidationFailed(f"a grant to a {subject} names it", field=subject)
        await model.create_grant(
            pool,
            actor,
            school_id,
            subject=subject,
            subject_value=value,
            group_id=group_id,
            schedule_id=schedule_id,
            valid_from=school_minute(valid_from, tz, "valid_from"),
            valid_until=school_minute(valid_until, tz, "valid_until"),
            note=note.strip(),
        )
    except DomainError as err:
        if err.status == 403:
            raise
        return await _access_page(page, pool, code, school_id, error=err)
    return redirect(f"/admin/s/{code}/access#grants", request=page.request)


@router.post("/s/{code}/access/grants/{grant_id}/end")
async def end_grant(page: PostPage, pool: Pool, code: SchoolCode, grant_id: int) -> Response:
    school_id = await enter(page, pool, code, "a.access")
    assert page.user is not None
    await model.end_grant(pool, page.user, school_id, grant_id)
    return redirect(f"/admin/s/{code}/access#grants", request=page.request)


@router.get("/s/{code}/access/events")
async def events_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    door: Annotated[str | None, Query(max_length=20)] = None,
    partial: Annotated[str | None, Query(max_length=1)] = None,
) -> Response:
    """The latest door events; the table refreshes itself every two seconds."""
    school_id = await enter(page, pool, code, "a.door_events")
    actor = page.user
    assert actor is not None
    door_id = opt_int(door, "door")
    async with pool.acquire() as conn:
        rows = await queries.recent_events(conn, actor, school_id, limit=100, door_id=door_id)
        doors = (await queries.choices(conn, school_id))["doors"]
        _, tz = await school_today(conn, school_id)
    template = "admin/_door_events.html" if partial else "admin/door_events.html"
    return render(page, template, area="admin", rows=rows, doors=doors, door_id=door_id, tz=tz)
