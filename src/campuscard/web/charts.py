"""Charts drawn on the server as SVG: no JavaScript, readable by screen readers (each bar has
a <title>, and pages show the same numbers in a table next to the chart)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from campuscard.ledger.money import fmt

PALETTE = ("#1f6feb", "#2da44e", "#bf8700", "#cf222e", "#8250df", "#57606a")


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[int]  # fen


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 640,
    height: int = 220,
    font: int = 13,
) -> Markup:
    """Grouped bars of money amounts (fen), one group per label. ``width`` is the drawing's own
    width: draw a phone chart about as wide as the phone (360) so its ``font``-sized labels
    stay readable once scaled to the screen (the CSS caps how far charts grow)."""
    pad_left, pad_bottom, pad_top = 8 + font * 5, 14 + font, 12
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    top = max([v for s in series for v in s.values] + [0])
    top = _nice(top)
    groups = max(len(labels), 1)
    group_w = plot_w / groups
    bar_w = max(min(group_w * 0.8 / max(len(series), 1), 48), 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        value = top * i // 4
        y = pad_top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{pad_left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="{font}" '
            f'fill="#57606a">{fmt(value)}</text>'
        )
    for g, label in enumerate(labels):
        x0 = pad_left + g * group_w + (group_w - bar_w * len(series)) / 2
        for s_index, s in enumerate(series):
            value = s.values[g] if g < len(s.values) else 0
            h = plot_h * value / top if top else 0
            x = x0 + s_index * bar_w
            y = pad_top + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[s_index % len(PALETTE)]}"><title>{escape(label)} '
                f"{escape(s.label)}: {fmt(value)}</title></rect>"
            )
        centre, anchor = pad_left + g * group_w + group_w / 2, "middle"
        half = len(label) * font * 0.3  # about half the label's drawn width (digits, dashes)
        if centre + half > width - 2:  # the last label would be cut at the right edge
            centre, anchor = width - 2, "end"
        parts.append(
            f'<text x="{centre:.1f}" y="{height - 10}" '
            f'text-anchor="{anchor}" font-size="{font}" fill="#24292f">{escape(label)}</text>'
        )
    parts.append("</svg>")
    if len(series) > 1:
        legend = "".join(
            f'<span class="key"><svg width="10" height="10" aria-hidden="true"><rect width="10" '
            f'height="10" fill="{PALETTE[i % len(PALETTE)]}"/></svg> {escape(s.label)}</span>'
            for i, s in enumerate(series)
        )
        parts.append(f'<p class="legend">{legend}</p>')
    return Markup("".join(parts))  # noqa: S704 - every interpolated text went through escape()


def _nice(value: int) -> int:
    """A round upper bound for the axis (1, 2 or 5 times a power of ten yuan)."""
    if value <= 0:
        return 100
    step = 100
    while True:
        for mult in (1, 2, 5):
            if step * mult >= value:
                return step * mult
        step *= 10
