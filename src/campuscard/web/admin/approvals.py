"""Console page for four eyes on money: what colleagues proposed (adjustments, counter grants,
large deposits, payout-account changes, drawer floats) waits here for a second person, who
approves (the money moves then) or rejects with a reason. Same service as the API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path
from fastapi.responses import Response

from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.platform import four_eyes
from campuscard.platform.errors import DomainError
from campuscard.web import menu
from campuscard.web.admin.routes import BASE, SchoolCode, enter
from campuscard.web.core import Page, PostPage, UserPage, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)
menu.add("admin", "a.approvals", BASE + "/approvals", {"school_admin", "settlement"}, 62)


async def _view(
    page: Page, pool: PgPool, school_id: int, *, error: DomainError | None = None
) -> Response:
    assert page.user is not None
    async with pool.acquire() as conn:
        pending = await four_eyes.list_approvals(conn, page.user, school_id)
        recent = [
            a
            for a in await four_eyes.list_approvals(
                conn, page.user, school_id, pending_only=False, limit=20
            )
            if a["status"] != "pending"
        ]
    return render(
        page,
        "admin/approvals.html",
        status=error.status if error else 200,
        pending=pending,
        recent=recent,
        me=page.user.user_id,
        error=error,
    )


@router.get("/s/{code}/approvals")
async def approvals_page(page: UserPage, pool: Pool, code: SchoolCode) -> Response:
    school_id = await enter(page, pool, code, "a.approvals")
    return await _view(page, pool, school_id)


@router.post("/s/{code}/approvals/{approval_id}/decide")
async def approvals_decide(
    page: PostPage,
    pool: Pool,
    code: SchoolCode,
    approval_id: Annotated[int, Path(ge=1, le=2**62)],
    decision: Annotated[Literal["approve", "reject"], Form()],
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    school_id = await enter(page, pool, code, "a.approvals")
    assert page.user is not None
    try:
        await four_eyes.do_decide(
            pool, page.user, school_id, approval_id, approve=decision == "approve", note=note
        )
    except DomainError as err:
        return await _view(page, pool, school_id, error=err)
    return redirect(f"/admin/s/{code}/approvals")
