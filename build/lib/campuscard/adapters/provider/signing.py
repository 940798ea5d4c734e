"""Request and callback signatures, WeChat-Pay-v2 style with HMAC-SHA256.

The string to sign is every non-empty parameter except ``sign`` sorted by name as
``k1=v1&k2=v2`` followed by ``&key=<merchant key>``; the signature is the upper-case hex
HMAC-SHA256 of it keyed with the merchant key. Values are sent as strings (amounts in fen).
See docs/decisions/0030-provider-signing-hmac.md.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def string_to_sign(params: Mapping[str, object], key: str) -> str:
    parts = [
        f"{k}={params[k]}"
        for k in sorted(params)
        if k != "sign" and params[k] is not None and str(params[k]) != ""
    ]
    return "&".join([*parts, f"key={key}"])


def sign(params: Mapping[str, object], key: str) -> str:
    text = string_to_sign(params, key)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def signed(params: Mapping[str, object], key: str) -> dict[str, str]:
    """The parameters as strings, with their ``sign`` added."""
    out = {k: str(v) for k, v in params.items() if v is not None and k != "sign"}
    out["sign"] = sign(out, key)
    return out


def verify(params: Mapping[str, object], key: str) -> bool:
    given = params.get("sign")
    if not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given, sign(params, key))
