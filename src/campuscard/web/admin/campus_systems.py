"""The campus systems that ask who a card belongs to (library, labs, exams): the school's
administrators register one (its API token is shown once), see how much each asks and when it
last did, and revoke a token (docs/access.md "Campus systems")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path
from fastapi.responses import Response

from campuscard.access import systems
from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.platform.errors import DomainError
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
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
menu.add("admin", "a.campus_systems", BASE + "/access/systems", {"school_admin"}, 47)
SystemId = Annotated[int, Path(ge=1, le=2**62)]


async def _page(
    page: Page,
    pool: PgPool,
    school_id: int,
    *,
    error: DomainError | None = None,
    form: dict[str, str] | None = None,
    created: systems.NewSystem | None = None,
) -> Response:
    assert page.user is not None
    async with pool.acquire() as conn:
        rows = await systems.list_systems(conn, page.user, school_id)
    return render(
        page,
        "admin/campus_systems.html",
        status=error.status if error else (201 if created else 200),
        rows=rows,
        kinds=systems.KINDS,
        created=created,
        f=form or {"per_minute": "120"},
        error=error,
        error_text=field_error(page, error, "acf"),
    )


@router.get("/s/{code}/access/systems")
async def systems_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.campus_systems")
    return await _page(page, pool, school_id)


@router.post("/s/{code}/access/systems")
async def register(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
    per_minute: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """The answer shows the token once; reloading the page does not show it again."""
    school_id = await enter(page, pool, code, "a.campus_systems")
    assert page.user is not None
    form = {"name": name, "kind": kind, "per_minute": per_minute}
    try:
        created = await systems.register_system(
            pool,
            page.user,
            school_id,
            name=name,
            kind=kind,
            per_minute=opt_int(per_minute, "per_minute") or 0,
        )
    except DomainError as err:
        if err.status == 403:
            raise
        return await _page(page, pool, school_id, error=err, form=form)
    return await _page(page, pool, school_id, created=created)


@router.post("/s/{code}/access/systems/{system_id}/revoke")
async def revoke(page: PostPage, pool: Pool, code: SchoolCode, system_id: SystemId) -> Response:
    school_id = await enter(page, pool, code, "a.campus_systems")
    assert page.user is not None
    await systems.revoke_system(pool, page.user, school_id, system_id)
    return redirect(f"/admin/s/{code}/access/systems", request=page.request)
