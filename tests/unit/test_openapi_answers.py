"""The OpenAPI document says what every route answers: a success answer with named fields (a
response model, not ``dict[str, Any]``), or a declared non-JSON body (a file, an event stream),
and the one error format for its refusals. No operation may answer a bare dict: a new route
declares its answer the day it lands."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from campuscard.api import openapi
from campuscard.app import create_app
from campuscard.config import Settings
from tests.openapi_types import ERROR_REF, untyped


@functools.cache
def document() -> dict[str, object]:
    app = create_app(Settings(database_url="postgresql://unused/none", _env_file=None))  # type: ignore[call-arg]
    return app.openapi()


def test_every_route_says_what_it_answers() -> None:
    found = untyped(document())
    assert not found, f"routes that do not say what they answer: {found}"


def test_refusals_are_documented_in_the_one_error_format() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]  # type: ignore[index]
    error = schemas["ErrorResponse"]  # type: ignore[index]
    assert error["required"] == ["error"]
    detail = schemas["ErrorDetail"]  # type: ignore[index]
    assert set(detail["required"]) == {"code", "message", "field"}
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 shape is never answered
    for operations in doc["paths"].values():  # type: ignore[attr-defined]
        for operation in operations.values():
            responses = operation["responses"]
            for code in ("4XX", *(c for c in responses if c == "422")):
                schema = responses[code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (operation["operationId"], code)
            # 503: the error format, or what the operation says itself (/api/ready's reasons)
            assert responses["503"]["content"]["application/json"]["schema"]


class Named(BaseModel):
    id: int


def test_a_route_answering_a_bare_dict_is_caught() -> None:
    # given: a route that answers dict[str, Any], beside one with a response model
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, Any]:
        return {}

    @app.get("/named")
    async def named() -> Named:
        return Named(id=1)

    # when: the document is built as the app builds it
    found = untyped(openapi.build(app))

    # then: only the bare one is named
    assert set(found) == {"GET /bare"}
