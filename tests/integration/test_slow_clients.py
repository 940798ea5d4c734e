"""Clients that hold connections: one user opening stream after stream is capped, and a
connection trickling its headers is closed at the header deadline."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import uvicorn

from campuscard.app import create_app
from campuscard.config import Settings
from campuscard.edge.server import HeaderTimeoutProtocol
from tests.integration.test_live_events import open_stream
from tests.servers import free_port, serve_in_thread
from tests.support import login, make_school, make_student, make_user


async def test_one_user_may_hold_only_a_few_live_streams(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given a student allowed two streams
    school = await make_school(conn)
    person_id = await make_student(conn, school.id, "S1")
    await make_user(conn, "uS1", "cardholder", school.id, person_id=person_id)
    await make_user(
        conn, "uS2", "cardholder", school.id, person_id=await make_student(conn, school.id, "S2")
    )
    capped = settings.model_copy(update={"live_streams_per_user": 2})
    with serve_in_thread(create_app(capped)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            me = await login(client, "uS1", school.code)
            other = await login(client, "uS2", school.code)
            url = "/api/v1/me/events"
            sse = me | {"Accept": "text/event-stream"}
            async with open_stream(client, url, me), open_stream(client, url, me):
                # when a third is opened
                third = await client.get(url, headers=sse)
                # then it is refused, naming why; another user is not affected
                assert third.status_code == 429
                assert third.json()["error"]["code"] == "TOO_MANY_STREAMS"
                async with open_stream(client, url, other):
                    pass
            # closing a page frees its place
            for _ in range(50):
                async with contextlib.AsyncExitStack() as pages:
                    try:
                        await pages.enter_async_context(open_stream(client, url, me))
                        await pages.enter_async_context(open_stream(client, url, me))
                        break
                    except AssertionError:
                        await asyncio.sleep(0.1)  # the server notices the closed tabs
            else:
                raise AssertionError("closed streams were never released")


class QuickHeaders(HeaderTimeoutProtocol):
    header_timeout = 0.5


@contextlib.contextmanager
def serve_with_protocol(app: Any) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=QuickHeaders, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def test_a_connection_trickling_its_headers_is_closed_at_the_deadline() -> None:
    with serve_with_protocol(hello) as port:
        # a whole request is answered
        with socket.create_connection(("127.0.0.1", port)) as ok:
            ok.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            ok.settimeout(5)
            assert ok.recv(1024).startswith(b"HTTP/1.1 200")
        # headers that never finish: the connection is closed soon after the deadline
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.2)
            slow.sendall(b"X-Slow: 1\r\n")
            assert closed_within(slow, 5)
        # a connection that sends nothing at all is closed too
        with socket.create_connection(("127.0.0.1", port)) as silent:
            assert closed_within(silent, 5)
        # and headers beyond the size cap are refused
        with socket.create_connection(("127.0.0.1", port)) as huge:
            huge.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n")
            huge.sendall(b"\r\n")
            huge.settimeout(5)
            answer = huge.recv(1024)
            assert not answer.startswith(b"HTTP/1.1 200"), answer
