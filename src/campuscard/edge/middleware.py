"""Request ids, one structured log line per request, and the last line of defence: a fault
becomes a formatted 503 (transient database trouble) or 500, never a bare traceback."""

from __future__ import annotations

import json
import random
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campuscard.edge.errors import TRANSIENT_DB_ERRORS, error_body
from campuscard.platform import metrics
from campuscard.platform.logs import get_logger, start_request
from campuscard.platform.requestctx import RequestInfo, set_request

log = get_logger("campuscard.access")


_ids = random.Random(secrets.randbits(64))  # noqa: S311 - a log label, not a secret


def _new_request_id() -> str:
    """16 hex digits naming a request in the logs: not a secret, so no system call for it."""
    return f"{_ids.getrandbits(64):016x}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = (
            incoming if 8 <= len(incoming) <= 64 and incoming.isascii() else _new_request_id()
        )
        client = scope.get("client")
        set_request(RequestInfo(request_id=request_id, ip=client[0] if client else None))
        start_request(request_id)  # every log line of this request carries its id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if response_started:
                raise
            transient = isinstance(exc, TRANSIENT_DB_ERRORS)
            status = 503 if transient else 500
            if transient:
                log.warning("transient fault", error=repr(exc))
                body = error_body(
                    "SERVICE_UNAVAILABLE",
                    "the service is briefly unavailable; retry with the same client id",
                )
            else:
                log.exception("unhandled error")
                body = error_body("INTERNAL", "internal error; it has been logged")
            await _send_json(send, status, body, request_id)
        finally:
            seconds = time.perf_counter() - started
            metrics.observe_request(scope.get("path", ""), status, seconds)
            log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                ms=round(seconds * 1000, 2),
            )


async def _send_json(send: Send, status: int, body: dict[str, Any], request_id: str) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
