"""Sealing short secrets at rest (e.g. an SMS carrying a pickup code while it waits in the
outbox): AES-256-GCM from the ``cryptography`` library, with a key derived from the master key
per purpose and the purpose bound as associated data, so text sealed for one use cannot be
opened as another.

Sealed text reads ``v2.<base64url(nonce || ciphertext || tag)>``. Text sealed before (no
prefix: an HMAC keystream with an HMAC tag, written by hand) is only ever opened by
``open_legacy`` to seal it again (``platform/jobs.reseal_sms_outbox``); nothing seals that way
any more."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from campuscard.platform.errors import ValidationFailed

PREFIX = "v2."
NONCE_BYTES = 12


def _key(master_key: bytes, purpose: str) -> bytes:
    return hmac.new(
        master_key, f"campuscard/seal/{purpose}/aes-gcm".encode(), hashlib.sha256
    ).digest()


def _damaged() -> ValidationFailed:
    return ValidationFailed("sealed text is damaged", code="SEAL_INVALID")


def is_current(sealed: str) -> bool:
    return sealed.startswith(PREFIX)


def seal(master_key: bytes, purpose: str, plaintext: str) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    cipher = AESGCM(_key(master_key, purpose)).encrypt(nonce, plaintext.encode(), purpose.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + cipher).decode()


def unseal(master_key: bytes, purpose: str, sealed: str) -> str:
    if not is_current(sealed):
        raise _damaged()
    try:
        raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :].encode())
    except ValueError as err:
        raise _damaged() from err
    nonce, cipher = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    if len(nonce) != NONCE_BYTES:
        raise _damaged()
    try:
        plain = AESGCM(_key(master_key, purpose)).decrypt(nonce, cipher, purpose.encode())
    except InvalidTag as err:
        raise _damaged() from err
    return plain.decode()


def open_legacy(master_key: bytes, purpose: str, sealed: str) -> str:
    """Open text sealed by the former scheme (HMAC-SHA256 keystream, encrypt-then-MAC), only
    to seal it again with ``seal``."""
    enc = hmac.new(master_key, f"campuscard/seal/{purpose}/enc".encode(), hashlib.sha256).digest()
    mac = hmac.new(master_key, f"campuscard/seal/{purpose}/mac".encode(), hashlib.sha256).digest()
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
    except ValueError as err:
        raise _damaged() from err
    nonce, tag, cipher = raw[:16], raw[16:48], raw[48:]
    expected = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    if len(tag) != 32 or not hmac.compare_digest(tag, expected):
        raise _damaged()
    stream = bytearray()
    counter = 0
    while len(stream) < len(cipher):
        stream += hmac.new(enc, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(a ^ b for a, b in zip(cipher, stream, strict=False)).decode()
