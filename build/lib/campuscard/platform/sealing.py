"""Sealing short secrets at rest (e.g. an SMS carrying a pickup code while it waits in the
outbox): an HMAC-SHA256 keystream with an HMAC tag over nonce and ciphertext
(encrypt-then-MAC), keyed from the master key. Only the standard library is needed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from campuscard.platform.errors import ValidationFailed


def _keys(master_key: bytes, purpose: str) -> tuple[bytes, bytes]:
    enc = hmac.new(master_key, f"campuscard/seal/{purpose}/enc".encode(), hashlib.sha256).digest()
    mac = hmac.new(master_key, f"campuscard/seal/{purpose}/mac".encode(), hashlib.sha256).digest()
    return enc, mac


def _stream(key: bytes, nonce: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:length])


def seal(master_key: bytes, purpose: str, plaintext: str) -> str:
    enc, mac = _keys(master_key, purpose)
    nonce = secrets.token_bytes(16)
    data = plaintext.encode()
    cipher = bytes(a ^ b for a, b in zip(data, _stream(enc, nonce, len(data)), strict=True))
    tag = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(nonce + tag + cipher).decode()


def unseal(master_key: bytes, purpose: str, sealed: str) -> str:
    enc, mac = _keys(master_key, purpose)
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
    except ValueError as err:
        raise ValidationFailed("sealed text is damaged", code="SEAL_INVALID") from err
    nonce, tag, cipher = raw[:16], raw[16:48], raw[48:]
    if len(tag) != 32 or not hmac.compare_digest(
        tag, hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    ):
        raise ValidationFailed("sealed text is damaged", code="SEAL_INVALID")
    return bytes(
        a ^ b for a, b in zip(cipher, _stream(enc, nonce, len(cipher)), strict=True)
    ).decode()
