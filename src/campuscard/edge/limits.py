"""Request-body limits, checked while the body arrives and before anything parses it.

Every route gets the app's small default (``Settings.max_json_body_bytes``, JSON and forms);
an upload route names its own larger limit with ``@accepts_upload(FILE_BYTES)`` under its
route decorator. A body over the limit (by its Content-Length, or counted as it streams in
without one) is answered 413 ``BODY_TOO_LARGE`` naming the limit, and the route sees a client
that went away."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campuscard.edge.errors import error_body
from campuscard.platform.errors import ValidationFailed

# room for the multipart framing and the form's other fields around an uploaded file
UPLOAD_OVERHEAD = 64 * 1024


def upload_limit(file_bytes: int) -> int:
    """The body limit of a route that takes one file of at most ``file_bytes``."""
    return file_bytes + UPLOAD_OVERHEAD


F = TypeVar("F", bound=Callable[..., Any])


def accepts_upload(file_bytes: int) -> Callable[[F], F]:
    """Mark a route's endpoint as taking one file of at most ``file_bytes``."""

    def mark(endpoint: F) -> F:
        endpoint.max_body_bytes = upload_limit(file_bytes)  # type: ignore[attr-defined]
        return endpoint

    return mark


# the framed-upload handshake's start and end fields around the file (issuing/import_rules.py)
FRAME_OVERHEAD = 1024


async def read_framed_upload(request: Request, file_bytes: int) -> bytes:
    """The body of a framed-upload route (student import, bill sheet, payroll sheet), read as
    it streams in and refused as soon as it is more than the file and its frame."""
    frame = bytearray()
    async for chunk in request.stream():
        frame += chunk
        if len(frame) > file_bytes + FRAME_OVERHEAD:
            raise ValidationFailed("the file is too large", code="FILE_TOO_LARGE", field="file")
    return bytes(frame)


def too_large_message(limit: int) -> str:
    return f"the request body is larger than this route's limit of {limit} bytes"


class BodyLimitMiddleware:
    """Counts the body as the route reads it; the limit is the route's (found by routing,
    which has run by the time a body is read) or ``default``."""

    def __init__(self, app: ASGIApp, *, default: int) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int | None = None
        seen = 0
        refused = False

        async def refuse() -> Message:
            nonlocal refused
            refused = True
            await _refuse(send, limit or self.default)
            return {"type": "http.disconnect"}

        async def counting_receive() -> Message:
            nonlocal seen, limit
            if refused:
                return {"type": "http.disconnect"}
            if limit is None:
                endpoint = getattr(scope.get("route"), "endpoint", None)
                limit = getattr(endpoint, "max_body_bytes", self.default)
                scope[MAX_BODY_SIZE_SCOPE_KEY] = limit
                declared = _content_length(scope)
                if declared is not None and declared > limit:
                    return await refuse()
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    return await refuse()
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # the route's answer to a body it never got whole
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    payload = json.dumps(
        error_body("BODY_TOO_LARGE", too_large_message(limit), "body"), ensure_ascii=False
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
