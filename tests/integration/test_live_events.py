"""Server-sent events over a real HTTP server: the student's page sees "paid 12.50 at Canteen 2
Window 3, balance 87.50" the moment it commits; the till's display sees the typed amount first;
however many pages listen, the process holds one LISTEN connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from campuscard.app import create_app
from campuscard.config import SECRETS, Settings, env_name
from campuscard.db.embedded import free_port
from campuscard.platform import notifications
from campuscard.platform.event_batch import EventBatcher
from tests.servers import serve_in_thread
from tests.support import login, make_school, make_student, make_user


async def make_till(conn: asyncpg.Connection[Any], school_id: int) -> tuple[int, int]:
    merchant_id = await conn.fetchval(
        "INSERT INTO merchants(school_id, name, channel, status) "
        "VALUES ($1, 'Canteen 2', 'canteen', 'approved') RETURNING id",
        school_id,
    )
    outlet_id = await conn.fetchval(
        "INSERT INTO outlets(school_id, merchant_id, name) VALUES ($1, $2, 'Window 3') RETURNING id",
        school_id,
        merchant_id,
    )
    terminal_id = await conn.fetchval(
        "INSERT INTO terminals(school_id, sn, kind, merchant_id, outlet_id) "
        "VALUES ($1, 'POS-C2-W3', 'pos', $2, $3) RETURNING id",
        school_id,
        merchant_id,
        outlet_id,
    )
    return merchant_id, terminal_id


SSE = {"Accept": "text/event-stream"}


class Stream:
    """An open SSE connection whose events (and heartbeat comments) are collected in the
    background."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.beats: asyncio.Queue[str] = asyncio.Queue()

    async def beat(self, timeout: float = 10) -> str:
        return await asyncio.wait_for(self.beats.get(), timeout)

    async def next(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                event = await self.events.get()
                if event["type"] == kind:
                    return event

        return await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> AsyncIterator[Stream]:
    stream = Stream()
    ready = asyncio.Event()

    async def pump() -> None:
        sse = {**headers, "Accept": "text/event-stream"}
        async with client.stream("GET", url, headers=sse) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    await stream.beats.put(line)
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event["type"] == "ready":
                        ready.set()
                    else:
                        await stream.events.put(event)

    task = asyncio.create_task(pump())
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield stream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await task


async def listen_connections(conn: asyncpg.Connection[Any]) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()"
    )
    return count


