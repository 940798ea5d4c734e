"""Server-sent events: the student's page and a till's customer display, live.

Both relay PostgreSQL NOTIFY events through the process's one ``EventHub`` (platform/live.py).
The student's stream carries their payments ("paid 12.50 at Canteen 2 Window 3, balance
87.50"), refunds, notifications and codes being scanned; the display's stream carries the
amount the cashier typed and the result of each code payment at that till.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from campuscard.api.deps import Body, CurrentActor
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.ledger.money import Money
from campuscard.payments import codes, display
from campuscard.platform.actors import Actor
from campuscard.platform.errors import DomainError, TooManyRequests
from campuscard.platform.live import Event, EventHub, Match, sse_format

router = APIRouter(prefix="/api/v1", tags=["live"])

HEARTBEAT_SECONDS = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_hub(request: Request) -> EventHub:
    """The process's hub (created on first use; the app closes it at shutdown)."""
    hub: EventHub | None = getattr(request.app.state, "event_hub", None)
    if hub is None:
        pool: PgPool = request.app.state.pool
        hub = EventHub(pool)
        request.app.state.event_hub = hub
    return hub


def subscribers(app: FastAPI) -> int:
    """Open live-event streams of this process (for the metrics)."""
    hub: EventHub | None = getattr(app.state, "event_hub", None)
    return hub.subscribers if hub is not None else 0


def require_event_stream(request: Request) -> None:
    """An event stream never ends; a client that did not ask for one (a plain HTTP call that
    waits for the body to finish) gets a clear error instead of hanging."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise DomainError(
            "this is a server-sent event stream: send 'Accept: text/event-stream' "
            "(EventSource does)",
            code="NOT_ACCEPTABLE",
            field="accept",
            status=406,
        )


class StreamCounter:
    """Open event streams per user in this process: one user cannot hold hundreds."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def claim(self, who: str, limit: int) -> None:
        if self.open.get(who, 0) >= limit:
            raise TooManyRequests(
                f"at most {limit} live-event streams may be open at once per user: "
                "close another page first",
                code="TOO_MANY_STREAMS",
                field="stream",
            )
        self.open[who] = self.open.get(who, 0) + 1

    def release(self, who: str) -> None:
        left = self.open.get(who, 0) - 1
        if left > 0:
            self.open[who] = left
        else:
            self.open.pop(who, None)


def stream_counter(request: Request) -> StreamCounter:
    counter: StreamCounter | None = getattr(request.app.state, "live_streams", None)
    if counter is None:
        counter = StreamCounter()
        request.app.state.live_streams = counter
    return counter


def sse_response(
    request: Request, actor: Actor, match: Match, first: list[Event]
) -> StreamingResponse:
    hub = event_hub(request)
    settings: Settings = request.app.state.settings
    streams = stream_counter(request)
    who = f"user:{actor.user_id}" if actor.user_id is not None else f"actor:{actor.name}"
    streams.claim(who, settings.live_streams_per_user)

    async def until_disconnected() -> None:
        # the server only notices a closed tab when told; without this a stream (and its
        # subscription) would linger until the next heartbeat failed to send
        while (await request.receive())["type"] != "http.disconnect":
            pass

    async def stream() -> AsyncIterator[str]:
        try:
            async for chunk in relay():
                yield chunk
        finally:
            streams.release(who)

    async def relay() -> AsyncIterator[str]:
        async with hub.subscription(match) as sub:
            gone = asyncio.create_task(until_disconnected())
            try:
                yield "retry: 3000\n\n"
                # "ready": nothing published from now on is missed (pages and tests wait for it)
                yield sse_format({"type": "ready"})
                for event in first:
                    yield sse_format(event)
                while True:
                    got = asyncio.create_task(sub.queue.get())
                    done, _ = await asyncio.wait(
                        {got, gone}, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                    if gone in done:
                        got.cancel()
                        return
                    if got in done:
                        yield sse_format(got.result())
                    else:
                        got.cancel()
                        yield ": keep-alive\n\n"
            finally:
                gone.cancel()

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/me/events", response_class=StreamingResponse)
async def my_events(request: Request, actor: CurrentActor) -> StreamingResponse:
    """The signed-in cardholder's live events (payments, refunds, codes scanned, notices)."""
    require_event_stream(request)
    person_id = codes.require_cardholder(actor)

    def mine(event: Event) -> bool:
        return event.get("person_id") == person_id and event.get("type") != "ready"

    return sse_response(request, actor, mine, [])


@router.get("/terminals/{terminal_id}/display/events", response_class=StreamingResponse)
async def display_events(
    terminal_id: int, request: Request, pool: Pool, actor: CurrentActor
) -> StreamingResponse:
    """A till's customer display: the amount to pay, then the result."""
    require_event_stream(request)
    async with pool.acquire() as conn:
        terminal = await display.access_terminal(conn, actor, terminal_id)
        pending = await display.pending_amount(conn, terminal)
    first = (
        [display.display_event("pos.pending", terminal, amount=str(pending))]
        if pending is not None
        else []
    )

    def at_this_till(event: Event) -> bool:
        return event.get("terminal_id") == terminal_id

    return sse_response(request, actor, at_this_till, first)


class PendingIn(Body):
    amount: Money = Field(description='the amount typed at the till, e.g. "12.50"')


@router.put("/terminals/{terminal_id}/display/pending")
async def set_pending(
    terminal_id: int, body: PendingIn, pool: Pool, actor: CurrentActor
) -> dict[str, Any]:
    """The POS page shows the typed amount on the customer display."""
    async with pool.acquire() as conn:
        terminal = await display.access_terminal(conn, actor, terminal_id)
        return await display.do_set_pending_amount(conn, terminal, body.amount, by=actor.name)


@router.delete("/terminals/{terminal_id}/display/pending")
async def clear_pending(terminal_id: int, pool: Pool, actor: CurrentActor) -> dict[str, Any]:
    async with pool.acquire() as conn:
        terminal = await display.access_terminal(conn, actor, terminal_id)
        return await display.do_clear_pending_amount(conn, terminal)
