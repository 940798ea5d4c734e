"""How ``campuscard serve`` runs uvicorn: a deadline for a request's headers and a cap on their
size, so a client trickling headers (or sending megabytes of them) cannot hold connections;
and kept-alive connections kept even across the worker processes (edge/balance.py).

uvicorn closes an idle kept-alive connection (``timeout_keep_alive``) but waits forever for the
headers of a request that has begun; this protocol closes the connection when the headers have
not all arrived ``Settings.header_timeout_seconds`` after the connection or the request began."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from campuscard.config import Settings, get_settings
from campuscard.edge.balance import worker_balance

MAX_HEADER_BYTES = 64 * 1024


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout: float | None = None  # None: Settings.header_timeout_seconds

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = type(self).header_timeout or get_settings().header_timeout_seconds
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._balance = worker_balance()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._deadline, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        if self._balance is not None:
            self._balance.tick(self.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        if self._balance is not None:
            self._balance.tick(self.connections)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            self._disarm()
            self.send_400_response("Request headers too large")

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        # a worker holding more than its share of the server's connections closes this one
        # after its answer (edge/balance.py)
        if (
            self._balance is not None
            and self.cycle is not None
            and not self.pipeline
            and self._balance.should_close(self.connections)
        ):
            self.cycle.keep_alive = False


def serve_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options of ``campuscard serve``."""
    return {
        "http": HeaderTimeoutProtocol,
        "timeout_keep_alive": settings.keep_alive_seconds,
        # live-event streams end by themselves at shutdown (sse-starlette); anything else still
        # running after this is cancelled, so a stop never waits on a client
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }
