"""The payment-code algorithm: layout, check digit, clock window, and the two barcode images
(QR via segno, Code 128 via our encoder) decoded back by zxing-cpp."""

from __future__ import annotations

import hashlib
import io

import pytest
import segno
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from campuscard.payments import code128, code_rules
from campuscard.platform.errors import ValidationFailed

SECRET = bytes(range(32))
TOKEN = "04211337"


def test_layout_scheme_token_step_counter_mac_and_check_digit() -> None:
    code = code_rules.generate(SECRET, TOKEN, 29_833_123, counter=4)
    assert len(code) == 20 and code.isdigit()
    parsed = code_rules.parse(code)
    assert parsed.scheme == "7"
    assert parsed.token == TOKEN
    assert parsed.step_low == 123
    assert parsed.counter == 4
    assert parsed.mac == code_rules.mac_digits(SECRET, TOKEN, 29_833_123, 4)
    assert code[-1] == code_rules.luhn_digit(code[:-1])


def test_known_answer_from_a_hand_built_hmac() -> None:
    # HMAC built by hand (RFC 2104) and truncated as RFC 4226 §5.3, independent of hmac.new;
    # the literal pins the algorithm: changing it would break every phone already bound
    message = f"cc-paycode:v1:{TOKEN}:29833123:4".encode()
    key = SECRET.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key) + message).digest()
    digest = hashlib.sha256(bytes(k ^ 0x5C for k in key) + inner).digest()
    offset = digest[31] & 0x0F
    mac = (int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF) % 1_000_000
    body = f"7{TOKEN}1234{mac:06d}"
    assert code_rules.generate(SECRET, TOKEN, 29_833_123, 4) == body + code_rules.luhn_digit(body)
    assert code_rules.generate(SECRET, TOKEN, 29_833_123, 4) == "70421133712345054939"


def test_luhn_catches_every_single_digit_change() -> None:
    code = code_rules.generate(SECRET, TOKEN, 12345, 0)
    for i in range(len(code)):
        for d in "0123456789":
            if d != code[i]:
                changed = code[:i] + d + code[i + 1 :]
                with pytest.raises(ValidationFailed):
                    code_rules.parse(changed)


def test_codes_change_every_step_and_with_the_counter() -> None:
    codes = {code_rules.generate(SECRET, TOKEN, s, c) for s in range(100, 110) for c in range(10)}
    assert len(codes) == 100


def test_clock_window_is_one_step_either_side() -> None:
    now = 5_000
    for skew in (-1, 0, 1):
        parsed = code_rules.parse(code_rules.generate(SECRET, TOKEN, now + skew))
        assert code_rules.verify_device_code(SECRET, parsed, now) == now + skew
    for skew in (-2, 2, -1000):
        parsed = code_rules.parse(code_rules.generate(SECRET, TOKEN, now + skew))
        assert code_rules.verify_device_code(SECRET, parsed, now) is None


def test_wrong_secret_does_not_verify() -> None:
    parsed = code_rules.parse(code_rules.generate(SECRET, TOKEN, 777))
    assert code_rules.verify_device_code(b"x" * 32, parsed, 777) is None


def test_device_secret_depends_on_master_key_binding_and_salt() -> None:
    a = code_rules.derive_device_secret(b"master", 1, b"s" * 16)
    assert len(a) == 32
    assert a != code_rules.derive_device_secret(b"master2", 1, b"s" * 16)
    assert a != code_rules.derive_device_secret(b"master", 2, b"s" * 16)
    assert a != code_rules.derive_device_secret(b"master", 1, b"t" * 16)


def _swap_scheme(parsed: code_rules.ParsedCode) -> str:
    body = ("7" if parsed.scheme == "6" else "6") + parsed.token + parsed.payload
    return body + code_rules.luhn_digit(body)


def test_keyed_secret_depends_on_master_key_school_token_and_step_length() -> None:
    a = code_rules.derive_keyed_secret(b"master", 1, TOKEN, 60)
    assert len(a) == 32
    assert a != code_rules.derive_keyed_secret(b"master2", 1, TOKEN, 60)
    assert a != code_rules.derive_keyed_secret(b"master", 2, TOKEN, 60)
    assert a != code_rules.derive_keyed_secret(b"master", 1, "87654321", 60)
    assert a != code_rules.derive_keyed_secret(b"master", 1, TOKEN, 30)
    assert a != code_rules.derive_device_secret(b"master", 1, b"s" * 16)
    # a binding's row names which: no salt, keyed by the token; a salt, salted
    assert code_rules.binding_secret(b"master", 1, 9, TOKEN, None, 60) == a
    assert code_rules.binding_secret(
        b"master", 1, 9, TOKEN, b"s" * 16, 60
    ) == code_rules.derive_device_secret(b"master", 9, b"s" * 16)


