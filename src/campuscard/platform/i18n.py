"""Texts in the reader's language: the message catalogs, money and dates per locale, and
messages kept as a key with parameters until someone reads them.

The catalogs are Babel's PO files in ``web/locale/<locale>/LC_MESSAGES/messages.po`` (decision
0251); this module reads them so that code below the pages (a notification, an SMS) words a
text the same way a page does. ``web/i18n.py`` adds what only pages need (choosing the
language of a request, refusals).

A notification is stored as a message, ``{"key": "notice.topup.body", "params": {...}}``, and
worded when it is shown or sent, in the language of whoever reads it (``word``). A parameter
is plain text or a number, or one of: ``money(fen)`` (formatted per locale), ``day(d)`` (a date
per locale), another message (worded in the same language, e.g. a card state's name), or a
list of these (joined as the locale lists things: 甲和乙 / a and b).
Rows written before messages were keys hold a text per language, ``{"zh-CN": …, "en": …}``;
``word`` reads those too.
"""

from __future__ import annotations

import io
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_skeleton
from babel.lists import format_list
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import Translations

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
BABEL_LOCALES = {"zh-CN": "zh_CN", "en": "en"}  # our tags -> Babel's (the folder names)
# the catalogs sit with the pages that use most of them; the path is the translators' habit
LOCALE_DIR = Path(__file__).parents[1] / "web" / "locale"
CURRENCY = "CNY"


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


def words(key: str) -> dict[str, str]:
    """The text of ``key`` in every language, ``{"zh-CN": …, "en": …}``: for a label a page
    picks by its own language and the API gives in both."""
    return {locale: translate(locale, key) for locale in LOCALES}


def translate_plural(locale: str, key: str, count: int, **params: Any) -> str:
    """The form of the plural message ``key`` that CLDR's rule of ``locale`` picks for
    ``count`` ("1 day", "2 days"; Chinese has one form), formatted with ``params``."""
    for tag in (locale, DEFAULT_LOCALE):
        text = _loaded(tag).translations.ngettext(key, key, count)
        if text != key:
            return text.format(**params)
    return translate(locale, key, **params)


def placeholders(text: str) -> set[str]:
    """The names a catalog text expects (``{amount}`` -> ``amount``)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


# ---- money and dates ----------------------------------------------------------------------


def format_money(locale: str, fen: int, *, whole: bool = False) -> str:
    """An amount of fen as the locale writes yuan (CLDR through Babel): zh-CN ``¥1,234.50``,
    en ``CN¥1,234.50``; negative ``-¥0.05``. Exact to the fen (no float on the way).
    ``whole``: a round amount without its fen (``¥50``, for a button's quick amount)."""
    amount = Decimal(int(fen)).scaleb(-2)
    if whole and int(fen) % 100 == 0:
        return format_currency(
            amount, CURRENCY, format="¤#,##0", currency_digits=False, locale=BABEL_LOCALES[locale]
        )
    return format_currency(amount, CURRENCY, locale=BABEL_LOCALES[locale])


def format_day(locale: str, day: date, skeleton: str = "MMMEd") -> str:
    """A date as the locale writes it (CLDR): ``MMMEd`` 12月3日周四 / Thu, Dec 3; ``Md`` 12/3;
    ``yMMM`` 2026年12月 / Dec 2026."""
    return format_skeleton(skeleton, day, locale=BABEL_LOCALES[locale])


def format_long_day(locale: str, day: date) -> str:
    """A date with its year: 2026年12月3日 / December 3, 2026."""
    return format_date(day, "long", locale=BABEL_LOCALES[locale])


# ---- messages kept as key + parameters ----------------------------------------------------


def message(key: str, **params: Any) -> dict[str, Any]:
    """A text to word later, in the reader's language: a catalog key and its parameters
    (JSON-ready: store it as is)."""
    return {"key": key, "params": params}


def money(fen: int) -> dict[str, int]:
    """A money parameter of a message: worded per locale (``format_money``)."""
    return {"fen": int(fen)}


def day(value: date) -> dict[str, str]:
    """A date parameter of a message: worded per locale (``format_long_day``)."""
    return {"date": value.isoformat()}


def refusal(code: str | None) -> dict[str, Any]:
    """A refusal as a message parameter: its ``err.<CODE>`` text, else the general one
    (the English server message is for developers and devices, decision 0150)."""
    key = f"err.{code}"
    return message(key if code and key in catalog(DEFAULT_LOCALE) else "err.generic")


def _param(locale: str, value: Any) -> Any:
    if isinstance(value, list):
        return format_list([str(_param(locale, v)) for v in value], locale=BABEL_LOCALES[locale])
    if isinstance(value, Mapping):
        if "key" in value:
            return word(locale, value)
        if "fen" in value:
            return format_money(locale, int(value["fen"]))
        if "date" in value:
            return format_long_day(locale, date.fromisoformat(str(value["date"])))
    return value


class _Blank(dict[str, Any]):
    def __missing__(self, name: str) -> str:
        return ""


def word(locale: str, stored: Mapping[str, Any] | str | None) -> str:
    """A stored message in ``locale``: a key with parameters is worded from the catalog; a
    text per language (rows written before messages were keys) gives that language's text,
    else the Chinese one."""
    if stored is None:
        return ""
    if isinstance(stored, str):
        return stored
    if "key" in stored:
        params = {name: _param(locale, v) for name, v in (stored.get("params") or {}).items()}
        # a row stored before its text gained a parameter words the missing one as blank
        return translate(locale, str(stored["key"])).format_map(_Blank(params))
    text = stored.get(locale) or stored.get(DEFAULT_LOCALE)
    if text is None:
        text = next(iter(stored.values()), "")
    return str(text)
