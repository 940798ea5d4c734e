"""One error format for every error: {"error": {"code", "message", "field", ...}}."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from campuscard.platform.errors import DomainError

log = logging.getLogger("campuscard.api")

# How a refusal on a page is shown (web/ renders it in the site layout): status, code, message,
# field. The composition root passes web's renderer; without one every path answers JSON.
PageRenderer = Callable[[Request, int, str, str, str | None], Awaitable[Response]]


def is_page_request(request: Request) -> bool:
    """Every path outside /api is a page."""
    return not request.url.path.startswith("/api")


def _json_body_sent_as_something_else(request: Request, errors: Sequence[Any]) -> bool:
    """A JSON route got a body it could not read as an object because the client labelled it
    as something else (text/plain, a form): say so, instead of "input should be a valid
    dictionary" with no field."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return False
    return any(
        e.get("type") == "model_attributes_type" and tuple(e.get("loc", ())) == ("body",)
        for e in errors
    )


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "BODY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}

# Database faults a retry can outlive: answer 503 so clients retry with the same id.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.QueryCanceledError,
    # a backend killed mid-query leaves asyncpg's protocol mid-operation; releasing the
    # connection then fails with this (the pool discards it; the bank test provokes it)
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def error_body(code: str, message: str, field: str | None = None, **details: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details:
        err["details"] = details
    return {"error": err}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [p for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("function-plain[_validate_money()]",):
            continue
        else:
            out += f".{p}" if out else str(p)
    return out or None


def validation_response(errors: list[dict[str, Any]] | Any) -> JSONResponse:
    items = []
    for e in errors:
        field = field_path(e.get("loc", ()))
        msg = str(e.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        items.append(
            {"field": field, "message": f"{field}: {msg}" if field else msg, "type": e.get("type")}
        )
    first = items[0] if items else {"field": None, "message": "invalid request", "type": None}
    kind = str(first["type"] or "")
    code = kind if kind.startswith("AMOUNT_") else "VALIDATION_FAILED"
    return JSONResponse(
        status_code=422,
        content=error_body(code, str(first["message"]), first["field"], errors=items),
    )


def domain_response(exc: DomainError) -> JSONResponse:
    """A refusal as the API answers it."""
    retry = exc.details.get("retry_after")
    headers = {"Retry-After": str(retry)} if retry is not None else None
    return JSONResponse(status_code=exc.status, content={"error": exc.to_dict()}, headers=headers)


def data_error_response(exc: asyncpg.DataError) -> JSONResponse:
    """A value the database cannot even hold (an id beyond 64 bits, ...): the input is bad,
    nothing was changed (the transaction rolled back), and it is not our fault."""
    # the class and state only: the message can quote the value, which may be a secret
    log.warning("input refused by the database: %s (%s)", type(exc).__name__, exc.sqlstate)
    return JSONResponse(
        status_code=422,
        content=error_body("VALUE_OUT_OF_RANGE", "a value in the request is out of range"),
    )


def install(app: FastAPI, page_renderer: PageRenderer | None = None) -> None:
    """The error handlers; pages (every path outside /api) get the same refusal rendered by
    ``page_renderer`` when one is given."""

    def is_page(request: Request) -> bool:
        return page_renderer is not None and is_page_request(request)

    async def error_page(
        request: Request, status: int, code: str, message: str, field: str | None = None
    ) -> Response:
        assert page_renderer is not None  # is_page() said so
        return await page_renderer(request, status, code, message, field)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        if is_page(request):
            return await error_page(request, exc.status, exc.code, exc.message, exc.field)
        return domain_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if not is_page(request) and _json_body_sent_as_something_else(request, exc.errors()):
            return JSONResponse(
                status_code=415,
                content=error_body(
                    "UNSUPPORTED_MEDIA_TYPE",
                    "send the body as JSON with 'Content-Type: application/json'",
                    "Content-Type",
                ),
            )
        response = validation_response(exc.errors())
        if is_page(request):
            err = json.loads(bytes(response.body))["error"]
            return await error_page(request, 422, err["code"], err["message"], err["field"])
        return response

    @app.exception_handler(asyncpg.DataError)
    async def _data(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        return data_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        if is_page(request) and exc.status_code >= 400:
            return await error_page(request, exc.status_code, code, str(exc.detail))
        return JSONResponse(
            status_code=exc.status_code,
            content=error_body(code, str(exc.detail)),
            headers=getattr(exc, "headers", None),
        )
