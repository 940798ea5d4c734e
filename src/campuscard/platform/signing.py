"""Request signing (HMAC-SHA256): terminals to the server, and the platform to the SMS gateway
(with the gateway's secret as the key). Shared by the server, the device simulator and the
gateway simulator.

The string to sign is five lines joined by "\\n":

    METHOD            upper case, e.g. POST
    PATH              path with the query string exactly as sent, e.g. /api/v1/terminal/pay
    TIMESTAMP         unix seconds, decimal
    NONCE             16-64 characters of [A-Za-z0-9_-], never reused by this terminal
    SHA256(BODY)      lower-case hex of the exact body bytes (of b"" when there is no body)

signature = lower-case hex HMAC-SHA256(terminal key, that string). The terminal key is
HMAC-SHA256(master key, "campuscard/terminal-key/v1|" + SN + "|" + key_version): the server
derives it again on demand and never stores it. See docs/terminal-protocol.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

HEADER_TERMINAL = "X-CC-Terminal"
HEADER_KEY_VERSION = "X-CC-Key-Version"
HEADER_TIMESTAMP = "X-CC-Timestamp"
HEADER_NONCE = "X-CC-Nonce"
HEADER_SIGNATURE = "X-CC-Signature"

NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
# A request whose timestamp is further than this from the server clock is refused.
MAX_SKEW_SECONDS = 300


@lru_cache(maxsize=4096)
def derive_terminal_key(master_key: str, sn: str, key_version: int) -> bytes:
    """The per-terminal key; cached per process (deriving is cheap, but payments are hot)."""
    label = f"campuscard/terminal-key/v1|{sn}|{key_version}".encode()
    return hmac.new(master_key.encode(), label, hashlib.sha256).digest()


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join((method.upper(), path, timestamp, nonce, body_digest(body)))


def sign(key: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = string_to_sign(method, path, timestamp, nonce, body).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signature_matches(
    key: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes, signature: str
) -> bool:
    return hmac.compare_digest(sign(key, method, path, timestamp, nonce, body), signature)


def signed_headers(
    *,
    sn: str,
    key: bytes,
    key_version: int,
    method: str,
    path: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> dict[str, str]:
    """The headers a device sends (used by the simulator and the tests)."""
    ts = str(timestamp)
    return {
        HEADER_TERMINAL: sn,
        HEADER_KEY_VERSION: str(key_version),
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(key, method, path, ts, nonce, body),
    }
