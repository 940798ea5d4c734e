"""Console page of failed background jobs (platform admins): what failed, when, why, and a
button to run it again or cancel it. Same service as the API (platform/failed_jobs.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path
from fastapi.responses import Response

from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.platform import failed_jobs
from campuscard.platform.errors import DomainError
from campuscard.web import menu
from campuscard.web.core import Page, PostPage, UserPage, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)
menu.add("admin", "a.jobs", "/admin/jobs", {"platform_admin"}, 95)
# outbox topics the page names in words (a topic without words is shown as "other delivery")
TOPICS = ("sms", "provider.refund", "payout.requested", "pickup.issue_code")


async def _view(
    page: Page, pool: PgPool, *, error: DomainError | None = None, done: str = ""
) -> Response:
    assert page.user is not None
    async with pool.acquire() as conn:
        failed = await failed_jobs.list_failed(conn, page.user)
    return render(
        page,
        "admin/jobs.html",
        status=error.status if error else 200,
        jobs=failed.jobs,
        topics=TOPICS,
        more=failed.more,
        error=error,
        done=done,
    )


@router.get("/jobs")
async def jobs_page(page: UserPage, pool: Pool, done: str = "") -> Response:
    page.require("a.jobs")
    return await _view(page, pool, done=done if done in ("retried", "cancelled") else "")


@router.post("/jobs/{job_id}")
async def jobs_decide(
    page: PostPage,
    pool: Pool,
    job_id: Annotated[int, Path(ge=1, le=2**62)],
    action: Annotated[Literal["retry", "cancel"], Form()],
) -> Response:
    actor = page.require("a.jobs")
    try:
        if action == "retry":
            await failed_jobs.do_retry(pool, actor, job_id)
        else:
            await failed_jobs.do_cancel(pool, actor, job_id)
    except DomainError as err:
        return await _view(page, pool, error=err)
    return redirect("/admin/jobs?done=" + ("retried" if action == "retry" else "cancelled"))
