"""The OpenAPI document (/api/openapi.json): what each route answers, errors included.

Every route declares its success answer (a response model or a typed return). Every refusal has
one format, ``{"error": {"code", "message", "field"}}`` (edge/errors.py), so the document adds it
to every operation once here instead of on each route: ``4XX`` for refusals (FastAPI's own 422
schema replaced, since the app answers 422 in the same format) and ``503`` for a service that is
overloaded or whose database is briefly away (a retry with the same id is safe). 500 is never an
answer the API means to give, so it is not documented.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

ERROR_REF = "#/components/schemas/ErrorResponse"


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # some refusals add what the client needs to act

    code: str = Field(description='machine code, e.g. "INSUFFICIENT_FUNDS"', min_length=1)
    message: str = Field(description="what went wrong, in English", min_length=1)
    field: str | None = Field(description="the offending input field, if one is at fault")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorDetail, ErrorResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas[model.__name__] = schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error("the request is not valid: `field` names the input")
            responses.setdefault(
                "4XX", _error("refused: `code` says why, `field` names the input at fault")
            )
            responses.setdefault(
                "503", _error("overloaded or the database briefly away: retry with the same id")
            )
    return doc


def install(app: FastAPI) -> None:
    """Serve ``build(app)`` as the app's OpenAPI document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
