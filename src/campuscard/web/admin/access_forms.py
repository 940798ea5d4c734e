"""Console forms for the access and attendance model (docs/access.md): create and edit zones,
doors, door groups, weekly schedules (several intervals a day, across midnight), dormitory
buildings, attendance points, and the teachers of a class; add and end attendance periods.

Each form is one page, ``/admin/s/<code>/access/<kind>/new`` or ``…/<kind>/<id>/edit``, that
posts to itself. The page parses the form into the use case's arguments and calls the same
use case the API calls (access.model, attendance.model); a refusal re-renders the form with
the message next to the field it names."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from starlette.datastructures import FormData

from campuscard.access import model, queries, visitors
from campuscard.access.lists import school_today
from campuscard.access.rules import MAX_INTERVALS_PER_DAY
from campuscard.attendance import model as attendance_model
from campuscard.attendance import rules as attendance_rules
from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.platform.errors import DomainError, NotFound, ValidationFailed
from campuscard.web.admin.access import school_minute
from campuscard.web.admin.routes import SchoolCode, enter
from campuscard.web.core import (
    Page,
    PostPage,
    UserPage,
    field_error,
    opt_int,
    redirect,
    render,
)

router = APIRouter(prefix="/admin", include_in_schema=False)

KINDS = (
    "zone",
    "door",
    "group",
    "schedule",
    "building",
    "point",
    "period",
    "teachers",
    "visitor",
    "dorm",
)
NEW_KINDS = tuple(k for k in KINDS if k != "teachers")
# a period is ended, not edited; a visitor card is issued once; a move is a new assignment
EDIT_KINDS = tuple(k for k in KINDS if k not in ("period", "visitor", "dorm"))
CARD_CENTER_KINDS = ("visitor", "dorm")  # the card center's as well as the administrators'
DELETE_KINDS = tuple(model.DELETABLE)  # zone, door, group, schedule, building
KindNew = Annotated[str, Path(pattern="^(" + "|".join(NEW_KINDS) + ")$")]
KindEdit = Annotated[str, Path(pattern="^(" + "|".join(EDIT_KINDS) + ")$")]
KindDelete = Annotated[str, Path(pattern="^(" + "|".join(DELETE_KINDS) + ")$")]
RowId = Annotated[int, Path(ge=1, le=2**62)]
# where the overview shows each kind
ANCHOR = {
    "zone": "zones",
    "door": "doors",
    "group": "groups",
    "schedule": "schedules",
    "building": "buildings",
    "point": "points",
    "period": "periods",
    "teachers": "teachers",
    "visitor": "visitors",
    "dorm": "buildings",
}
# the field a use case names when the row being edited does not exist
OWN_ID = {
    "zone": "zone_id",
    "door": "door_id",
    "group": "group_id",
    "schedule": "schedule_id",
    "building": "building_id",
    "point": "point_id",
    "teachers": "class_id",
    "period": "",
    "visitor": "",
    "dorm": "",
}
WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)
SLOTS = 3  # interval rows shown per day; an edit shows one more than it holds, up to the cap
TEXT_MAX = 200


async def _enter_model(page: Page, pool: PgPool, code: str, kind: str) -> int:
    """The school, if the actor keeps its access model (attendance: its administrators)."""
    school_id = await enter(page, pool, code, "a.access")
    assert page.user is not None
    roles = model.MODEL_ROLES
    if kind in ("point", "period", "teachers"):
        roles = attendance_model.ADMIN_ROLES
    elif kind in CARD_CENTER_KINDS:
        roles = model.GRANT_ROLES
    page.user.require(*roles, school_id=school_id)
    return school_id


# Reading the form ----------------------------------------------------------------------------


def _text(form: FormData, name: str, limit: int = TEXT_MAX) -> str:
    value = form.get(name, "")
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > limit:
        raise ValidationFailed(f"{name}: at most {limit} characters", field=name)
    return text


def _int(form: FormData, name: str, *, required: bool = True) -> int | None:
    value = opt_int(_text(form, name, 20), name)
    if value is None and required:
        raise ValidationFailed(f"{name}: choose or enter a value", field=name)
    return value


def _ids(form: FormData, name: str) -> list[int]:
    out = []
    for value in form.getlist(name)[:1000]:
        number = opt_int(value if isinstance(value, str) else "", name)
        if number is not None:
            out.append(number)
    return out


def _flag(form: FormData, name: str) -> bool:
    return form.get(name) == "on"


def _intervals(form: FormData, prefix: str, where: str) -> list[list[str]]:
    """The filled rows of one day's editor as [start, end] pairs (HH:MM text, checked by the
    schedule rules); a half-filled row names the day."""
    starts, ends = form.getlist(f"{prefix}_from"), form.getlist(f"{prefix}_to")
    out: list[list[str]] = []
    for start, end in zip(starts[:20], ends[:20], strict=False):
        a = start.strip() if isinstance(start, str) else ""
        b = end.strip() if isinstance(end, str) else ""
        if not a and not b:
            continue
        if not a or not b:
            raise ValidationFailed(f"{where}: each interval has a start and an end", field=where)
        out.append([a, b])
    return out


def _form_values(kind: str, form: FormData) -> dict[str, Any]:
    """What the person typed, to show again beside a refusal."""
    values: dict[str, Any] = {k: v for k, v in form.items() if k != "csrf_token"}
    for many in ("door_ids", "weekdays", "user_ids", "group_ids"):
        values[many] = [int(v) for v in form.getlist(many) if isinstance(v, str) and v.isdigit()]
    for flag in ("exit_reader", "on_holidays", "notify_guardians"):
        values[flag] = _flag(form, flag)
    if kind == "schedule":
        values["week"] = {
            str(d): list(
                zip(form.getlist(f"d{d}_from")[:20], form.getlist(f"d{d}_to")[:20], strict=False)
            )
            for d in WEEKDAYS
        }
        values["holiday"] = list(
            zip(form.getlist("h_from")[:20], form.getlist("h_to")[:20], strict=False)
        )
    return values


# Saving: one use case per kind, the API's own ---------------------------------------------


async def _save(
    page: Page, pool: PgPool, school_id: int, kind: str, row_id: int | None, form: FormData
) -> None:
    actor = page.user
    assert actor is not None
    name = _text(form, "name", 64)
    if kind == "zone":
        zone: dict[str, Any] = {
            "name": name,
            "antipassback": _text(form, "antipassback", 8) or "off",
            "reset_hour": _int(form, "reset_hour") or 0,
        }
        if row_id is None:
            await model.create_zone(pool, actor, school_id, **zone)
        else:
            await model.update_zone(pool, actor, school_id, row_id, **zone)
    elif kind == "door":
        door: dict[str, Any] = {
            "name": name,
            "terminal_sn": _text(form, "terminal_sn", 40) or None,
            "zone_id": _int(form, "zone_id", required=False),
            "exit_reader": _flag(form, "exit_reader"),
            "apb_seconds": _int(form, "apb_seconds") or 0,
            "held_open_seconds": _int(form, "held_open_seconds") or 0,
        }
        if row_id is None:
            await model.create_door(pool, actor, school_id, **door)
        else:
            await model.update_door(pool, actor, school_id, row_id, **door)
    elif kind == "group":
        door_ids = _ids(form, "door_ids")
        if row_id is None:
            await model.create_group(pool, actor, school_id, name=name, door_ids=door_ids)
        else:
            await model.update_group(pool, actor, school_id, row_id, name=name, door_ids=door_ids)
    elif kind == "schedule":
        week = {str(d): _intervals(form, f"d{d}", f"week.{d}") for d in WEEKDAYS}
        holiday = _intervals(form, "h", "holiday")
        await model.save_schedule(
            pool,
            actor,
            school_id,
            name=name,
            week={d: ivs for d, ivs in week.items() if ivs},
            holiday=holiday,
            schedule_id=row_id,
        )
    elif kind == "building":
        building: dict[str, Any] = {
            "name": name,
            "group_id": _int(form, "group_id") or 0,
            "schedule_id": _int(form, "schedule_id") or 0,
        }
        if row_id is None:
            await model.create_building(pool, actor, school_id, **building)
        else:
            await model.update_building(pool, actor, school_id, row_id, **building)
    elif kind == "point":
        point: dict[str, Any] = {
            "name": name,
            "kind": _text(form, "kind", 16),
            "door_ids": _ids(form, "door_ids"),
        }
        if row_id is None:
            await attendance_model.create_point(pool, actor, school_id, **point)
        else:
            await attendance_model.update_point(pool, actor, school_id, row_id, **point)
    elif kind == "period":
        direction = _text(form, "direction", 3)
        if direction not in ("", "in", "out"):
            raise ValidationFailed("direction is in, out or either", field="direction")
        await attendance_model.create_rule(
            pool,
            actor,
            school_id,
            class_id=_int(form, "class_id") or 0,
            point_id=_int(form, "point_id") or 0,
            name=name,
            weekdays=_ids(form, "weekdays"),
            opens_at=attendance_rules.parse_time(_text(form, "opens_at", 5), "opens_at"),
            on_time_until=attendance_rules.parse_time(
                _text(form, "on_time_until", 5), "on_time_until"
            ),
            closes_at=attendance_rules.parse_time(_text(form, "closes_at", 5), "closes_at"),
            direction=direction or None,
            on_holidays=_flag(form, "on_holidays"),
            notify_guardians=_flag(form, "notify_guardians"),
        )
    elif kind == "visitor":
        await _issue_visitor(page, pool, school_id, form, name)
    elif kind == "dorm":
        await _move(page, pool, school_id, form)
    else:  # teachers of a class
        assert row_id is not None
        await attendance_model.set_class_teachers(
            pool, actor, school_id, row_id, user_ids=_ids(form, "user_ids")
        )


async def _times(pool: PgPool, school_id: int, form: FormData) -> tuple[Any, Any]:
    """A form's valid_from and valid_until (datetime-local, school time) as aware times."""
    async with pool.acquire() as conn:
        _, tz = await school_today(conn, school_id)
    return (
        school_minute(_text(form, "valid_from", 20), tz, "valid_from"),
        school_minute(_text(form, "valid_until", 20), tz, "valid_until"),
    )