def test_a_phones_code_names_its_scheme_and_both_verify_alike() -> None:
    keyed = code_rules.parse(code_rules.generate(SECRET, TOKEN, 777, 3, "6"))
    salted = code_rules.parse(code_rules.generate(SECRET, TOKEN, 777, 3))
    assert (keyed.scheme, salted.scheme) == ("6", "7")
    assert code_rules.verify_device_code(SECRET, keyed, 777) == 777
    assert code_rules.verify_device_code(SECRET, salted, 777) == 777
    # the HMAC covers the scheme: the same step and counter give another code, and a code
    # whose first digit was changed does not check out
    assert keyed.mac != salted.mac
    swapped = code_rules.parse(_swap_scheme(keyed))
    assert code_rules.verify_device_code(SECRET, swapped, 777) is None
    with pytest.raises(ValidationFailed) as err:
        code_rules.generate(SECRET, TOKEN, 777, 0, "8")
    assert err.value.field == "scheme"


@pytest.mark.parametrize(
    ("token", "counter", "field"),
    [
        ("1234567", 0, "token"),
        ("1234567a", 0, "token"),
        (TOKEN, 10, "counter"),
        (TOKEN, -1, "counter"),
    ],
)
def test_generate_refuses_bad_arguments(token: str, counter: int, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        code_rules.generate(SECRET, token, 1, counter)
    assert info.value.field == field


def test_minted_layout() -> None:
    code = code_rules.minted(TOKEN, "0123456789")
    parsed = code_rules.parse(code)
    assert (parsed.scheme, parsed.token, parsed.payload) == ("8", TOKEN, "0123456789")


def _png_of_code128(text: str, scale: int = 3) -> Image.Image:
    widths = code128.modules(text)
    quiet = code128.QUIET_ZONE
    img = Image.new("L", ((sum(widths) + 2 * quiet) * scale, 80), 255)
    draw = ImageDraw.Draw(img)
    x = quiet * scale
    for i, w in enumerate(widths):
        if i % 2 == 0:
            draw.rectangle([x, 0, x + w * scale - 1, 79], fill=0)
        x += w * scale
    return img


@settings(max_examples=25, deadline=None)
@given(
    step=st.integers(0, 10**8),
    counter=st.integers(0, 9),
    secret=st.binary(min_size=32, max_size=32),
)
def test_qr_and_code128_images_decode_back_to_the_code(
    step: int, counter: int, secret: bytes
) -> None:
    code = code_rules.generate(secret, TOKEN, step, counter)
    buf = io.BytesIO()
    segno.make(code, error="m", micro=False).save(buf, kind="png", scale=6, border=4)
    buf.seek(0)
    qr = zxingcpp.read_barcodes(Image.open(buf))
    assert [(b.text, b.format) for b in qr] == [(code, zxingcpp.BarcodeFormat.QRCode)]
    bars = zxingcpp.read_barcodes(_png_of_code128(code))
    assert [(b.text, b.format) for b in bars] == [(code, zxingcpp.BarcodeFormat.Code128)]


@pytest.mark.parametrize("text", ["CampusCard-42", "0123456789", "12345"])
def test_code128_set_b_and_odd_digits_decode_too(text: str) -> None:
    bars = zxingcpp.read_barcodes(_png_of_code128(text))
    assert [b.text for b in bars] == [text]


def test_code128_svg_draws_one_rect_per_bar() -> None:
    code = code_rules.generate(SECRET, TOKEN, 1, 0)
    svg = code128.svg(code)
    bars = len(code128.modules(code)) // 2 + 1
    assert svg.count("<rect") == bars + 1  # plus the white background
    assert svg.startswith("<svg") and f'aria-label="{code}"' in svg


@pytest.mark.parametrize("bad", ["", "é", "\n"])
def test_code128_refuses_what_it_cannot_encode(bad: str) -> None:
    with pytest.raises(ValidationFailed):
        code128.symbols(bad)
