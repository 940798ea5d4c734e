"""The current request's id and client address, for logs and the audit trail."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestInfo:
    request_id: str | None = None
    ip: str | None = None


_NONE = RequestInfo()
# RequestInfo is frozen, so sharing one default instance is safe
_current: ContextVar[RequestInfo] = ContextVar("campuscard_request", default=_NONE)


def current_request() -> RequestInfo:
    return _current.get()


def set_request(info: RequestInfo) -> None:
    _current.set(info)
