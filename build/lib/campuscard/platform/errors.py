"""Domain errors: every refusal carries a machine code, a message and the offending field."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal a caller can act on. ``status`` is the HTTP status the API answers with."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.field = field
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.details:
            body["details"] = self.details
        return body


class ValidationFailed(DomainError):
    status = 422
    code = "VALIDATION_FAILED"


class NotFound(DomainError):
    status = 404
    code = "NOT_FOUND"


class Conflict(DomainError):
    status = 409
    code = "CONFLICT"


class Unauthorized(DomainError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(DomainError):
    status = 403
    code = "FORBIDDEN"


class InsufficientFunds(DomainError):
    status = 409
    code = "INSUFFICIENT_FUNDS"


class TooManyRequests(DomainError):
    status = 429
    code = "TOO_MANY_REQUESTS"
