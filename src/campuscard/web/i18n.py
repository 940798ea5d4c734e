"""Message catalogs and choosing the language.

The catalogs are Babel's: ``web/locale/<locale>/LC_MESSAGES/messages.po``, one message per
key (the key is the message id, e.g. ``m.topup``; docs/web-pages.md says how to add one),
read by ``platform/i18n.py`` (which also words notifications and formats money and dates per
locale; this module re-exports it for the pages). Plural messages follow CLDR's rules for the
locale (Chinese has one form, English two). ``make i18n`` extracts the keys used in the
templates and the Python code with Babel; the unit tests fail on a key used but not
translated.

The language is, in order: the ``cc_lang`` cookie (the switch on every page), the browser's
Accept-Language (any Chinese variant means zh-CN), then zh-CN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from campuscard.platform.i18n import (
    BABEL_LOCALES,
    DEFAULT_LOCALE,
    LOCALE_DIR,
    LOCALES,
    catalog,
    catalog_path,
    format_day,
    format_money,
    read_catalog,
    translate,
    translate_plural,
    word,
)

__all__ = [
    "BABEL_LOCALES",
    "DEFAULT_LOCALE",
    "LANG_COOKIE",
    "LOCALES",
    "LOCALE_DIR",
    "catalog",
    "catalog_path",
    "choose_locale",
    "error_text",
    "format_day",
    "format_money",
    "read_catalog",
    "translate",
    "translate_plural",
    "translator",
    "word",
]

LANG_COOKIE = "cc_lang"

Translator = Callable[..., str]


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


def plural_translator(locale: str) -> Callable[..., str]:
    def tn(key: str, count: int, **params: Any) -> str:
        return translate_plural(locale, key, count, **params)

    return tn


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
