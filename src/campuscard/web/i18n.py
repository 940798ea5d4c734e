"""Message catalogs (web/i18n/<locale>.json, one key per string) and choosing the language.

The language is, in order: the ``cc_lang`` cookie (the switch on every page), the browser's
Accept-Language (any Chinese variant means zh-CN), then zh-CN.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
LANG_COOKIE = "cc_lang"
CATALOG_DIR = Path(__file__).parent / "i18n"

Translator = Callable[..., str]


@lru_cache(maxsize=len(LOCALES))
def catalog(locale: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((CATALOG_DIR / f"{locale}.json").read_text("utf-8"))
    return data


def translate(locale: str, key: str, **params: Any) -> str:
    """The text for ``key``; a missing key falls back to zh-CN, then to its last part (so a
    value-derived key such as ``tx.kind.<new kind>`` shows the raw value; the catalog test
    keeps literal keys from going missing)."""
    text = catalog(locale).get(key) or catalog(DEFAULT_LOCALE).get(key) or key.rsplit(".", 1)[-1]
    return text.format(**params) if params else text


def error_text(locale: str, code: str | None, message: str, field: str | None = None) -> str:
    """A server refusal in the page's language. An English page shows the server's own
    (English) message; any other finds the text by CODE: ``err.<CODE>`` (with the field's
    label when the text names one), else a general sentence naming the field. Never the raw
    code, never English on a Chinese page."""
    if locale == "en" and message:  # the server speaks English, and says the most
        return message
    texts = catalog(locale)
    label = texts.get(f"field.{field}", "") if field else ""
    if code and f"err.{code}" in texts:
        if "{field}" in texts[f"err.{code}"]:
            if label:
                return texts[f"err.{code}"].format(field=label)
        else:
            return texts[f"err.{code}"]
    if label:
        return texts["err.field_generic"].format(field=label)
    return texts["err.generic"]


def translator(locale: str) -> Translator:
    def t(key: str, **params: Any) -> str:
        return translate(locale, key, **params)

    return t


def from_accept_language(header: str) -> str | None:
    """The first supported language in an Accept-Language header, honouring q-values."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower()))
    for neg_quality, _, tag in sorted(ranked):
        if neg_quality >= 0:
            continue
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return None


def choose_locale(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LOCALES:
        return str(cookie)
    return from_accept_language(accept_language or "") or DEFAULT_LOCALE
