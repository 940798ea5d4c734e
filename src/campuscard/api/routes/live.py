"""Server-sent events: the student's page and a till's customer display, live.

Both relay PostgreSQL NOTIFY events through the process's one ``EventHub`` (platform/live.py).
The student's stream carries their payments ("paid 12.50 at Canteen 2 Window 3, balance
87.50"), refunds, notifications and codes being scanned; the display's stream carries the
amount the cashier typed and the result of each code payment at that till.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from campuscard.api.deps import Body, CurrentActor
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.edge.deps import Pool
from campuscard.ledger.money import Money
from campuscard.payments import codes, display
from campuscard.platform.actors import Actor
from campuscard.platform.errors import DomainError, TooManyRequests
from campuscard.platform.live import Event, EventHub, Match, server_sent

router = APIRouter(prefix="/api/v1", tags=["live"])
log = logging.getLogger(__name__)


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


class LiveEventResponse(EventSourceResponse):
    """sse-starlette's stream (a heartbeat comment, the end of the stream when the client goes
    or the server stops, a deadline for each send) that also gives the user's stream slot back
    however it ends, and takes a client that stopped reading as the ordinary event it is."""

    def __init__(
        self,
        content: AsyncIterator[ServerSentEvent],
        settings: Settings,
        release: Callable[[], None],
        status_code: int = 200,  # FastAPI reads the default for the OpenAPI document
    ) -> None:
        super().__init__(
            content,
            status_code=status_code,
            ping=settings.live_heartbeat_seconds,
            ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep="\n"),
            send_timeout=settings.live_send_timeout_seconds,
            sep="\n",
            headers={"Cache-Control": "no-cache"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
            if self.active:
                # the server is stopping and cut the stream: end the response properly, so the
                # page reconnects (to another process) and the server logs no broken response
                self.active = False
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except SendTimeoutError:
            log.info("live events: the client took nothing for a while; stream closed")
        finally:
            self._release()


def sse_response(
    request: Request, actor: Actor, match: Match, first: list[Event]
) -> LiveEventResponse:
    hub = event_hub(request)
    settings: Settings = request.app.state.settings
    streams = stream_counter(request)
    who = f"user:{actor.user_id}" if actor.user_id is not None else f"actor:{actor.name}"
    streams.claim(who, settings.live_streams_per_user)

    async def relay() -> AsyncIterator[ServerSentEvent]:
        # a closed page or a stopping server cancels this generator where it waits; the
        # subscription's clean-up is shielded, so the LISTEN connection still goes back
        async with hub.subscription(match) as sub:
            # "ready": nothing published from now on is missed (pages and tests wait for it)
            yield server_sent({"type": "ready"}, retry_ms=3000)
            for event in first:
                yield server_sent(event)
            while True:
                yield server_sent(await sub.queue.get())

    return LiveEventResponse(relay(), settings, lambda: streams.release(who))


STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a server-sent event stream: `ready` first, then one event per change, "
        "each `data:` line one JSON object whose `type` is the event's name; a `: keep-alive` "
        "comment while nothing happens",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


class DisplayEventOut(BaseModel):
    type: str = Field(description='"pos.pending" (an amount to pay) or "pos.cleared"')
    school_id: int
    terminal_id: int
    merchant: str
    outlet: str
    amount: str | None = Field(default=None, description='the amount typed, e.g. "12.50"')


@router.get("/me/events", response_class=LiveEventResponse, responses=STREAM)
async def my_events(request: Request, actor: CurrentActor) -> LiveEventResponse:
    """The signed-in cardholder's live events (payments, refunds, codes scanned, notices)."""
    require_event_stream(request)
    person_id = codes.require_cardholder(actor)

    def mine(event: Event) -> bool:
        return event.get("person_id") == person_id and event.get("type") != "ready"

    return sse_response(request, actor, mine, [])


@router.get(
    "/terminals/{terminal_id}/display/events", response_class=LiveEventResponse, responses=STREAM
)
async def display_events(
    terminal_id: int, request: Request, pool: Pool, actor: CurrentActor
) -> LiveEventResponse:
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
) -> DisplayEventOut:
    """The POS page shows the typed amount on the customer display."""
    async with pool.acquire() as conn:
        terminal = await display.access_terminal(conn, actor, terminal_id)
        event = await display.do_set_pending_amount(conn, terminal, body.amount, by=actor.name)
    return DisplayEventOut.model_validate(event)


@router.delete("/terminals/{terminal_id}/display/pending")
async def clear_pending(terminal_id: int, pool: Pool, actor: CurrentActor) -> DisplayEventOut:
    async with pool.acquire() as conn:
        terminal = await display.access_terminal(conn, actor, terminal_id)
        event = await display.do_clear_pending_amount(conn, terminal)
    return DisplayEventOut.model_validate(event)
