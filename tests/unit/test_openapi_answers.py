"""The OpenAPI document says what every route answers: a success answer with named fields (a
response model, not ``dict[str, Any]``), or a declared non-JSON body (a file, an event stream),
and the one error format for its refusals. Operations still answering a bare dict are listed
below by name; the list only shrinks (a route typed since must leave it, a new route must not
join it)."""

from __future__ import annotations

import functools

from campuscard.app import create_app
from campuscard.config import Settings
from tests.openapi_types import ERROR_REF, untyped

# typed router by router; each entry is one operation whose answer is still a bare dict
NOT_YET_TYPED = frozenset(
    {
        "POST /api/v1/schools/{school}/bills/{bill_id}/deferral",
        "POST /api/v1/schools/{school}/bills/{bill_id}/plan",
        "POST /api/v1/schools/{school}/fee-items",
        "GET /api/v1/admin/persons/{person_id}",
        "GET /api/v1/admin/schools/{school}/attendance/classes/{class_id}/export",
        "GET /api/v1/admin/schools/{school}/card-applications",
        "GET /api/v1/admin/schools/{school}/card-production",
        "GET /api/v1/admin/schools/{school}/card-production/export",
        "GET /api/v1/admin/schools/{school}/persons",
        "GET /api/v1/admin/schools/{school}/reports/consumption",
        "GET /api/v1/admin/schools/{school}/reports/daily",
        "GET /api/v1/admin/schools/{school}/settlement/days/{business_date}/merchants/{merchant_id}/statement",
        "GET /api/v1/admin/schools/{school}/student-imports",
        "GET /api/v1/admin/schools/{school}/student-imports/{version}/file",
        "GET /api/v1/card-applications",
        "GET /api/v1/card-applications/options/classes",
        "GET /api/v1/card-applications/options/provinces",
        "GET /api/v1/card-applications/options/schools",
        "GET /api/v1/card-applications/{application_id}",
        "GET /api/v1/kiosk/pickup-key",
        "GET /api/v1/kiosk/pickups",
        "GET /api/v1/terminal/meter/tariff",
        "PATCH /api/v1/admin/persons/{person_id}",
        "POST /api/v1/admin/card-applications/{application_id}/decision",
        "POST /api/v1/admin/card-applications/{application_id}/hand-out",
        "POST /api/v1/admin/schools/{school}/card-production/produced",
        "POST /api/v1/admin/schools/{school}/ledger/adjustments",
        "POST /api/v1/admin/schools/{school}/persons",
        "POST /api/v1/admin/schools/{school}/student-imports",
        "POST /api/v1/card-applications",
        "POST /api/v1/card-applications/{application_id}/cancel",
        "POST /api/v1/card-applications/{application_id}/fee-payment",
        "POST /api/v1/card-applications/{application_id}/pickup-code",
        "POST /api/v1/kiosk/pickups/authorize",
        "POST /api/v1/kiosk/pickups/{pickup_id}/complete",
        "POST /api/v1/kiosk/pickups/{pickup_id}/failure",
        "POST /api/v1/kiosk/self-service/overview",
        "POST /api/v1/kiosk/self-service/pin",
        "POST /api/v1/kiosk/self-service/report-loss",
        "POST /api/v1/kiosk/self-service/start-card",
        "POST /api/v1/kiosk/self-service/start-password",
        "POST /api/v1/kiosk/self-service/topup",
        "POST /api/v1/terminal/meter/end",
        "POST /api/v1/terminal/meter/start",
    }
)


@functools.cache
def document() -> dict[str, object]:
    app = create_app(Settings(database_url="postgresql://unused/none", _env_file=None))  # type: ignore[call-arg]
    return app.openapi()


def test_every_route_says_what_it_answers() -> None:
    found = untyped(document())
    new = {label: why for label, why in found.items() if label not in NOT_YET_TYPED}
    assert not new, f"routes that do not say what they answer: {new}"
    typed_since = sorted(NOT_YET_TYPED - set(found))
    assert not typed_since, f"typed now, take them off NOT_YET_TYPED: {typed_since}"


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
