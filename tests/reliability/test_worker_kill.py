"""A job worker killed in the middle of a delivery: the SMS arrives exactly once afterwards.

`campuscard worker` runs as its own process against this test's database and a real SMS
gateway simulator over HTTP. The gateway takes the message and then holds its answer, so the
worker is inside the job (the outside call made, the row not yet marked) when it is killed with
SIGKILL: no clean-up, no shutdown hook. Its procrastinate heartbeat then goes stale, the
stalled-jobs sweep puts the job back, and the next delivery sends the same outbox row again;
the gateway recognises its ``client_ref``, so the person gets one message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from campuscard.adapters.sms.simulator import create_sms_simulator
from campuscard.config import SECRETS, Settings, env_name
from campuscard.db.pool import PgPool
from campuscard.platform import notifications, outbox, queue
from campuscard.platform.tasks import load_job_modules
from tests.servers import serve_in_thread
from tests.support import make_school

SECRET = "sms-secret-for-the-worker-kill-test-0123456789"
PHONE = "13977778888"


class HoldingGateway:
    """ASGI wrapper: lets the simulator take a send, then holds the answer until released."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sim = app.state.sim
        self.received = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/sms/send":
            await self.app(scope, receive, send)
            return
        answer: list[Any] = []

        async def keep(message: Any) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        if self.release.is_set():
            for message in answer:
                await send(message)
            return
        self.received.set()
        await asyncio.to_thread(self.release.wait, 120)
        # the worker that asked is dead by now: nobody reads this answer


@pytest.fixture
def gateway() -> Iterator[tuple[str, HoldingGateway]]:
    holding = HoldingGateway(create_sms_simulator({"campuscard": SECRET.encode()}))
    with serve_in_thread(holding) as url:
        yield url, holding
        holding.release.set()


def _worker_env(settings: Settings, url: str) -> dict[str, str]:
    # production secrets (every one `serve` and `worker` check), the SMS one the gateway's
    secrets = {env_name(name): f"{name}-for-the-worker-kill-test-0123456789" for name in SECRETS}
    return (
        os.environ
        | secrets
        | {
            "CAMPUSCARD_DATABASE_URL": settings.database_url,
            "CAMPUSCARD_SMS_GATEWAY_URL": url,
            "CAMPUSCARD_SMS_API_SECRET": SECRET,
            "CAMPUSCARD_LOG_JSON": "true",
        }
    )


def _reached(holding: HoldingGateway, worker: subprocess.Popen[bytes]) -> bool:
    """Wait for the gateway to hold the send; give up early if the worker exited."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker.poll() is None:
        if holding.received.wait(0.5):
            return True
    return False


async def test_a_worker_killed_in_a_delivery_leaves_one_message(
    pool: PgPool, settings: Settings, gateway: tuple[str, HoldingGateway]
) -> None:
    url, holding = gateway
    async with pool.acquire() as conn:
        school = await make_school(conn)
        async with conn.transaction():
            await notifications.enqueue(
                conn, "sms", {"phone": PHONE, "text": "卡已挂失"}, school_id=school.id
            )
    env = _worker_env(settings, url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "campuscard.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # when: the gateway has the message and the worker waits for its answer
        reached = await asyncio.to_thread(_reached, holding, worker)
        assert reached, f"the worker never reached the gateway (exit {worker.poll()})"
        status = await pool.fetchval(
            "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'outbox.deliver'"
        )
        assert status == "doing"
        worker.send_signal(signal.SIGKILL)
        await asyncio.to_thread(worker.wait, 60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        holding.release.set()
    assert worker.returncode == -signal.SIGKILL
    assert [m.text for m in holding.sim.inbox(PHONE)] == ["卡已挂失"]
    delivered = await pool.fetchval("SELECT delivered_at FROM outbox")
    assert delivered is None  # killed before it could record the delivery

    # then: the dead worker's heartbeat is old (as it would be after STALLED_SECONDS), the
    # sweep puts its job back, and the next delivery finishes it
    await pool.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 h'")
    load_job_modules()
    wired = settings.model_copy(
        update={"sms_gateway_url": url, "sms_api_secret": SecretStr(SECRET)}
    )
    app = queue.build_app(wired, pool, periodic_jobs=False)
    async with app.open_async():
        # (periodic jobs the dead worker had started come back too)
        assert await queue.retry_stalled(app) >= 1
        assert await queue.retry_stalled(app) == 0
    assert (
        await pool.fetchval(
            "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'outbox.deliver'"
        )
        == "todo"
    )
    assert await outbox.deliver_batch(pool, wired) == 1
    assert await outbox.deliver_batch(pool, wired) == 0

    # exactly one message reached the phone, the row is delivered, the job succeeded
    assert [m.text for m in holding.sim.inbox(PHONE)] == ["卡已挂失"]
    assert holding.sim.sends_attempted == 2
    row = await pool.fetchrow("SELECT delivered_at, attempts, last_error FROM outbox")
    assert row["delivered_at"] is not None and row["last_error"] is None
    assert (
        await pool.fetchval(
            "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'outbox.deliver'"
        )
        == "succeeded"
    )
