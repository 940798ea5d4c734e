"""The SMS gateway: what the platform needs from an SMS provider, whatever provider it is.

``SmsGateway`` is the interface; ``HttpSmsGateway`` (http.py) speaks the signed HTTP protocol
that ``simulator.py`` implements. Delivery always goes through the outbox worker
(platform/jobs.py), never from inside a database transaction.
"""

from __future__ import annotations

import hashlib
import hmac
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


def signing_string(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What both sides sign: method, path, timestamp, nonce and the body's SHA-256."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{digest}".encode()


def sign(secret: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(
        secret, signing_string(method, path, timestamp, nonce, body), hashlib.sha256
    ).hexdigest()
