"""Message catalogs and language choice (no database)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from campuscard.web import charts, i18n
from campuscard.web.core import safe_next

SRC = Path(i18n.__file__).parents[1]  # src/campuscard
KEYWORDS = {
    "t": None,
    "tn": (1,),
    "message": None,
}  # t("key", …), tn("key", n, …), message("key", …)
METHODS = [  # as babel.cfg
    ("**.py", "python"),
    ("web/templates/**.html", "jinja2"),
    ("documents/templates/**.html", "jinja2"),
]


def test_catalogs_have_the_same_keys_and_no_empty_text() -> None:
    zh, en = i18n.catalog("zh-CN"), i18n.catalog("en")
    assert set(zh) == set(en), set(zh) ^ set(en)
    assert all(v.strip() for v in [*zh.values(), *en.values()])


def test_plural_messages_have_every_form_their_language_needs() -> None:
    # CLDR: Chinese has one plural form, English two (one, other)
    for locale, forms in (("zh-CN", 1), ("en", 2)):
        po = i18n.read_catalog(locale)
        assert po.num_plurals == forms
        plurals = [m for m in po if m.id and m.pluralizable]
        assert plurals, "the catalogs have plural messages"
        for message in plurals:
            assert len(message.string) == forms and all(f.strip() for f in message.string)
    assert i18n.translate_plural("en", "bill.overdue_days", 1, days=1) == "1 day overdue"
    assert i18n.translate_plural("en", "bill.overdue_days", 3, days=3) == "3 days overdue"
    assert i18n.translate_plural("zh-CN", "bill.overdue_days", 1, days=1) == "已逾期 1 天"


def test_no_catalog_defines_a_key_twice() -> None:
    """A key written twice (easy when two changes add it at the end) silently keeps one."""
    for locale in i18n.LOCALES:
        path = i18n.catalog_path(locale)
        ids = re.findall(r'^msgid "(.+)"$', path.read_text(encoding="utf-8"), flags=re.M)
        twice = sorted({key for key in ids if ids.count(key) > 1})
        assert not twice, f"{path} defines {twice} more than once"


def test_every_literal_key_used_in_templates_and_code_exists() -> None:
    """Babel extracts the keys the code and the templates use (as ``make i18n`` does); each
    is in the catalogs."""
    extracted = extract_from_dir(SRC, METHODS, keywords=KEYWORDS)
    used = {key for _, _, key, _, _ in extracted if key}
    assert len(used) > 500  # the extraction sees the templates and the code
    for path in (SRC / "web").rglob("*.py"):
        used |= set(re.findall(r'menu\.add\(\s*"[a-z]+",\s*"([a-z0-9_.]+)"', path.read_text()))
    zh = i18n.catalog("zh-CN")
    missing = sorted(str(k) for k in used if k not in zh)
    assert not missing, missing


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("en-US,en;q=0.9,zh;q=0.8", "en"),
        ("fr-FR,en;q=0.5,zh;q=0.9", "zh-CN"),
        ("fr-FR", None),
        ("", None),
        ("en;q=abc,zh", "zh-CN"),
    ],
)
def test_accept_language(header: str, expected: str | None) -> None:
    assert i18n.from_accept_language(header) == expected


def test_cookie_beats_browser_and_default_is_chinese() -> None:
    assert i18n.choose_locale("en", "zh-CN") == "en"
    assert i18n.choose_locale("xx", "en") == "en"
    assert i18n.choose_locale(None, "fr") == "zh-CN"


def test_a_new_value_key_shows_its_value_not_the_key() -> None:
    assert i18n.translate("en", "tx.kind.payment") == "Payment"
    assert i18n.translate("en", "tx.kind.water_meter") == "water_meter"


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/m/", "/m/"), ("https://x.example", "/"), ("//x.example", "/"), ("/\\x", "/"), ("", "/")],
)
def test_only_same_site_redirects(target: str, expected: str) -> None:
    assert safe_next(target) == expected


def test_chart_escapes_labels_and_scales_to_a_round_axis() -> None:
    svg = charts.bar_chart(["<b>"], [charts.Series("x", [12345])], title="t & u")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "t &amp; u" in svg
    assert ">200.00<" in svg  # 123.45 yuan rounds the axis up to 200
