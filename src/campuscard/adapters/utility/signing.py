"""Signatures between CampusCard and the utility vendor, both ways.

Each request carries ``X-Vendor-Key`` (our key id), ``X-Vendor-Timestamp`` (unix seconds),
``X-Vendor-Nonce`` and ``X-Vendor-Signature``: the lower-case hex HMAC-SHA256, keyed with the
shared secret, of ``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256(BODY)``. Each answer carries the
same headers over ``STATUS\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256(BODY)``, with the request's nonce,
so an answer cannot be replayed for another request. A request more than 300 s off the vendor's
clock, or a nonce seen before, is refused.
"""

from __future__ import annotations

import hashlib
import hmac

MAX_SKEW_SECONDS = 300


def request_signature(
    secret: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes
) -> str:
    text = "\n".join((method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()))
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def answer_signature(
    secret: bytes, status: int, path: str, timestamp: str, nonce: str, body: bytes
) -> str:
    text = "\n".join((str(status), path, timestamp, nonce, hashlib.sha256(body).hexdigest()))
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
