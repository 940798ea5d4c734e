"""Message catalogs and language choice (no database)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from campuscard.web import charts, i18n
from campuscard.web.core import TEMPLATE_DIR, safe_next

LITERAL_KEY = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.]+)["']\s*[,)]""")
SRC = Path(i18n.__file__).parent


def test_catalogs_have_the_same_keys_and_no_empty_text() -> None:
    zh, en = i18n.catalog("zh-CN"), i18n.catalog("en")
    assert set(zh) == set(en), set(zh) ^ set(en)
    assert all(v.strip() for v in [*zh.values(), *en.values()])


def test_no_catalog_defines_a_key_twice() -> None:
    """A key written twice (easy when two changes add it at the end) silently keeps the last."""
    for path in sorted((SRC / "i18n").glob("*.json")):
        seen: list[str] = []

        def pairs(items: list[tuple[str, object]], seen: list[str] = seen) -> dict[str, object]:
            seen.extend(key for key, _ in items)
            return dict(items)

        json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs)
        twice = sorted({key for key in seen if seen.count(key) > 1})
        assert not twice, f"{path.name} defines {twice} more than once"


def test_every_literal_key_used_in_templates_and_code_exists() -> None:
    zh = i18n.catalog("zh-CN")
    used: set[str] = set()
    for path in [*TEMPLATE_DIR.rglob("*.html"), *SRC.rglob("*.py")]:
        used |= set(LITERAL_KEY.findall(path.read_text("utf-8")))
    for path in SRC.rglob("*.py"):
        used |= set(re.findall(r'menu\.add\(\s*"[a-z]+",\s*"([a-z0-9_.]+)"', path.read_text()))
    missing = sorted(k for k in used if k not in zh)
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
