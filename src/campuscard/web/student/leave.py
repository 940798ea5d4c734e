"""Asking for leave on the phone (/m/leave, 请假): the student or a parent chooses the days and
the periods (whole days, one of the class's periods, or times of their own), gives the kind and
the reason, and follows each request: pending until a teacher of the class decides, approved or
not approved, and withdrawn while it is still pending (or approved and not started). The
teacher decides on the console's attendance page. docs/access.md "Attendance"."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import Response

from campuscard.attendance import leaves, rules
from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.platform.errors import DomainError, ValidationFailed
from campuscard.web import menu
from campuscard.web.core import (
    Page,
    PostPage,
    UserPage,
    field_error,
    opt_date,
    opt_int,
    redirect,
    render,
)
from campuscard.web.student.routes import CHOOSE_CHILD, HOLDERS, PersonQ, holder

router = APIRouter(prefix="/m", include_in_schema=False)
menu.add("student", "m.leave", "/m/leave", HOLDERS, 18)

LeaveId = Annotated[int, Path(ge=1, le=2**62)]
WHOLE_DAYS, OWN_TIMES = "", "custom"


def _at(day: date, text: str, field: str, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, rules.parse_time(text, field), tzinfo=tz)


def leave_times(
    *,
    start_date: date | None,
    end_date: date | None,
    span: str,
    start_time: str,
    end_time: str,
    periods: list[dict[str, Any]],
    tz: ZoneInfo,
) -> tuple[datetime, datetime]:
    """The leave as one stretch of time, in the school's zone: whole days run from the first
    day's midnight to the midnight after the last; a period from its opening on the first day
    to its closing on the last; own times as given."""
    if start_date is None:
        raise ValidationFailed("start_date: choose the first day", field="start_date")
    end_date = end_date or start_date
    if end_date < start_date:
        raise ValidationFailed("end_date is not before start_date", field="end_date")
    if span == WHOLE_DAYS:
        start = datetime.combine(start_date, time(0), tzinfo=tz)
        return start, datetime.combine(end_date + timedelta(days=1), time(0), tzinfo=tz)
    if span == OWN_TIMES:
        return (
            _at(start_date, start_time, "start_time", tz),
            _at(end_date, end_time, "end_time", tz),
        )
    period_id = opt_int(span, "span")
    chosen = next((p for p in periods if p["id"] == period_id), None)
    if chosen is None:
        raise ValidationFailed("span: choose whole days, a period or your own times", field="span")
    return (
        datetime.combine(start_date, chosen["opens_at"], tzinfo=tz),
        datetime.combine(end_date, chosen["closes_at"], tzinfo=tz),
    )


async def _view(
    page: Page,
    pool: PgPool,
    person: int | None,
    *,
    error: DomainError | None = None,
    form: dict[str, str] | None = None,
    notice: str = "",
) -> Response:
    actor = page.require("m.leave")
    async with pool.acquire() as conn:
        subject = await holder(page, conn, person)
        if subject is None:
            return redirect(CHOOSE_CHILD)
        student = subject["kind"] == "student"
        mine: list[leaves.Leave] = []
        periods: list[dict[str, Any]] = []
        if student:
            school_id = await leaves.school_of_student(conn, actor, subject["id"])
            mine = await leaves.leaves_of(conn, school_id, subject["id"])
            periods = await leaves.periods_of(conn, school_id, subject["id"])
    tz = ZoneInfo(subject["timezone"])
    today = datetime.now(tz).date()
    now = datetime.now(UTC)
    return render(
        page,
        "student/leave.html",
        status=error.status if error else 200,
        subject=subject,
        student=student,
        leaves=mine,
        periods=periods,
        cancellable={
            x.id
            for x in mine
            if x.state == "pending" or (x.state == "approved" and x.starts_at > now)
        },
        kinds=rules.LEAVE_KINDS,
        f=form or {"start_date": today.isoformat(), "end_date": today.isoformat()},
        today=today,
        tz=subject["timezone"],
        error=error,
        error_text=field_error(page, error, "m.leave"),
        notice=notice,
        person_qs=f"?person={subject['id']}" if page.extra.get("on_behalf") else "",
    )


@router.get("/leave")
async def leave_page(
    page: UserPage,
    pool: Pool,
    person: PersonQ = None,
    done: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    notice = page.t(f"m.leave.done.{done}") if done in ("asked", "cancelled") else ""
    return await _view(page, pool, person, notice=notice)


@router.post("/leave")
async def ask_for_leave(
    page: PostPage,
    pool: Pool,
    person: Annotated[int, Form(ge=1, le=2**62)],
    kind: Annotated[str, Form(max_length=16)] = "",
    start_date: Annotated[str, Form(max_length=10)] = "",
    end_date: Annotated[str, Form(max_length=10)] = "",
    span: Annotated[str, Form(max_length=20)] = "",
    start_time: Annotated[str, Form(max_length=5)] = "",
    end_time: Annotated[str, Form(max_length=5)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    actor = page.require("m.leave")
    form = {
        "kind": kind,
        "start_date": start_date,
        "end_date": end_date,
        "span": span,
        "start_time": start_time,
        "end_time": end_time,
        "reason": reason,
    }
    try:
        async with pool.acquire() as conn:
            subject = await holder(page, conn, person)
            if subject is None:
                return redirect(CHOOSE_CHILD)
            school_id = await leaves.school_of_student(conn, actor, subject["id"])
            periods = await leaves.periods_of(conn, school_id, subject["id"])
        starts_at, ends_at = leave_times(
            start_date=opt_date(start_date, "start_date"),
            end_date=opt_date(end_date, "end_date"),
            span=span.strip(),
            start_time=start_time.strip(),
            end_time=end_time.strip(),
            periods=periods,
            tz=ZoneInfo(subject["timezone"]),
        )
        await leaves.request_leave(
            pool,
            actor,
            school_id,
            subject["id"],
            kind=kind,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
        )
    except DomainError as err:
        if err.status == 403:
            raise
        return await _view(page, pool, person, error=err, form=form)
    return redirect(f"/m/leave?person={person}&done=asked", request=page.request)


@router.post("/leave/{leave_id}/cancel")
async def cancel(
    page: PostPage, pool: Pool, leave_id: LeaveId, person: Annotated[int, Form(ge=1, le=2**62)]
) -> Response:
    actor = page.require("m.leave")
    try:
        async with pool.acquire() as conn:
            school_id = await leaves.school_of_student(conn, actor, person)
        await leaves.cancel_leave(pool, actor, school_id, person, leave_id)
    except DomainError as err:
        if err.status == 403:
            raise
        return await _view(page, pool, person, error=err)
    return redirect(f"/m/leave?person={person}&done=cancelled", request=page.request)
