"""Pickup codes (取卡注册码, seed 004 step 4): how one is made, written and hashed.

A code is 16 digits: the application's day of the year (3), the day's application sequence
(3), the last two digits of the student number (2) and 8 random digits from ``secrets``, so it
is unique per school and day by construction yet cannot be guessed from what is public. The
platform keeps only HMAC-SHA256 of it under a key derived from the master key (the seed's MD5
would be reversible by brute force in seconds); each kiosk gets HMAC of it under its own key.

A kiosk checks a typed code locally, so whoever steals a kiosk's key and its feed can try codes
offline. The kiosk's hash is therefore HMAC over a memory-hard scrypt of the code (about 4 MiB
and ~15 ms a try on a server core; ``KIOSK_SCRYPT_*``): one student's 10^8 random parts cost
about 17 core-days, and a GPU gains little over a CPU, against a code that expires in days.
The server pays it once per code (not once per kiosk: ``_stretched`` keeps the last few), the
kiosk once per typed code. Trade-off and figures: docs/security.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from functools import lru_cache

CODE_DIGITS = 16
RANDOM_DIGITS = 8
# the cost of one try at a kiosk's local check (and of one offline guess with its stolen key)
KIOSK_SCRYPT_N = 2**12
KIOSK_SCRYPT_R = 8
KIOSK_SALT = b"campuscard/pickup-code/kiosk/v2"
_SEPARATORS = re.compile(r"[\s-]+")


def make_code(student_number: str, applied_at_local: datetime, day_seq: int) -> str:
    day = applied_at_local.timetuple().tm_yday
    digits = "".join(ch for ch in student_number if ch.isdigit()) or "0"
    tail = digits[-2:].rjust(2, "0")
    random_part = f"{secrets.randbelow(10**RANDOM_DIGITS):0{RANDOM_DIGITS}d}"
    return f"{day:03d}{day_seq % 1000:03d}{tail}{random_part}"


def normalize(typed: str) -> str | None:
    """The code as typed (spaces and dashes allowed), or None if it cannot be a code."""
    code = _SEPARATORS.sub("", typed or "")
    return code if len(code) == CODE_DIGITS and code.isdigit() else None


def display(code: str) -> str:
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def platform_key(master_key: bytes) -> bytes:
    return hmac.new(master_key, b"campuscard/pickup-code/v1", hashlib.sha256).digest()


def code_hash(key: bytes, school_id: int, code: str) -> bytes:
    return hmac.new(key, f"{school_id}:{code}".encode(), hashlib.sha256).digest()


def kiosk_key(master_key: bytes, kiosk_sn: str) -> bytes:
    """The key one kiosk checks codes with; it never learns the master key."""
    return hmac.new(
        master_key, f"campuscard/kiosk-pickup/v1/{kiosk_sn}".encode(), hashlib.sha256
    ).digest()


@lru_cache(maxsize=4)  # the kiosks of one school get the same stretch of one code
def _stretched(code: str) -> bytes:
    return hashlib.scrypt(
        code.encode(), salt=KIOSK_SALT, n=KIOSK_SCRYPT_N, r=KIOSK_SCRYPT_R, p=1, dklen=32
    )


def kiosk_hash(key: bytes, code: str) -> str:
    return hmac.new(key, _stretched(code), hashlib.sha256).hexdigest()


def legacy_kiosk_hash(key: bytes, code: str) -> str:
    """The kiosk hash of codes issued before the scrypt stretch (plain HMAC): kiosks still
    match them until they expire (``PICKUP_CODE_DAYS``); nothing issues them any more."""
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()
