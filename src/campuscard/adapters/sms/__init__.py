"""The SMS gateway: what the platform needs from an SMS provider, whatever provider it is.

``SmsGateway`` is the interface; ``HttpSmsGateway`` (http.py) speaks the signed HTTP protocol
that ``simulator.py`` implements, signed like a terminal's request (platform/signing.py) with
the gateway's secret. Delivery always goes through the outbox worker
(platform/jobs.py), never from inside a database transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SIGNATURE_WINDOW_SECONDS = 300


class SmsError(Exception):
    """The gateway did not accept the message; the worker retries later."""


@dataclass(frozen=True)
class SmsReceipt:
    message_id: str
    duplicate: bool  # the gateway had already accepted this client_ref


class SmsGateway(Protocol):
    async def send(self, *, phone: str, text: str, client_ref: str) -> SmsReceipt:
        """Send one message; ``client_ref`` makes a repeated send a no-op at the gateway."""
        ...