async def _issue_visitor(
    page: Page, pool: PgPool, school_id: int, form: FormData, name: str
) -> None:
    assert page.user is not None
    start, end = await _times(pool, school_id, form)
    if start is None:
        raise ValidationFailed("valid_from: when the card starts to open doors", field="valid_from")
    if end is None:
        raise ValidationFailed("valid_until: when the card stops", field="valid_until")
    await visitors.issue_visitor_card(
        pool,
        page.user,
        school_id,
        name=name,
        number=_text(form, "number", 32),
        phone=_text(form, "phone", 20) or None,
        card_number=_text(form, "card_number", 20),
        card_uid=_text(form, "card_uid", 20),
        host=_text(form, "host", 64),
        purpose=_text(form, "purpose", 200),
        valid_from=start,
        valid_until=end,
        group_ids=_ids(form, "group_ids"),
        schedule_id=_int(form, "schedule_id") or 0,
    )


async def _move(page: Page, pool: PgPool, school_id: int, form: FormData) -> None:
    """A person moves into a building (its doors open for them), or out of any."""
    assert page.user is not None
    number = _text(form, "person_number", 32)
    async with pool.acquire() as conn:
        person_id = await queries.person_by_number(conn, school_id, number) if number else None
    if person_id is None:
        raise NotFound("no person with this number in this school", field="person_number")
    start, end = await _times(pool, school_id, form)
    await model.assign_dorm(
        pool,
        page.user,
        school_id,
        person_id=person_id,
        building_id=_int(form, "building_id", required=False),
        room=_text(form, "room", 16),
        valid_from=start,
        valid_until=end,
    )


# Showing the form ----------------------------------------------------------------------------


def _stored_values(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    values = dict(row)
    if kind == "schedule":
        week = json.loads(row["week"]) if isinstance(row["week"], str) else row["week"]
        holiday = json.loads(row["holiday"]) if isinstance(row["holiday"], str) else row["holiday"]
        values["week"] = {str(d): [tuple(iv) for iv in week.get(str(d), [])] for d in WEEKDAYS}
        values["holiday"] = [tuple(iv) for iv in holiday]
    for many in ("door_ids", "user_ids"):
        if many in values:
            values[many] = list(values[many])
    return values


def _defaults(kind: str) -> dict[str, Any]:
    if kind == "zone":
        return {"antipassback": "off", "reset_hour": 4}
    if kind == "door":
        return {"apb_seconds": 0, "held_open_seconds": 30}
    if kind == "schedule":
        return {"week": {}, "holiday": []}
    if kind == "period":
        return {"weekdays": [1, 2, 3, 4, 5]}
    return {}


def _slots(values: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Each day's rows for the schedule editor: what it holds, then empty rows."""
    days: dict[str, list[tuple[str, str]]] = {}
    week = values.get("week") or {}
    for key in [str(d) for d in WEEKDAYS] + ["h"]:
        held = [tuple(p) for p in (values.get("holiday") if key == "h" else week.get(key)) or []]
        want = min(max(SLOTS, len(held) + 1), max(MAX_INTERVALS_PER_DAY, len(held)))
        days[key] = [(str(a), str(b)) for a, b in held] + [("", "")] * (want - len(held))
    return days


async def _form_page(
    page: Page,
    pool: PgPool,
    school_id: int,
    kind: str,
    row_id: int | None,
    values: dict[str, Any],
    error: DomainError | None = None,
    error_text: str | None = None,
) -> Response:
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        overview = await queries.overview(conn, actor, school_id)
        choices = await queries.choices(conn, school_id)
        points = (
            (await attendance_model.overview(conn, actor, school_id))["points"]
            if kind == "period"
            else []
        )
        terminals = await queries.door_terminals(conn, school_id) if kind == "door" else []
        teachers = await queries.school_teachers(conn, school_id) if kind == "teachers" else []
    action = f"/admin/s/{page.school_code}/access/{kind}/" + (
        "new" if row_id is None else f"{row_id}/edit"
    )
    return render(
        page,
        "admin/access_form.html",
        status=error.status if error else 200,
        kind=kind,
        row_id=row_id,
        action=action,
        back=f"/admin/s/{page.school_code}/access#{ANCHOR[kind]}",
        v=values,
        slots=_slots(values) if kind == "schedule" else {},
        o=overview,
        classes=choices["classes"],
        points=points,
        terminals=terminals,
        teachers=teachers,
        weekdays=WEEKDAYS,
        point_kinds=attendance_rules.POINT_KINDS,
        error=error,
        error_text=error_text or field_error(page, error, "acf"),
        deletable=row_id is not None and kind in DELETE_KINDS,
    )


# Routes --------------------------------------------------------------------------------------


@router.get("/s/{code}/access/{kind}/new")
async def new_form(page: UserPage, pool: Pool, code: SchoolCode, kind: KindNew) -> Response:
    school_id = await _enter_model(page, pool, code, kind)
    return await _form_page(page, pool, school_id, kind, None, _defaults(kind))


@router.get("/s/{code}/access/{kind}/{row_id}/edit")
async def edit_form(
    page: UserPage, pool: Pool, code: SchoolCode, kind: KindEdit, row_id: RowId
) -> Response:
    school_id = await _enter_model(page, pool, code, kind)
    assert page.user is not None
    async with pool.acquire() as conn:
        row = await queries.editable(conn, page.user, school_id, kind, row_id)
    if row is None:
        raise NotFound(f"no such {kind} in this school", field="id")
    return await _form_page(page, pool, school_id, kind, row_id, _stored_values(kind, row))


async def _post(page: Page, pool: PgPool, code: str, kind: str, row_id: int | None) -> Response:
    school_id = await _enter_model(page, pool, code, kind)
    form = await page.request.form()
    try:
        await _save(page, pool, school_id, kind, row_id, form)
    except DomainError as err:
        if err.status == 403 or (err.status == 404 and err.field in (None, "school", OWN_ID[kind])):
            raise  # the page itself is refused, or the row edited is gone: the error page
        return await _form_page(
            page, pool, school_id, kind, row_id, _form_values(kind, form), error=err
        )
    return redirect(f"/admin/s/{code}/access#{ANCHOR[kind]}", request=page.request)


@router.post("/s/{code}/access/{kind}/new")
async def create(page: PostPage, pool: Pool, code: SchoolCode, kind: KindNew) -> Response:
    return await _post(page, pool, code, kind, None)


@router.post("/s/{code}/access/{kind}/{row_id}/edit")
async def update(
    page: PostPage, pool: Pool, code: SchoolCode, kind: KindEdit, row_id: RowId
) -> Response:
    return await _post(page, pool, code, kind, row_id)


@router.post("/s/{code}/access/{kind}/{row_id}/delete")
async def delete(
    page: PostPage, pool: Pool, code: SchoolCode, kind: KindDelete, row_id: RowId
) -> Response:
    """Delete the row edited; while something uses it the edit page comes back saying what."""
    school_id = await _enter_model(page, pool, code, kind)
    assert page.user is not None
    try:
        await model.delete(pool, page.user, school_id, kind, row_id)
    except DomainError as err:
        if err.code != "IN_USE":
            raise  # refused, or already gone: the error page
        async with pool.acquire() as conn:
            row = await queries.editable(conn, page.user, school_id, kind, row_id)
        assert row is not None
        key = f"acf.in_use.{err.details.get('used_by', '')}"
        worded = page.t(key)
        text = None if worded == key.rsplit(".", 1)[-1] else worded  # not in the catalogs
        return await _form_page(
            page, pool, school_id, kind, row_id, _stored_values(kind, row), err, text
        )
    return redirect(f"/admin/s/{code}/access#{ANCHOR[kind]}", request=page.request)


@router.post("/s/{code}/access/period/{row_id}/end")
async def end_period(page: PostPage, pool: Pool, code: SchoolCode, row_id: RowId) -> Response:
    school_id = await _enter_model(page, pool, code, "period")
    assert page.user is not None
    await attendance_model.end_rule(pool, page.user, school_id, row_id)
    return redirect(f"/admin/s/{code}/access#periods", request=page.request)
