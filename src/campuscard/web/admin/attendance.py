"""The teacher's attendance pages: a class's daily sheet with the teacher's corrections, the
leave requests to decide, and the month's summary with its workbook (docs/access.md)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from campuscard.access.lists import school_today
from campuscard.attendance import leaves, model, rules, sheets
from campuscard.edge.deps import Pool
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import PostPage, UserPage, opt_date, opt_int, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)

menu.add("admin", "a.attendance", BASE + "/attendance", {"school_admin", "teacher"}, 31)


@router.get("/s/{code}/attendance")
async def attendance_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    class_: Annotated[str | None, Query(alias="class", max_length=20)] = None,
    day: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    school_id = await enter(page, pool, code, "a.attendance")
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        classes = await model.my_classes(conn, actor, school_id)
        today = (await school_today(conn, school_id))[0]
        chosen = opt_int(class_, "class") or (classes[0]["id"] if classes else None)
        the_day = opt_date(day, "day") or today
        sheet = (
            await sheets.daily_sheet(conn, actor, school_id, chosen, the_day)
            if chosen is not None
            else None
        )
        pending = await leaves.leaves_to_decide(conn, actor, school_id)
    return render(
        page,
        "admin/attendance.html",
        classes=classes,
        chosen=chosen,
        day=the_day,
        today=today,
        previous=the_day - timedelta(days=1),
        following=the_day + timedelta(days=1),
        sheet=sheet,
        pending=pending,
        statuses=rules.STATUSES,
    )


@router.post("/s/{code}/attendance/mark")
async def mark(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    class_id: Annotated[int, Form(ge=1, le=2**62)],
    rule_id: Annotated[int, Form(ge=1, le=2**62)],
    person_id: Annotated[int, Form(ge=1, le=2**62)],
    day: Annotated[date, Form()],
    status: Annotated[str, Form(pattern="^(present|late|absent|leave|clear)$")],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.attendance")
    assert page.user is not None
    await sheets.set_mark(
        pool,
        page.user,
        school_id,
        class_id,
        rule_id=rule_id,
        day=day,
        person_id=person_id,
        status=None if status == "clear" else status,
        note=note.strip(),
    )
    return redirect(
        f"/admin/s/{code}/attendance?class={class_id}&day={day.isoformat()}",
        request=page.request,
    )


@router.post("/s/{code}/attendance/leaves/{leave_id}")
async def decide(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    leave_id: int,
    decision: Annotated[str, Form(pattern="^(approve|reject)$")],
    note: Annotated[str, Form(max_length=200)] = "",
    back: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.attendance")
    assert page.user is not None
    await leaves.decide_leave(
        pool, page.user, school_id, leave_id, approve=decision == "approve", note=note.strip()
    )
    query = back if back.startswith("?") and "//" not in back else ""
    return redirect(f"/admin/s/{code}/attendance{query}", request=page.request)


@router.get("/s/{code}/attendance/month")
async def month_page(
    page: UserPage,
    pool: Pool,
    code: SchoolCode,
    class_: Annotated[str | None, Query(alias="class", max_length=20)] = None,
    month: Annotated[str | None, Query(max_length=7)] = None,
) -> Response:
    school_id = await enter(page, pool, code, "a.attendance")
    actor = page.user
    assert actor is not None
    async with pool.acquire() as conn:
        classes = await model.my_classes(conn, actor, school_id)
        today = (await school_today(conn, school_id))[0]
        chosen = opt_int(class_, "class") or (classes[0]["id"] if classes else None)
        the_month = month or today.strftime("%Y-%m")
        summary = (
            await sheets.month_summary(conn, actor, school_id, chosen, the_month)
            if chosen is not None
            else None
        )
    return render(
        page,
        "admin/attendance_month.html",
        classes=classes,
        chosen=chosen,
        month=the_month,
        summary=summary,
        statuses=rules.STATUSES,
    )
