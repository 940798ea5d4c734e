"""Failed background jobs, for the platform's operators: list them, run one again, or cancel it.

A job is ``failed`` when its retries ran out (an outbox delivery after ``queue.MAX_ATTEMPTS``
tries) or a periodic job raised. Jobs serve the platform, not one school, so only a platform
admin acts on them; each retry and cancel is written to the audit log (under the outbox row's
school when the job delivers one). No second person is needed: neither moves money by itself,
a retried delivery still goes through its handler's own checks and deduplication.

- **Retry** puts the job back to run now (procrastinate's ``retry_job``) and wakes the workers;
  it gets one more attempt, and fails again at once if the cause is still there.
- **Cancel** marks it cancelled; an outbox row it delivered is cancelled too, so nothing sends
  it later, and both are purged with the other finished work.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, transaction
from campuscard.platform import audit
from campuscard.platform.actors import Actor
from campuscard.platform.errors import Conflict, NotFound
from campuscard.platform.queue import DELIVER_TASK

LIST_LIMIT = 200


class FailedJob(BaseModel):
    id: int = Field(description="the job's id")
    task: str = Field(description='what the job runs, e.g. "outbox.deliver", "periodic.auto-topup"')
    queue: str
    attempts: int = Field(description="attempts made before it failed")
    failed_at: datetime | None = Field(description="when it last failed")
    outbox_id: int | None = Field(description="the outbox row it delivers (deliveries only)")
    topic: str | None = Field(description='the outbox row\'s topic, e.g. "sms"')
    school: str | None = Field(description="the school code of the outbox row")
    last_error: str | None = Field(description="the last delivery error, as the worker saw it")


class FailedJobs(BaseModel):
    jobs: list[FailedJob]
    more: bool = Field(description=f"more than {LIST_LIMIT} jobs failed; the oldest are not listed")


class JobDecision(BaseModel):
    id: int
    status: Literal["todo", "cancelled"] = Field(
        description='"todo": it runs again now; "cancelled": it never runs'
    )


def _require(actor: Actor) -> None:
    actor.require("platform_admin", school_id=None)


async def list_failed(conn: Conn, actor: Actor) -> FailedJobs:
    _require(actor)
    rows = await conn.fetch(
        """SELECT j.id, j.task_name, j.queue_name, j.attempts, j.args,
                  (SELECT max(e.at) FROM procrastinate_events e
                    WHERE e.job_id = j.id AND e.type = 'failed') AS failed_at
             FROM procrastinate_jobs j
            WHERE j.status = 'failed'
            ORDER BY j.id DESC
            LIMIT $1""",
        LIST_LIMIT + 1,
    )
    # the outbox is school data (distributed by school); the jobs are the platform's: two
    # reads, not a join across the two kinds of table
    outbox_ids = [_outbox_id(r) for r in rows if _outbox_id(r) is not None]
    outbox = {
        r["id"]: r
        for r in await conn.fetch(
            """SELECT o.id, o.topic, o.last_error, s.code
                 FROM outbox o JOIN schools s ON s.id = o.school_id
                WHERE o.id = ANY($1::bigint[])""",
            outbox_ids,
        )
    }
    jobs = []
    for r in rows[:LIST_LIMIT]:
        box = outbox.get(_outbox_id(r))
        jobs.append(
            FailedJob(
                id=r["id"],
                task=r["task_name"],
                queue=r["queue_name"],
                attempts=r["attempts"],
                failed_at=r["failed_at"],
                outbox_id=_outbox_id(r),
                topic=box["topic"] if box else None,
                school=box["code"] if box else None,
                last_error=box["last_error"] if box else None,
            )
        )
    return FailedJobs(jobs=jobs, more=len(rows) > LIST_LIMIT)


def _outbox_id(row: Any) -> int | None:
    if row["task_name"] != DELIVER_TASK:
        return None
    args = row["args"]
    if isinstance(args, str):
        args = json.loads(args)
    value = args.get("outbox_id") if isinstance(args, dict) else None
    return value if isinstance(value, int) else None


async def _lock_failed(tx: Tx, job_id: int) -> tuple[Any, int | None]:
    """The failed job, locked; and its outbox row's school."""
    row = await tx.fetchrow(
        "SELECT id, task_name, status::text AS status, attempts, args "
        "FROM procrastinate_jobs WHERE id = $1 FOR UPDATE",
        job_id,
    )
    if row is None:
        raise NotFound("no such job", field="job_id")
    if row["status"] != "failed":
        raise Conflict(
            f"the job is {row['status']}, not failed: only a failed job is retried or cancelled",
            code="JOB_NOT_FAILED",
            field="job_id",
        )
    outbox_id = _outbox_id(row)
    school_id = (
        await tx.fetchval("SELECT school_id FROM outbox WHERE id = $1", outbox_id)
        if outbox_id is not None
        else None
    )
    return row, school_id


async def do_retry(pool: PgPool, actor: Actor, job_id: int) -> JobDecision:
    _require(actor)
    async with transaction(pool) as conn:
        row, school_id = await _lock_failed(conn, job_id)
        await conn.execute("SELECT procrastinate_retry_job_v2($1, now(), NULL, NULL, NULL)", job_id)
        # the workers listen: wake one now instead of at its next poll
        payload = json.dumps({"type": "job_inserted", "job_id": job_id})
        await conn.execute(
            """SELECT pg_notify('procrastinate_queue_v1#' || queue_name, $2),
                      pg_notify('procrastinate_any_queue_v1', $2)
                 FROM procrastinate_jobs WHERE id = $1""",
            job_id,
            payload,
        )
        await audit.record(
            conn,
            actor,
            "job.retry",
            school_id=school_id,
            target_type="job",
            target_id=job_id,
            before={"status": "failed", "task": row["task_name"], "attempts": row["attempts"]},
            after={"status": "todo"},
        )
    return JobDecision(id=job_id, status="todo")


async def do_cancel(pool: PgPool, actor: Actor, job_id: int) -> JobDecision:
    _require(actor)
    async with transaction(pool) as conn:
        row, school_id = await _lock_failed(conn, job_id)
        await conn.execute(
            "UPDATE procrastinate_jobs SET status = 'cancelled' WHERE id = $1", job_id
        )
        outbox_id = _outbox_id(row)
        if outbox_id is not None:
            await conn.execute(
                """UPDATE outbox SET cancelled_at = now()
                    WHERE id = $1 AND delivered_at IS NULL AND cancelled_at IS NULL""",
                outbox_id,
            )
        await audit.record(
            conn,
            actor,
            "job.cancel",
            school_id=school_id,
            target_type="job",
            target_id=job_id,
            before={"status": "failed", "task": row["task_name"], "attempts": row["attempts"]},
            after={"status": "cancelled", "outbox_id": outbox_id},
        )
    return JobDecision(id=job_id, status="cancelled")
