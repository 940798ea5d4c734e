"""Sealed secrets are AES-256-GCM from the cryptography library, bound to their purpose."""

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from campuscard.platform.errors import ValidationFailed
from campuscard.platform.sealing import open_legacy, seal, unseal

MASTER = b"test-master-key-0123456789abcdef"


def test_sealed_text_is_standard_aes_gcm_with_the_purpose_as_associated_data() -> None:
    sealed = seal(MASTER, "sms", "取卡注册码 0320 0723 1234 5678")
    assert sealed.startswith("v2.")
    raw = base64.urlsafe_b64decode(sealed[3:])
    key = hmac.new(MASTER, b"campuscard/seal/sms/aes-gcm", hashlib.sha256).digest()
    # any AES-GCM implementation opens it: nonce (12) || ciphertext || tag (16)
    assert (
        AESGCM(key).decrypt(raw[:12], raw[12:], b"sms").decode() == "取卡注册码 0320 0723 1234 5678"
    )
    assert len(raw) == 12 + len("取卡注册码 0320 0723 1234 5678".encode()) + 16


def test_two_seals_of_one_text_differ_and_other_purposes_cannot_open_it() -> None:
    a, b = seal(MASTER, "sms", "1234"), seal(MASTER, "sms", "1234")
    assert a != b
    with pytest.raises(ValidationFailed):
        unseal(MASTER, "email", a)


@pytest.mark.parametrize("sealed", ["", "v2.", "v2.AAAA", "v2.!!!", "plain text"])
def test_damaged_text_is_refused_with_a_clear_error(sealed: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        unseal(MASTER, "sms", sealed)
    assert err.value.code == "SEAL_INVALID"


def _legacy_seal(master: bytes, purpose: str, text: str, nonce: bytes) -> str:
    """What the former hand-written scheme wrote (to prove old rows still open)."""
    enc = hmac.new(master, f"campuscard/seal/{purpose}/enc".encode(), hashlib.sha256).digest()
    mac = hmac.new(master, f"campuscard/seal/{purpose}/mac".encode(), hashlib.sha256).digest()
    data = text.encode()
    stream = b"".join(
        hmac.new(enc, nonce + i.to_bytes(8, "big"), hashlib.sha256).digest() for i in range(4)
    )
    cipher = bytes(a ^ b for a, b in zip(data, stream, strict=False))
    tag = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(nonce + tag + cipher).decode()


def test_text_sealed_by_the_former_scheme_opens_only_for_resealing() -> None:
    old = _legacy_seal(MASTER, "sms", "注册码 1234", b"n" * 16)
    assert open_legacy(MASTER, "sms", old) == "注册码 1234"
    with pytest.raises(ValidationFailed):
        unseal(MASTER, "sms", old)
    with pytest.raises(ValidationFailed):
        open_legacy(b"another-master-key", "sms", old)
