"""Console pages for getting a card: student-record imports (with the browser uploader), the
approval queue, and the card center's production queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from campuscard.edge.deps import AppSettings, Pool
from campuscard.issuing import applications, imports, production
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import PostPage, UserPage, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)

menu.add(
    "admin", "a.student_imports", BASE + "/imports", {"school_admin", "teacher", "card_center"}, 32
)
menu.add(
    "admin",
    "a.applications",
    BASE + "/applications",
    {"school_admin", "teacher", "card_center"},
    34,
)
menu.add("admin", "a.production", BASE + "/production", {"school_admin", "card_center"}, 36)


@router.get("/s/{code}/imports")
async def imports_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.student_imports")
    assert page.user is not None
    async with pool.acquire() as conn:
        versions = await imports.list_imports(conn, page.user, school_id)
    return render(page, "admin/imports.html", versions=versions)


@router.get("/s/{code}/applications")
async def applications_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.applications")
    assert page.user is not None
    async with pool.acquire() as conn:
        queue = await applications.list_applications(conn, page.user, school_id)
        ready = await applications.list_applications(
            conn, page.user, school_id, status="ready", limit=50
        )
    return render(page, "admin/applications.html", queue=queue, ready=ready)


@router.post("/s/{code}/applications/{application_id}")
async def decide(
    page: PostPage,
    pool: Pool,
    settings: AppSettings,
    code: SchoolCode,
    application_id: int,
    decision: Annotated[str, Form(pattern="^(approve|reject)$")],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    await enter(page, pool, code, "a.applications")
    assert page.user is not None
    async with pool.acquire() as conn:
        await applications.do_decide(
            conn, settings, page.user, application_id, approve=decision == "approve", note=note
        )
    return redirect(f"/admin/s/{code}/applications", request=page.request)


@router.get("/s/{code}/production")
async def production_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.production")
    assert page.user is not None
    async with pool.acquire() as conn:
        waiting = await production.production_queue(conn, page.user, school_id)
        produced = await production.production_queue(conn, page.user, school_id, status="produced")
    return render(page, "admin/production.html", waiting=waiting, produced=produced)


@router.post("/s/{code}/production/produced")
async def mark_produced(page: PostPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.production")
    assert page.user is not None
    form = await page.request.form()
    ids = [int(v) for v in form.getlist("application_id") if isinstance(v, str) and v.isdigit()]
    async with pool.acquire() as conn:
        await production.do_mark_produced(conn, page.user, school_id, ids)
    return redirect(f"/admin/s/{code}/production", request=page.request)


@router.post("/s/{code}/production/{application_id}/hand-out")
async def hand_out(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    application_id: int,
    card_number: Annotated[str, Form(pattern=r"^[0-9]{6,20}$")],
    card_uid: Annotated[str, Form(pattern=r"^[0-9A-Fa-f]{8,20}$")],
) -> Response:
    await enter(page, pool, code, "a.production")
    assert page.user is not None
    async with pool.acquire() as conn:
        await production.do_hand_out(
            conn, page.user, application_id, card_number=card_number, card_uid=card_uid.upper()
        )
    return redirect(f"/admin/s/{code}/production", request=page.request)
