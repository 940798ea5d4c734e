"""Message catalogs and choosing the language.

The catalogs are Babel's: ``web/locale/<locale>/LC_MESSAGES/messages.po``, one message per
key (the key is the message id, e.g. ``m.topup``; docs/web-pages.md says how to add one).
Plural messages follow CLDR's rules for the locale (Chinese has one form, English two), read
through ``babel.support.Translations``. ``make i18n`` extracts the keys used in the templates
and the Python code with Babel and adds new ones to both catalogs; the unit tests fail on a
key used but not translated.

The language is, in order: the ``cc_lang`` cookie (the switch on every page), the browser's
Accept-Language (any Chinese variant means zh-CN), then zh-CN.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_skeleton
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
LANG_COOKIE = "cc_lang"
LOCALE_DIR = Path(__file__).parent / "locale"
BABEL_LOCALES = {"zh-CN": "zh_CN", "en": "en"}  # our tags -> Babel's (the folder names)

Translator = Callable[..., str]


def catalog_path(locale: str) -> Path:
    return LOCALE_DIR / BABEL_LOCALES[locale] / "LC_MESSAGES" / "messages.po"


def read_catalog(locale: str) -> Catalog:
    """The PO catalog of ``locale`` as Babel reads it."""
    with catalog_path(locale).open("rb") as po:
        return read_po(po, locale=BABEL_LOCALES[locale])


@dataclass(frozen=True)
class _Loaded:
    texts: dict[str, str]  # key -> text (a plural message: its first form)
    translations: Translations  # gettext/ngettext with the locale's plural rule


@lru_cache(maxsize=len(LOCALES))
def _loaded(locale: str) -> _Loaded:
    po = read_catalog(locale)
    texts: dict[str, str] = {}
    for message in po:
        if not message.id:
            continue  # the header
        key = message.id[0] if isinstance(message.id, tuple | list) else message.id
        text = message.string[0] if isinstance(message.string, tuple | list) else message.string
        texts[str(key)] = str(text)
    compiled = io.BytesIO()
    write_mo(compiled, po)
    compiled.seek(0)
    return _Loaded(texts, Translations(compiled))


def catalog(locale: str) -> dict[str, str]:
    """Every key of ``locale`` with its text."""
    return _loaded(locale).texts


def translate(locale: str, key: str, **params: Any) -> str:
    """The text for ``key``; a missing key falls back to zh-CN, then to its last part (so a
    value-derived key such as ``tx.kind.<new kind>`` shows the raw value; the catalog test
    keeps literal keys from going missing)."""
    text = catalog(locale).get(key) or catalog(DEFAULT_LOCALE).get(key) or key.rsplit(".", 1)[-1]
    return text.format(**params) if params else text


def translate_plural(locale: str, key: str, count: int, **params: Any) -> str:
    """The form of the plural message ``key`` that CLDR's rule of ``locale`` picks for
    ``count`` ("1 day", "2 days"; Chinese has one form), formatted with ``params``."""
    for tag in (locale, DEFAULT_LOCALE):
        text = _loaded(tag).translations.ngettext(key, key, count)
        if text != key:
            return text.format(**params)
    return translate(locale, key, **params)


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


def format_day(locale: str, day: date, skeleton: str = "MMMEd") -> str:
    """A date as the locale writes it (CLDR): ``MMMEd`` 12月3日周四 / Thu, Dec 3; ``Md`` 12/3;
    ``yMMM`` 2026年12月 / Dec 2026."""
    return format_skeleton(skeleton, day, locale=BABEL_LOCALES[locale])


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
