"""/metrics: off unless an operator token is set, refused without it, and counting what
happens (payments by channel and outcome, request latency by route group, sign-in failures,
admission queues, the pool, the job queue). Several processes' values add up in multiprocess
mode."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.db.pool import create_pool
from campuscard.platform import metrics
from tests.support import make_school
from tests.support_payments import make_cardholder, make_device, make_merchant, pay

TOKEN = "operator-metrics-token-0123456789"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_are_off_without_a_token_and_refused_without_the_right_one(
    client: httpx.AsyncClient, settings: Settings, pool: Any
) -> None:
    # given the default settings: no metrics token
    assert (await client.get("/metrics")).status_code == 404
    # given a token
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}), pool=pool)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        assert (await c.get("/metrics")).status_code == 401
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        ok = await c.get("/metrics", headers=OPERATOR)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/plain")
    assert "campuscard_payments_total" in ok.text or "# HELP campuscard_payments" in ok.text
    # not in the API document: it is not an API a client calls
    assert "/metrics" not in (await client.get("/api/openapi.json")).json()["paths"]


async def test_payments_requests_and_sign_in_failures_are_counted(
    settings: Settings, pool: Any
) -> None:
    # given a till at a canteen, a cardholder with 10 yuan, and an operator scraping
    async with pool.acquire() as conn:
        school = await make_school(conn, "MET")
        merchant_id, outlet_id = await make_merchant(conn, school.id, channel="canteen")
        till = await make_device(conn, settings, school.id, merchant_id, outlet_id=outlet_id)
        _, card = await make_cardholder(conn, school.id, "M1", cash=1_000)
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}), pool=pool)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        before = (await c.get("/metrics", headers=OPERATOR)).text

        # when one payment is approved, one refused for want of money, and a sign-in fails
        assert (await pay(c, till, card, "6.00")).status_code == 200
        refused = await pay(c, till, card, "6.00")
        assert refused.status_code != 200
        code = refused.json()["error"]["code"]
        bad = await c.post(
            "/api/v1/auth/login", json={"username": "nobody", "password": "x", "school": "MET"}
        )
        assert bad.status_code == 401
        after = (await c.get("/metrics", headers=OPERATOR)).text

    # then each is counted under its labels
    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("campuscard_payments_total", channel="canteen", outcome="approved") == 1
    assert delta("campuscard_payments_total", channel="canteen", outcome=code) == 1
    assert delta("campuscard_sign_in_failures_total", reason="unknown_user") == 1
    assert delta("campuscard_http_request_seconds_count", group="api:terminal") == 2
    assert delta("campuscard_http_request_seconds_count", group="api:auth") == 1
    # and the sampled gauges are there: the canteen's queue, this process's pool
    assert ("campuscard_admission_queue_depth", (("channel", "canteen"),)) in samples(after)
    assert value(after, "campuscard_pool_connections", state="max") == pool.get_max_size()


async def test_the_job_queue_is_read_at_each_scrape(settings: Settings, pool: Any) -> None:
    # given: two jobs of a task waiting, one due for 90 s, and one of them failed
    async with pool.acquire() as conn:
        for due in ("now() - interval '90 seconds'", "now() + interval '1 hour'"):
            await conn.execute(
                f"""SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('test', 'test.task', 0, NULL,
                        NULL, '{{}}'::jsonb, {due})::procrastinate_job_to_defer_v1])"""
            )
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}), pool=pool)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        # when: an operator scrapes, then one job fails and the operator scrapes again
        first = (await c.get("/metrics", headers=OPERATOR)).text
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE procrastinate_jobs SET status = 'failed' WHERE task_name = 'test.task' "
                "AND scheduled_at < now()"
            )
        second = (await c.get("/metrics", headers=OPERATOR)).text

    # then: the jobs by state, and how long the due one has waited; a failure shows at once
    assert value(first, "campuscard_jobs", task="test.task", status="todo") == 2
    assert value(first, "campuscard_jobs", task="test.task", status="failed") == 0
    assert 90 <= value(first, "campuscard_job_oldest_due_seconds", task="test.task") < 600
    assert value(second, "campuscard_jobs", task="test.task", status="todo") == 1
    assert value(second, "campuscard_jobs", task="test.task", status="failed") == 1
    # the one left is not due yet: nothing waits for a worker
    assert value(second, "campuscard_job_oldest_due_seconds", task="test.task") == 0


def test_route_groups_stay_few() -> None:
    assert metrics.route_group("/api/v1/terminal/pay", 200) == "api:terminal"
    assert metrics.route_group("/api/health", 200) == "api:health"
    assert metrics.route_group("/student/home", 200) == "web:student"
    assert metrics.route_group("/", 200) == "web:home"
    assert metrics.route_group("/static/app.css", 200) == "static"
    assert metrics.route_group("/wp-admin/x.php", 404) == "unmatched"


def test_several_worker_processes_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    # given two worker processes that each answered payments, writing to one directory
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = (
        "from campuscard.platform import metrics\n"
        "for _ in range({n}): metrics.count_payment('tuition', {{}}, 200)\n"
    )
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", count.format(n=n)], env=env, check=True, timeout=60)
    # when a third process (the one a scrape reached) renders the metrics
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom campuscard.platform import metrics\n"
            "sys.stdout.write(metrics.exposition()[0].decode())",
        ],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    # then the scrape shows the sum of both
    assert value(shown, "campuscard_payments_total", channel="tuition", outcome="approved") == 5


async def test_the_pool_gauge_counts_callers_waiting_for_a_connection(db_url: str) -> None:
    # given a pool of one connection, held by one caller
    small = await create_pool(db_url, min_size=1, max_size=1)
    try:
        sampler = metrics.Sampler(lambda: small, dict, lambda: 0)
        held = await small.acquire()
        # when two more callers ask for one
        waiters = [asyncio.create_task(small.fetchval("SELECT 1")) for _ in range(2)]
        await asyncio.sleep(0.05)
        sampler.sample()
        text = metrics.exposition()[0].decode()
        assert value(text, "campuscard_pool_connections", state="waiting") == 2
        assert value(text, "campuscard_pool_connections", state="in_use") == 1
        # then, the connection given back, they are served and nobody waits
        await small.release(held)
        assert await asyncio.gather(*waiters) == [1, 1]
        sampler.sample()
        text = metrics.exposition()[0].decode()
        assert value(text, "campuscard_pool_connections", state="waiting") == 0
    finally:
        await small.close()
