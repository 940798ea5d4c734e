"""Failed background jobs over the API: only a platform admin lists them; a retry runs the job
again (the SMS goes out), a cancel gives it up with its outbox row; both are audited, and a job
that is no longer failed is refused with a clear answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import procrastinate
import pytest

from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.platform import notifications, outbox, queue
from campuscard.platform.tasks import OUTBOX_HANDLERS
from tests.support import login, make_school, make_user


@pytest.fixture
def gateway() -> Iterator[dict[str, Any]]:
    """The SMS handler: down until the test brings it back; records what it sent."""
    state: dict[str, Any] = {"up": False, "sent": []}

    async def handler(pool: PgPool, settings: Settings, payload: dict[str, Any]) -> None:
        if not state["up"]:
            raise ConnectionError("gateway down")
        state["sent"].append(payload["outbox_id"])

    saved = OUTBOX_HANDLERS.get("sms")
    OUTBOX_HANDLERS["sms"] = handler
    yield state
    if saved is None:
        OUTBOX_HANDLERS.pop("sms", None)
    else:
        OUTBOX_HANDLERS["sms"] = saved


async def test_failed_jobs_are_listed_retried_and_cancelled_by_a_platform_admin(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection[Any],
    pool: PgPool,
    settings: Settings,
    gateway: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: two text messages whose deliveries failed (one retry, for the test)
    monkeypatch.setattr(queue, "RETRY", procrastinate.RetryStrategy(max_attempts=1, wait=60))
    school = await make_school(conn)
    for phone in ("13900000001", "13900000002"):
        await notifications.enqueue(
            conn, "sms", {"phone": phone, "text": "hi"}, school_id=school.id
        )
    for _ in range(2):  # the first attempt, then the retry (made due at once)
        assert await outbox.deliver_batch(pool, settings) == 0
        await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now()")
    assert await conn.fetchval("SELECT array_agg(status::text) FROM procrastinate_jobs") == [
        "failed",
        "failed",
    ]
    await make_user(conn, "root", "platform_admin", None)
    await make_user(conn, "admin", "school_admin", school.id)
    root = await login(client, "root", None)
    admin = await login(client, "admin", school.code)

    # a school's admin may not see or touch the platform's jobs
    assert (await client.get("/api/v1/admin/jobs/failed", headers=admin)).status_code == 403
    assert (await client.post("/api/v1/admin/jobs/1/retry", headers=admin)).status_code == 403

    # when: the platform admin lists them
    r = await client.get("/api/v1/admin/jobs/failed", headers=root)
    assert r.status_code == 200, r.text
    jobs = r.json()["jobs"]
    assert [(j["task"], j["topic"], j["school"], j["attempts"]) for j in jobs] == [
        ("outbox.deliver", "sms", school.code, 2),
        ("outbox.deliver", "sms", school.code, 2),
    ]
    assert all("gateway down" in j["last_error"] and j["failed_at"] for j in jobs)
    newer, older = jobs

    # when: the gateway is back and one is retried, the other cancelled
    gateway["up"] = True
    r = await client.post(f"/api/v1/admin/jobs/{older['id']}/retry", headers=root)
    assert r.json() == {"id": older["id"], "status": "todo"}
    r = await client.post(f"/api/v1/admin/jobs/{newer['id']}/cancel", headers=root)
    assert r.json() == {"id": newer["id"], "status": "cancelled"}
    # then: the retried message is delivered, the cancelled one never
    assert await outbox.deliver_batch(pool, settings) == 1
    assert gateway["sent"] == [older["outbox_id"]]
    rows = {
        r["id"]: r for r in await conn.fetch("SELECT id, delivered_at, cancelled_at FROM outbox")
    }
    assert rows[older["outbox_id"]]["delivered_at"] is not None
    assert rows[newer["outbox_id"]]["cancelled_at"] is not None
    assert rows[newer["outbox_id"]]["delivered_at"] is None
    r = await client.get("/api/v1/admin/jobs/failed", headers=root)
    assert r.json() == {"jobs": [], "more": False}

    # a job no longer failed, or unknown, is refused and changes nothing
    r = await client.post(f"/api/v1/admin/jobs/{newer['id']}/retry", headers=root)
    assert r.status_code == 409 and r.json()["error"]["code"] == "JOB_NOT_FAILED"
    r = await client.post("/api/v1/admin/jobs/999999/cancel", headers=root)
    assert r.status_code == 404 and r.json()["error"]["field"] == "job_id"
    r = await client.post("/api/v1/admin/jobs/0/cancel", headers=root)
    assert r.status_code == 422 and r.json()["error"]["field"] == "job_id"

    # and both decisions are in the audit log, under the school whose message it was
    audit = await conn.fetch(
        "SELECT action, school_id, target_id, actor FROM audit_log "
        "WHERE action LIKE 'job.%' ORDER BY id"
    )
    assert [tuple(a) for a in audit] == [
        ("job.retry", school.id, str(older["id"]), "root"),
        ("job.cancel", school.id, str(newer["id"]), "root"),
    ]