async def test_student_page_and_till_display_live(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given: a student, another student, and a canteen till with its cashier
    school = await make_school(conn)
    person_id = await make_student(conn, school.id, "S1", cash=10_000)
    other_id = await make_student(conn, school.id, "S2", cash=10_000)
    await make_user(conn, "uS1", "cardholder", school.id, person_id=person_id)
    await make_user(conn, "uS2", "cardholder", school.id, person_id=other_id)
    merchant_id, terminal_id = await make_till(conn, school.id)
    await make_user(conn, "cashier", "merchant_staff", school.id, merchant_id=merchant_id)

    with serve_in_thread(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            me = await login(client, "uS1", school.code)
            other = await login(client, "uS2", school.code)
            cashier = await login(client, "cashier", school.code)
            display_url = f"/api/v1/terminals/{terminal_id}/display/events"
            async with (
                open_stream(client, "/api/v1/me/events", me) as phone,
                open_stream(client, "/api/v1/me/events", me) as laptop,
                open_stream(client, "/api/v1/me/events", other) as others_phone,
                open_stream(client, display_url, cashier) as display,
            ):
                # then: four pages, one LISTEN connection in the server process
                assert await listen_connections(conn) == 1

                # when: the cashier types 12.50
                r = await client.put(
                    f"/api/v1/terminals/{terminal_id}/display/pending",
                    json={"amount": "12.50"},
                    headers=cashier,
                )
                assert r.status_code == 200, r.text
                shown = await display.next("pos.pending")
                assert (shown["amount"], shown["merchant"], shown["outlet"]) == (
                    "12.50",
                    "Canteen 2",
                    "Window 3",
                )

                # when: a payment commits (the event the payment engine publishes)
                async with conn.transaction():
                    await notifications.publish_event(
                        conn,
                        {
                            "type": "payment",
                            "school_id": school.id,
                            "person_id": person_id,
                            "amount": "12.50",
                            "merchant": "Canteen 2",
                            "outlet": "Window 3",
                            "balance": "87.50",
                            "payment_id": 1,
                        },
                    )
                # then: both of the student's pages show it at once, the other student's not
                for page in (phone, laptop):
                    paid = await page.next("payment", timeout=5)
                    assert (paid["amount"], paid["outlet"], paid["balance"]) == (
                        "12.50",
                        "Window 3",
                        "87.50",
                    )
                # a rolled-back transaction publishes nothing; the next commit does
                with contextlib.suppress(RuntimeError):
                    async with conn.transaction():
                        await notifications.publish_event(
                            conn, {"type": "payment", "person_id": person_id, "amount": "99.99"}
                        )
                        raise RuntimeError("roll back")
                async with conn.transaction():
                    await notifications.publish_event(
                        conn, {"type": "payment", "person_id": person_id, "amount": "1.00"}
                    )
                assert (await phone.next("payment", timeout=5))["amount"] == "1.00"
                # payments' events sent together after their commits (one NOTIFY, an array)
                # reach the pages one by one, in order
                batcher = EventBatcher(lambda: conn)  # type: ignore[arg-type,return-value]
                for amount in ("2.00", "3.00"):
                    batcher.publish({"type": "payment", "person_id": person_id, "amount": amount})
                await batcher.drain()
                assert (await phone.next("payment", timeout=5))["amount"] == "2.00"
                assert (await phone.next("payment", timeout=5))["amount"] == "3.00"
                # the other student's page received nothing but its own "ready"
                assert others_phone.events.empty()

            # the last page closed: the LISTEN connection goes back to the pool
            for _ in range(100):
                if await listen_connections(conn) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await listen_connections(conn) == 0


async def test_display_and_stream_refusals(
    client: httpx.AsyncClient, conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn, "AAA")
    other = await make_school(conn, "BBB")
    _, terminal_id = await make_till(conn, school.id)
    person_id = await make_student(conn, school.id, "S1")
    await make_user(conn, "uS1", "cardholder", school.id, person_id=person_id)
    await make_user(conn, "opB", "school_admin", other.id)
    student = await login(client, "uS1", school.code)
    other_admin = await login(client, "opB", other.code)
    # a student is not staff of the till; another school's admin does not see it
    for headers in (student, other_admin):
        r = await client.put(
            f"/api/v1/terminals/{terminal_id}/display/pending",
            json={"amount": "1.00"},
            headers=headers,
        )
        assert r.status_code == 404 and r.json()["error"]["field"] == "terminal_id"
    sse = {"Accept": "text/event-stream"}
    r = await client.get("/api/v1/me/events", headers=sse)
    assert r.status_code == 401
    r = await client.get("/api/v1/me/events", headers=other_admin | sse)
    assert r.status_code == 403
    # a plain call (no event-stream Accept) is told what the endpoint is instead of hanging
    r = await client.get("/api/v1/me/events", headers=student)
    assert r.status_code == 406 and r.json()["error"]["field"] == "accept"


async def test_served_streams_beat_close_cleanly_and_do_not_hold_a_stop(
    conn: asyncpg.Connection[Any], settings: Settings, tmp_path: Path
) -> None:
    """`campuscard serve` as production runs it: quiet streams get a heartbeat, a closed page
    gives its slot back, SIGTERM with streams open stops the server within 5 s, and none of
    it writes a warning or an error line."""
    school = await make_school(conn)
    person_id = await make_student(conn, school.id, "S1")
    await make_user(conn, "uS1", "cardholder", school.id, person_id=person_id)
    port = free_port()
    env = (
        os.environ
        | {env_name(name): f"{name}-for-the-serve-stop-test-0123456789" for name in SECRETS}
        | {
            "CAMPUSCARD_DATABASE_URL": settings.database_url,
            "CAMPUSCARD_PORT": str(port),
            "CAMPUSCARD_DATA_DIR": str(tmp_path),
            "CAMPUSCARD_LOG_JSON": "true",
            "CAMPUSCARD_LIVE_HEARTBEAT_SECONDS": "0.3",
            "CAMPUSCARD_LIVE_STREAMS_PER_USER": "2",
        }
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_file = tmp_path / "serve.log"
    with log_file.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "campuscard.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log_file.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/api/health")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "serve did not start"
                await asyncio.sleep(0.1)
            me = await login(client, "uS1", school.code)
            url = "/api/v1/me/events"
            async with open_stream(client, url, me) as phone:
                # a quiet stream still gets a comment line every heartbeat
                await phone.beat()
                await phone.beat()
                async with open_stream(client, url, me):
                    pass  # the page closes: its slot comes back without an error line
                for _ in range(100):  # the server notices at once; this waits for it
                    async with client.stream("GET", url, headers=me | SSE) as again:
                        if again.status_code == 200:
                            break
                    await asyncio.sleep(0.05)
                assert again.status_code == 200, "a closed page kept its stream slot"
                async with open_stream(client, url, me):
                    # when: the server is told to stop with two streams open
                    stopping = time.monotonic()
                    server.send_signal(signal.SIGTERM)
                    code = await asyncio.to_thread(server.wait, 15)
                    stopped_in = time.monotonic() - stopping
        # uvicorn ends by raising the signal it caught again, as a stopped process should
        assert code in (0, -signal.SIGTERM), log_file.read_text()
        assert stopped_in < 5, f"serve took {stopped_in:.1f} s to stop with streams open"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    loud = [line for line in lines if line.get("level") not in ("debug", "info")]
    assert not loud, loud
