"""Code 128 barcodes, so laser scanners at older tills read the payment code too. Pure.

Digits-only text of even length is encoded in code set C (two digits per symbol, the densest);
anything else printable ASCII in code set B. ``modules`` gives the bar/space widths; ``svg``
draws them. The phone page draws the same symbols with ``web/static/js/paycode.js``.
"""

from __future__ import annotations

from campuscard.platform.errors import ValidationFailed

# Bar/space widths of each symbol value (6 elements, 11 modules; the stop symbol has 7/13).
PATTERNS = [
    "212222",
    "222122",
    "222221",
    "121223",
    "121322",
    "131222",
    "122213",
    "122312",
    "132212",
    "221213",
    "221312",
    "231212",
    "112232",
    "122132",
    "122231",
    "113222",
    "123122",
    "123221",
    "223211",
    "221132",
    "221231",
    "213212",
    "223112",
    "312131",
    "311222",
    "321122",
    "321221",
    "312212",
    "322112",
    "322211",
    "212123",
    "212321",
    "232121",
    "111323",
    "131123",
    "131321",
    "112313",
    "132113",
    "132311",
    "211313",
    "231113",
    "231311",
    "112133",
    "112331",
    "132131",
    "113123",
    "113321",
    "133121",
    "313121",
    "211331",
    "231131",
    "213113",
    "213311",
    "213131",
    "311123",
    "311321",
    "331121",
    "312113",
    "312311",
    "332111",
    "314111",
    "221411",
    "431111",
    "111224",
    "111422",
    "121124",
    "121421",
    "141122",
    "141221",
    "112214",
    "112412",
    "122114",
    "122411",
    "142112",
    "142211",
    "241211",
    "221114",
    "413111",
    "241112",
    "134111",
    "111242",
    "121142",
    "121241",
    "114212",
    "124112",
    "124211",
    "411212",
    "421112",
    "421211",
    "212141",
    "214121",
    "412121",
    "111143",
    "111341",
    "131141",
    "114113",
    "114311",
    "411113",
    "411311",
    "113141",
    "114131",
    "311141",
    "411131",
    "211412",
    "211214",
    "211232",
    "2331112",
]
START_B = 104
START_C = 105
STOP = 106
QUIET_ZONE = 10  # modules of white on each side, as the standard asks


def symbols(text: str) -> list[int]:
    """Symbol values for ``text``: start, data, check symbol, stop."""
    if not text:
        raise ValidationFailed("nothing to encode", field="text")
    if text.isascii() and text.isdigit() and len(text) % 2 == 0:
        data = [int(text[i : i + 2]) for i in range(0, len(text), 2)]
        start = START_C
    elif all(32 <= ord(ch) <= 126 for ch in text):
        data = [ord(ch) - 32 for ch in text]
        start = START_B
    else:
        raise ValidationFailed("Code 128 here takes printable ASCII only", field="text")
    check = (start + sum(i * v for i, v in enumerate(data, start=1))) % 103
    return [start, *data, check, STOP]


def modules(text: str) -> list[int]:
    """Alternating bar/space widths (starting with a bar), without the quiet zones."""
    return [int(w) for value in symbols(text) for w in PATTERNS[value]]


def svg(text: str, *, module_px: int = 2, height_px: int = 80) -> str:
    """A standalone SVG image of the barcode (black bars on white, with quiet zones)."""
    widths = modules(text)
    total = sum(widths) + 2 * QUIET_ZONE
    x = QUIET_ZONE
    rects = []
    for i, w in enumerate(widths):
        if i % 2 == 0:
            rects.append(f'<rect x="{x}" y="0" width="{w}" height="{height_px}"/>')
        x += w
    width_px = total * module_px
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_px}" height="{height_px}" '
        f'viewBox="0 0 {total} {height_px}" preserveAspectRatio="none" role="img" '
        f'aria-label="{text}" shape-rendering="crispEdges">'
        f'<rect width="{total}" height="{height_px}" fill="#fff"/>'
        f'<g fill="#000">{"".join(rects)}</g></svg>'
    )
