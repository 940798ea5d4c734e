"""The booking lane: the two booking routes' requests that parse, without FastAPI's routing and
dependency resolution.

``POST /api/v1/terminal/pay`` and ``POST /api/v1/terminal/paycode/pay`` are most of what a
campus's server does; FastAPI's route machinery around them (routing through every router, the
dependency tree, the exit stacks, the exception middleware) was two fifths to half of the
server's CPU per payment (docs/performance.md, decision 0400). This ASGI middleware sits inside
the request context (request id, log line, metrics, the formatted 500/503) and the body limit,
and takes a request for one of those two paths whose body is JSON that its route's model
accepts: it verifies the till's signature (``terminals.verify_request``, as the routes'
dependency does)
and calls the route's own function (``book_card``, ``book_code``), so the answer, the
admission limits and the metrics are the route's. Refusals are rendered as the app's handlers
render them (``edge.errors``).

Everything else goes on to the app, and so does any of those requests the lane does not take
(another content type, a query string, a body that is not JSON or that the model refuses): the
app then reads the same body and answers exactly as it always has (FastAPI reads the body
first, then verifies the device, then validates; the lane takes only bodies that would
validate, so for those the device comes first in both). The routes stay declared in FastAPI,
so the OpenAPI document, the fuzz tests and the authorization matrix see them unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import orjson
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campuscard.api.routes import paycode_pay, terminal
from campuscard.edge.errors import data_error_response, domain_response
from campuscard.payments import terminals
from campuscard.payments.terminals import SignedTerminal
from campuscard.platform.errors import DomainError
from campuscard.platform.logs import bind_terminal


@dataclass(frozen=True)
class LaneRoute:
    model: type[BaseModel]
    book: Callable[[Starlette, BaseModel, SignedTerminal], Awaitable[Response]]


ROUTES: dict[str, LaneRoute] = {
    "/api/v1/terminal/pay": LaneRoute(terminal.PayIn, terminal.book_card),  # type: ignore[arg-type]
    "/api/v1/terminal/paycode/pay": LaneRoute(
        paycode_pay.CodePayIn,
        paycode_pay.book_code,  # type: ignore[arg-type]
    ),
}


class BookingLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST" or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away, or the body limit refused the body
        try:
            parsed = route.model.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            await self.app(scope, _replay(body, receive), send)
            return
        app: Starlette = scope["app"]
        try:
            device = await terminals.verify_request(
                app.state.pool,
                app.state.settings,
                method="POST",
                path=scope["path"],
                headers=headers,
                body=body,
                rechecked=True,
            )
            bind_terminal(device.id, device.school_id)  # as the routes' dependency does
            response = await route.book(app, parsed, device)
        except DomainError as exc:
            response = domain_response(exc)
        except asyncpg.DataError as exc:
            response = data_error_response(exc)
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app after the lane read the body: the body once, then the client."""
    pending = True

    async def again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
