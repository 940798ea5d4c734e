"""Payment codes (付款码): the 20-digit code a student's phone shows at the till. Pure rules.

Layout (20 digits, read left to right)::

    S TTTTTTTT PPPPPPPPPP L
    | |        |          +- Luhn check digit over the first 19 (catches a mistyped digit)
    | |        +------------ payload, 10 digits, depends on the scheme
    | +--------------------- account token: 8 digits naming the binding / minted code
    +----------------------- scheme: 6 or 7 = generated on the phone, 8 = minted by the server

Schemes 6 and 7 (the phone computes it offline, TOTP-like): payload = ``NNN C MMMMMM`` where NNN
is the time step modulo 1000, C a counter 0-9 (a fresh code within the same step, for a second
payment), and MMMMMM the HMAC-SHA256 of ``cc-paycode:v2:<token>:<step>:<counter>`` (scheme 6;
``v1`` for scheme 7) under the device secret, dynamically truncated (RFC 4226 §5.3) to 6 digits.
The server recomputes it for the steps around its own clock. They differ in the secret (decision
0401): a phone bound with scheme 6 has a secret derived from what its codes carry (the school,
the token, the step length), so the server checks the code before it reads anything; scheme 7's
secret is salted per binding (bindings made before decision 0401), so the server reads the
binding's salt first. The HMAC covers the scheme (its message's version), so a phone's code with
its first digit changed does not check out.

Scheme 8 (seed 000: phones that cannot run the generator): the server mints the code with a
random 10-digit verification code and registers it in the back office; the till's scan is
checked against that registration.

The same algorithm runs in the phone's page: ``web/static/js/paycode.js`` (a test keeps them equal).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from stdnum import luhn

from campuscard.platform.errors import ValidationFailed

CODE_LENGTH = 20
TOKEN_DIGITS = 8
PAYLOAD_DIGITS = 10
# a phone's code whose secret is derived from the code's own token (decision 0401): new bindings
SCHEME_DEVICE_KEYED = "6"
# a phone's code whose secret is salted per binding (bindings made before decision 0401)
SCHEME_DEVICE = "7"
SCHEME_MINTED = "8"
DEVICE_SCHEMES = (SCHEME_DEVICE_KEYED, SCHEME_DEVICE)
SCHEMES = (SCHEME_DEVICE_KEYED, SCHEME_DEVICE, SCHEME_MINTED)
STEP_MODULUS = 1000
MAX_COUNTER = 9
MAC_DIGITS = 6
# steps on either side of the server's own step that still count (phone clocks drift)
CLOCK_WINDOW = 1
SECRET_BYTES = 32


def luhn_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits`` (python-stdnum's, the one Luhn we use;
    bank card numbers are checked with the same module)."""
    return luhn.calc_check_digit(digits)


