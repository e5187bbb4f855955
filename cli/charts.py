"""Charts as inline SVG: the report is one self-contained page that renders offline, with no scripts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH = 640
PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#ca8a04", "#db2777")


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.2f}"


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if not high > low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _x_tick(x: float, y: float, label: str) -> str:
    return (f'<g class="tick x"><line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#999"/>'
            f'<text x="{x:.1f}" y="{y + 15}" font-size="10" text-anchor="middle">{escape(label)}</text></g>')


def _y_tick(x: float, y: float, label: str) -> str:
    return (f'<g class="tick y"><line x1="{x - 4}" y1="{y:.1f}" x2="{x}" y2="{y:.1f}" stroke="#999"/>'
            f'<text x="{x - 6}" y="{y + 3.5:.1f}" font-size="10" text-anchor="end">{escape(label)}</text></g>')


def _frame(height: int, body: str, title: str) -> str:
    total = height + 26  # room for the visible title above the plot
    return (f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {total}" '
            f'width="{WIDTH}" height="{total}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{escape(title)}</title><text x="4" y="17" font-size="14" font-weight="600">{escape(title)}'
            f'</text><g transform="translate(0,26)">{body}</g></svg>')


def hbar(labels: Sequence[str], values: Sequence[float], title: str, notes: Sequence[str] | None = None,
         colour: str = PALETTE[0]) -> str:
    """Horizontal bars with the value (and an optional note, e.g. a conversion rate) at the end."""
    row, left = 26, 170
    span = WIDTH - left - 150
    axis = row * len(labels) + 8
    height = axis + 22
    top = max(values, default=0) or 1
    parts = [f'<line x1="{left}" y1="{axis}" x2="{left + span}" y2="{axis}" stroke="#999"/>']
    parts += [_x_tick(left + span * t / top, axis, _fmt(t)) for t in ticks(0, top, 4)]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row
        width = span * value / top
        note = f"  {notes[i]}" if notes and notes[i] else ""
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" font-size="12">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{max(width, 1):.1f}" height="{row - 8}" fill="{colour}" rx="2"/>'
            f'<text x="{left + width + 6:.1f}" y="{y + 16}" font-size="12">{_fmt(value)}{escape(note)}</text>'
        )
    return _frame(height, "".join(parts), title)


def columns(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], title: str,
            y_label: str = "") -> str:
    """Vertical bars; several series side by side (before/after) with a legend."""
    height, bottom, left, top_pad = 260, 40, 56, 24
    top = max((v for _, values in series for v in values), default=0) or 1
    scale = ticks(0, top, 4)
    top = max(top, scale[-1])
    plot_w, plot_h = WIDTH - left - 10, height - bottom - top_pad
    group = plot_w / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    parts = [f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{WIDTH - 10}" y2="{top_pad + plot_h}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#999"/>',
             f'<text x="4" y="14" font-size="11" fill="#555">{escape(y_label)}</text>']
    parts += [_y_tick(left, top_pad + plot_h * (1 - t / top), _fmt(t)) for t in scale]
    for s, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            h = plot_h * value / top
            x = left + i * group + group * 0.1 + s * bar
            parts.append(f'<rect x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{max(bar - 1, 1):.1f}" '
                         f'height="{max(h, 0.5):.1f}" fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(name)} '
                         f'{escape(labels[i])}: {_fmt(value)}</title></rect>')
        if len(series) > 1:
            parts.append(f'<rect x="{left + 120 + s * 110}" y="4" width="10" height="10" fill="{PALETTE[s]}"/>'
                         f'<text x="{left + 134 + s * 110}" y="13" font-size="11">{escape(name)}</text>')
    step = max(1, len(labels) // 10)
    for i in range(0, len(labels), step):
        x = left + i * group + group / 2
        parts.append(_x_tick(x, top_pad + plot_h, labels[i]))
    return _frame(height, "".join(parts), title)


def line(points: Sequence[tuple[float, float]], title: str, x_label: str, y_label: str,
         diagonal: bool = False, y_max: float | None = None) -> str:
    """A line through (x, y) points with axes; ``diagonal`` draws the equality line (concentration curves)."""
    height, bottom, left, top_pad = 260, 40, 56, 18
    plot_w, plot_h = WIDTH - left - 16, height - bottom - top_pad
    xs = [p[0] for p in points] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = y_max if y_max is not None else (max((p[1] for p in points), default=1) or 1)

    def at(x: float, y: float) -> str:
        return f"{left + plot_w * (x - x0) / (x1 - x0):.1f},{top_pad + plot_h * (1 - y / y1):.1f}"

    parts = [f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#999"/>',
             f'<text x="{left + plot_w / 2}" y="{height - 8}" font-size="11" text-anchor="middle">'
             f'{escape(x_label)}</text>',
             f'<text x="4" y="10" font-size="11" fill="#555">{escape(y_label)}</text>']
    parts += [_x_tick(left + plot_w * (t - x0) / (x1 - x0), top_pad + plot_h, _fmt(t)) for t in ticks(x0, x1)]
    parts += [_y_tick(left, top_pad + plot_h * (1 - t / y1), _fmt(t)) for t in ticks(0, y1, 4)]
    if diagonal:
        parts.append(f'<polyline points="{at(x0, 0)} {at(x1, y1)}" fill="none" stroke="#bbb" '
                     f'stroke-dasharray="4 4"/>')
    if points:
        path = " ".join(at(x, y) for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')
    return _frame(height, "".join(parts), title)
