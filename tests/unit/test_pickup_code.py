"""Pickup codes and sealed secrets (no database)."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

import pytest

from campuscard.issuing import pickup_code as codes
from campuscard.platform.errors import ValidationFailed
from campuscard.platform.sealing import seal, unseal

MASTER = b"unit-test-master-key"


def test_code_is_built_from_day_sequence_number_and_randomness() -> None:
    code = codes.make_code("2026000123", datetime(2026, 2, 1, 9, 30), 7)
    assert len(code) == 16 and code.isdigit()
    assert code[:3] == "032"  # 1 February is day 32
    assert code[3:6] == "007"  # the day's 7th application
    assert code[6:8] == "23"  # student number's last two digits
    others = {codes.make_code("2026000123", datetime(2026, 2, 1), 7)[8:] for _ in range(50)}
    assert len(others) > 45  # the random part differs call to call


def test_typed_codes_are_normalized() -> None:
    code = "0320072312345678"
    assert codes.normalize(codes.display(code)) == code
    assert codes.normalize("032-007-23-12345678") == code
    assert codes.normalize("03200723") is None
    assert codes.normalize("03200723123456ab") is None


def test_hashes_are_keyed_and_per_kiosk() -> None:
    code = "0320072312345678"
    key = codes.platform_key(MASTER)
    assert codes.code_hash(key, 1, code) != codes.code_hash(key, 2, code)
    assert codes.code_hash(key, 1, code) != codes.code_hash(codes.platform_key(b"other"), 1, code)
    k1 = codes.kiosk_key(MASTER, "KIOSK-1")
    k2 = codes.kiosk_key(MASTER, "KIOSK-2")
    assert codes.kiosk_hash(k1, code) != codes.kiosk_hash(k2, code)
    assert codes.kiosk_hash(k1, code) == codes.kiosk_hash(k1, codes.normalize(code) or "")


def test_sealed_text_opens_only_with_the_key_and_untouched() -> None:
    sealed = seal(MASTER, "sms", "取卡注册码 0320 0723 1234 5678")
    assert "0320" not in sealed
    assert unseal(MASTER, "sms", sealed) == "取卡注册码 0320 0723 1234 5678"
    with pytest.raises(ValidationFailed):
        unseal(b"wrong", "sms", sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(ValidationFailed):
        unseal(MASTER, "sms", tampered)


def test_first_mismatch_follows_seed_order() -> None:
    from campuscard.issuing.application_rules import first_mismatch

    assert first_mismatch(None) == "class"
    assert first_mismatch((False, True, True)) == "class"
    assert first_mismatch((True, False, False)) == "name"
    assert first_mismatch((True, True, False)) == "number"
    assert first_mismatch((True, True, True)) is None


def test_the_kiosk_hash_is_memory_hard_so_a_stolen_kiosk_key_enumerates_slowly() -> None:
    # given: a kiosk's key (as a thief would hold it) and a code
    code = "0320072312345678"
    key = codes.kiosk_key(MASTER, "KIOSK-1")
    # then: the hash is HMAC over scrypt (4 MiB per try), not over the code itself
    stretched = hashlib.scrypt(
        code.encode(), salt=b"campuscard/pickup-code/kiosk/v2", n=4096, r=8, p=1, dklen=32
    )
    assert codes.kiosk_hash(key, code) == hmac.new(key, stretched, hashlib.sha256).hexdigest()
    assert codes.kiosk_hash(key, code) != hmac.new(key, code.encode(), "sha256").hexdigest()
    assert 128 * codes.KIOSK_SCRYPT_N * codes.KIOSK_SCRYPT_R >= 4 * 2**20
    # and a try really costs: fresh codes (nothing cached) take measurable time each
    started = time.perf_counter()
    for tail in range(5):
        codes.kiosk_hash(key, f"03200723123456{tail:02d}")
    assert (time.perf_counter() - started) / 5 > 0.002


def test_a_kiosk_still_matches_a_code_issued_before_the_stretch() -> None:
    code = "0320072312345678"
    key = codes.kiosk_key(MASTER, "KIOSK-1")
    assert codes.legacy_kiosk_hash(key, code) == hmac.new(key, code.encode(), "sha256").hexdigest()