def time_step(unix_seconds: float, step_seconds: int) -> int:
    return int(unix_seconds // step_seconds)


def derive_device_secret(master_key: bytes, device_id: int, salt: bytes) -> bytes:
    """A scheme-7 phone's secret for one binding: never stored, recomputed from the master key
    and the binding's salt."""
    info = f"cc-paycode-device:v1:{device_id}:".encode() + salt
    return hmac.new(master_key, info, hashlib.sha256).digest()


def derive_keyed_secret(master_key: bytes, school_id: int, token: str, step_seconds: int) -> bytes:
    """A scheme-6 phone's secret: never stored, recomputed from the master key and what every
    code of the binding carries or the platform knows (the token is never given to another
    binding). The step length is part of it, so a code checked with another step length than
    the binding's does not check out."""
    info = f"cc-paycode-device:v2:{school_id}:{token}:{step_seconds}".encode()
    return hmac.new(master_key, info, hashlib.sha256).digest()


def binding_secret(
    master_key: bytes,
    school_id: int,
    device_id: int,
    token: str,
    salt: bytes | None,
    step_seconds: int,
) -> bytes:
    """A bound phone's secret from its binding's row: salted (scheme 7, bound before decision
    0401) or, without a salt, keyed by its token (scheme 6)."""
    if salt is None:
        return derive_keyed_secret(master_key, school_id, token, step_seconds)
    return derive_device_secret(master_key, device_id, salt)


def mac_digits(
    secret: bytes, token: str, step: int, counter: int, scheme: str = SCHEME_DEVICE
) -> str:
    """The truncated HMAC of (scheme, token, step, counter), as MAC_DIGITS decimal digits."""
    version = "v2" if scheme == SCHEME_DEVICE_KEYED else "v1"
    message = f"cc-paycode:{version}:{token}:{step}:{counter}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**MAC_DIGITS).zfill(MAC_DIGITS)


def _finish(body: str) -> str:
    return body + luhn_digit(body)


def generate(
    secret: bytes, token: str, step: int, counter: int = 0, scheme: str = SCHEME_DEVICE
) -> str:
    """The device code for ``step`` (and ``counter`` within it), of the binding's ``scheme``."""
    if scheme not in DEVICE_SCHEMES:
        raise ValidationFailed("scheme must be a phone's (6 or 7)", field="scheme")
    check_token(token)
    if not 0 <= counter <= MAX_COUNTER:
        raise ValidationFailed(f"counter must be 0..{MAX_COUNTER}", field="counter")
    if step < 0:
        raise ValidationFailed("time step must not be negative", field="step")
    mac = mac_digits(secret, token, step, counter, scheme)
    payload = f"{step % STEP_MODULUS:03d}{counter}{mac}"
    return _finish(scheme + token + payload)


def minted(token: str, verification: str) -> str:
    """A server-minted code (scheme 8) from its token and 10-digit verification code."""
    check_token(token)
    if len(verification) != PAYLOAD_DIGITS or not verification.isdigit():
        raise ValidationFailed("verification code must be 10 digits", field="verification")
    return _finish(SCHEME_MINTED + token + verification)


def check_token(token: str) -> None:
    if len(token) != TOKEN_DIGITS or not token.isascii() or not token.isdigit():
        raise ValidationFailed(f"account token must be {TOKEN_DIGITS} digits", field="token")


@dataclass(frozen=True)
class ParsedCode:
    scheme: str
    token: str
    payload: str

    @property
    def step_low(self) -> int:
        return int(self.payload[:3])

    @property
    def counter(self) -> int:
        return int(self.payload[3])

    @property
    def mac(self) -> str:
        return self.payload[4:]


def parse(code: object, field: str = "code") -> ParsedCode:
    """Split a scanned code; refuses anything that is not a well-formed payment code."""
    if not isinstance(code, str):
        raise ValidationFailed("payment code must be a string of digits", field=field)
    text = code.strip()
    if len(text) != CODE_LENGTH or not text.isascii() or not text.isdigit():
        raise ValidationFailed(
            f"payment code must be {CODE_LENGTH} digits", field=field, code="PAYCODE_MALFORMED"
        )
    if text[0] not in SCHEMES:
        raise ValidationFailed(
            "this is not a campus payment code", field=field, code="PAYCODE_MALFORMED"
        )
    if luhn_digit(text[:-1]) != text[-1]:
        raise ValidationFailed(
            "payment code check digit is wrong (mistyped or misread); scan again",
            field=field,
            code="PAYCODE_MALFORMED",
        )
    return ParsedCode(
        scheme=text[0],
        token=text[1 : 1 + TOKEN_DIGITS],
        payload=text[1 + TOKEN_DIGITS : 1 + TOKEN_DIGITS + PAYLOAD_DIGITS],
    )


def candidate_steps(step_low: int, now_step: int, window: int = CLOCK_WINDOW) -> list[int]:
    """Full steps within ``window`` of ``now_step`` whose low digits are ``step_low``."""
    return [
        s
        for s in range(now_step - window, now_step + window + 1)
        if s >= 0 and s % STEP_MODULUS == step_low
    ]


def steps_behind(step_low: int, now_step: int) -> int:
    """How many steps ago the newest step with these low digits was (0..999)."""
    return (now_step - step_low) % STEP_MODULUS


def verify_device_code(
    secret: bytes, parsed: ParsedCode, now_step: int, window: int = CLOCK_WINDOW
) -> int | None:
    """The step the code was made for, if its HMAC matches within the window; else None."""
    if parsed.scheme not in DEVICE_SCHEMES:
        return None
    for step in candidate_steps(parsed.step_low, now_step, window):
        expected = mac_digits(secret, parsed.token, step, parsed.counter, parsed.scheme)
        if hmac.compare_digest(expected, parsed.mac):
            return step
    return None
