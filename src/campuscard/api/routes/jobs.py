"""Failed background jobs for the platform's operators: the list, retry, cancel
(platform/failed_jobs.py; the console page /admin/jobs uses the same service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from campuscard.api.deps import CurrentActor
from campuscard.edge.deps import Pool
from campuscard.platform import failed_jobs
from campuscard.platform.failed_jobs import FailedJobs, JobDecision

router = APIRouter(prefix="/api/v1/admin/jobs", tags=["jobs"])

JobId = Annotated[int, Path(ge=1, le=2**62, description="the job's id")]


@router.get("/failed")
async def list_failed_jobs(pool: Pool, actor: CurrentActor) -> FailedJobs:
    """Jobs whose attempts ran out, newest first (platform admins)."""
    async with pool.acquire() as conn:
        return await failed_jobs.list_failed(conn, actor)


@router.post("/{job_id}/retry")
async def retry_job(job_id: JobId, pool: Pool, actor: CurrentActor) -> JobDecision:
    """Run a failed job again now (one more attempt); audited."""
    return await failed_jobs.do_retry(pool, actor, job_id)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: JobId, pool: Pool, actor: CurrentActor) -> JobDecision:
    """Give a failed job up (and the outbox row it delivers); audited."""
    return await failed_jobs.do_cancel(pool, actor, job_id)
