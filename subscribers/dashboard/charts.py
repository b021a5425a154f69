"""Small server-side SVG charts for the dashboard: no JavaScript, nothing from a CDN.

Each function takes plain numbers and labels and returns safe SVG markup; every point or bar
carries a <title>, which browsers show as a tooltip and screen readers read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

FONT = 'font-family="sans-serif" font-size="11" fill="#555"'


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int | None]  # None: no data for that point (a gap in the line)
    colour: str = "#417690"


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5 × 10^k that is ≥ value (the top of the y axis)."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _grid(top: int, left: int, right: int, y_of, ticks: int = 4) -> list[str]:
    parts = []
    for i in range(ticks + 1):
        value = top * i // ticks
        y = y_of(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{value:,}</text>'
        )
    return parts


def _x_labels(labels: Sequence[str], x_of, bottom: float, every: int) -> list[str]:
    return [
        f'<text x="{x_of(i):.1f}" y="{bottom + 16:.1f}" text-anchor="middle" {FONT}>'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
        if (len(labels) - 1 - i) % every == 0  # counted from the last: "now" is always labelled
    ]


def line_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, width=760, height=240
) -> SafeString:
    left, right, top_pad, bottom = 56, width - 12, 14, height - 44
    highest = max((v for s in series for v in s.values if v is not None), default=0)
    top = nice_ceiling(highest)
    count = max(len(labels), 1)

    def x_of(i: int) -> float:
        return left + (right - left) * (i / (count - 1) if count > 1 else 0.5)

    def y_of(v: float) -> float:
        return bottom - (bottom - top_pad) * v / top

    parts = _grid(top, left, right, y_of)
    for s in series:
        segment: list[str] = []
        segments = [segment]
        for i, value in enumerate(s.values):
            if value is None:
                segment = []
                segments.append(segment)
                continue
            segment.append(f"{x_of(i):.1f},{y_of(value):.1f}")
            parts.append(
                f'<circle cx="{x_of(i):.1f}" cy="{y_of(value):.1f}" r="3" fill="{s.colour}">'
                f"<title>{escape(s.name)} · {escape(labels[i])}: {value:,}</title></circle>"
            )
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline points="{" ".join(points)}" fill="none" '
                    f'stroke="{s.colour}" stroke-width="2"/>'
                )
    parts += _x_labels(labels, x_of, bottom, every=max(1, count // 8))
    legend_x = left
    for s in series:
        parts.append(
            f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{s.colour}"/>'
            f'<text x="{legend_x + 14}" y="{height - 5}" {FONT}>{escape(s.name)}</text>'
        )
        legend_x += 24 + 7 * len(s.name)
    return _svg(parts, width, height, title)


def bar_chart(
    labels: Sequence[str],
    ups: Sequence[int],
    downs: Sequence[int],
    *,
    title: str,
    up_name: str,
    down_name: str,
    width=760,
    height=240,
) -> SafeString:
    """Two bars per label: `ups` above the axis (green), `downs` below it (red)."""
    left, right, top_pad, bottom_pad = 56, width - 12, 14, 44
    top = nice_ceiling(max([*ups, *downs, 0]))
    middle = top_pad + (height - bottom_pad - top_pad) / 2
    half = middle - top_pad
    count = max(len(labels), 1)
    slot = (right - left) / count
    bar = max(2.0, slot * 0.6)

    def x_of(i: int) -> float:
        return left + slot * (i + 0.5)

    parts = []
    for value in (top, top // 2):
        for sign in (-1, 1):
            y = middle + sign * half * value / top
            parts.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>'
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{value:,}</text>'
            )
    parts.append(f'<line x1="{left}" y1="{middle}" x2="{right}" y2="{middle}" stroke="#999"/>')
    for i, label in enumerate(labels):
        up_h, down_h = half * ups[i] / top, half * downs[i] / top
        x = x_of(i) - bar / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{middle - up_h:.1f}" width="{bar:.1f}" height="{up_h:.1f}" '
            f'fill="#3a9a4a"><title>{escape(label)} · {escape(up_name)}: {ups[i]:,}</title></rect>'
            f'<rect x="{x:.1f}" y="{middle:.1f}" width="{bar:.1f}" height="{down_h:.1f}" '
            f'fill="#ba2121"><title>{escape(label)} · {escape(down_name)}: {downs[i]:,}'
            f"</title></rect>"
        )
    parts += _x_labels(labels, x_of, height - bottom_pad, every=max(1, count // 8))
    for n, (name, colour) in enumerate(((up_name, "#3a9a4a"), (down_name, "#ba2121"))):
        x = left + n * 180
        parts.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{height - 5}" {FONT}>{escape(name)}</text>'
        )
    return _svg(parts, width, height, title)


def sparkline(values: Sequence[int | None], *, title: str, width=120, height=26) -> SafeString:
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(known) < 2:
        return mark_safe("")  # noqa: S308  (nothing to draw)
    low, high = min(v for _, v in known), max(v for _, v in known)
    span = max(high - low, 1)
    step = (width - 4) / max(len(values) - 1, 1)
    points = " ".join(
        f"{2 + i * step:.1f},{height - 3 - (height - 6) * (v - low) / span:.1f}" for i, v in known
    )
    parts = [f'<polyline points="{points}" fill="none" stroke="#417690" stroke-width="1.5"/>']
    return _svg(parts, width, height, title, css_class="sparkline")


def _svg(parts: list[str], width: int, height: int, title: str, css_class="chart") -> SafeString:
    body = "".join(parts)
    return mark_safe(  # noqa: S308  (every text above is escaped)
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{body}</svg>'
    )
