"""Charts as inline SVG: the report is one self-contained page that renders offline, with no scripts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


def _text_width(text: str, size: float = 12) -> float:
    """A generous estimate of a text's width in a sans-serif font (no layout engine here): wide enough that a
    label placed by it does not run off the chart."""
    return len(text) * size * 0.62


def _frame(height: int, body: str, title: str) -> str:
    total = height + 26  # room for the visible title above the plot
    return (f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {total}" '
            f'width="{WIDTH}" height="{total}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{escape(title)}</title><text x="4" y="17" font-size="14" font-weight="600">{escape(title)}'
            f'</text><g transform="translate(0,26)">{body}</g></svg>')


def hbar(labels: Sequence[str], values: Sequence[float], title: str, notes: Sequence[str] | None = None,
         colour: str | Sequence[str] = PALETTE[0], label_width: int = 170) -> str:
    """Horizontal bars with the value (and an optional note, e.g. a conversion rate) at the end; ``colour`` is
    one colour or one per bar; ``label_width`` the pixels for the labels. The bars are scaled so that every
    value and note ends inside the chart."""
    row, left = 26, label_width
    axis = row * len(labels) + 8
    height = axis + 22
    top = max(values, default=0) or 1
    texts = [_fmt(v) + (f" · {notes[i]}" if notes and notes[i] else "") for i, v in enumerate(values)]
    span = min([WIDTH - left - 40.0] + [(WIDTH - left - 10 - 6 - _text_width(t)) * top / v
                                        for t, v in zip(texts, values, strict=True) if v > 0])
    span = max(span, 60.0)
    parts = [f'<line x1="{left}" y1="{axis}" x2="{left + span}" y2="{axis}" stroke="#999"/>']
    parts += [_x_tick(left + span * t / top, axis, _fmt(t)) for t in ticks(0, top, 4)]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row
        width = span * value / top
        fill = colour if isinstance(colour, str) else colour[i]
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" font-size="12">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{max(width, 1):.1f}" height="{row - 8}" data-label="{escape(label)}" '
            f'fill="{fill}" rx="2"/><text class="value" x="{left + width + 6:.1f}" y="{y + 16}" font-size="12">'
            f'{escape(texts[i])}</text>'
        )
    return _frame(height, "".join(parts), title)


def paired_hbar(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], title: str,
                label_width: int = 170) -> str:
    """Two (or more) bars per label, one per series, with a legend: before vs after per stage, where the long
    stage names sit on the left instead of crowding under columns."""
    bar, gap = 13, 8  # a 9 px value label is about 11 px tall: the two of a stage never touch
    row = bar * len(series) + gap
    left, span = label_width, WIDTH - label_width - 70
    axis = 24 + row * len(labels)
    top = max((v for _, values in series for v in values), default=0) or 1
    parts = [f'<line x1="{left}" y1="{axis}" x2="{left + span}" y2="{axis}" stroke="#999"/>']
    parts += [_x_tick(left + span * t / top, axis, _fmt(t)) for t in ticks(0, top, 4)]
    for s, (name, _) in enumerate(series):
        parts.append(f'<rect x="{left + s * 120}" y="4" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>'
                     f'<text x="{left + 14 + s * 120}" y="13" font-size="11">{escape(name)}</text>')
    for i, label in enumerate(labels):
        y = 24 + i * row
        parts.append(f'<text x="{left - 8}" y="{y + row / 2 + 1:.1f}" text-anchor="end" font-size="12">'
                     f'{escape(label)}</text>')
        for s, (name, values) in enumerate(series):
            width = span * values[i] / top
            by = y + s * bar
            parts.append(f'<rect x="{left}" y="{by}" width="{max(width, 1):.1f}" height="{bar - 1}" '
                         f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(name)} {escape(label)}: '
                         f'{_fmt(values[i])}</title></rect><text class="value" x="{left + width + 4:.1f}" '
                         f'y="{by + bar - 2}" font-size="9">{_fmt(values[i])}</text>')
    return _frame(axis + 22, "".join(parts), title)


def columns(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], title: str,
            y_label: str = "", marks: Sequence[tuple[float, str]] = ()) -> str:
    """Vertical bars; several series side by side (before/after) with a legend. ``marks`` are labelled dashed
    vertical lines (thresholds) at positions in column units: 0 is the left edge of the first column, 1.5 the
    middle of the second."""
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
    last = -math.inf
    for position, text in sorted(marks):
        x = left + position * group
        # Close thresholds put their labels one line apart rather than on top of each other.
        lift = 12 if x - last < 60 else 0
        last = x if not lift else -math.inf
        parts.append(f'<g class="threshold"><line x1="{x:.1f}" y1="{top_pad}" x2="{x:.1f}" y2="{top_pad + plot_h}" '
                     f'stroke="#111827" stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{top_pad + 10 + lift}" '
                     f'font-size="11" fill="#111827" stroke="#fff" stroke-width="3" paint-order="stroke">{escape(text)}'
                     '</text></g>')
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


def flow(bands: Sequence[tuple[str, str, int, str]], sources: Sequence[str], targets: Sequence[str], title: str,
         legend: Sequence[tuple[str, str]] = ()) -> str:
    """A flow diagram (Sankey style) of ``(source, target, count, colour)`` bands: sources on the left, targets on
    the right, in the given orders, each band as thick as its count. Nodes are at least one label tall, so their
    labels never touch; a ruler below gives the band scale."""
    out_of = {n: sum(c for s, _, c, _ in bands if s == n) for n in sources}
    into = {n: sum(c for _, t, c, _ in bands if t == n) for n in targets}
    left_nodes = [n for n in sources if out_of[n]]
    right_nodes = [n for n in targets if into[n]]
    total = sum(c for _, _, c, _ in bands) or 1
    scale, gap, least, top = 200 / total, 8, 16, 24
    label_w, node_w = 180, 10
    x_left, x_right = label_w, WIDTH - label_w - node_w

    def place(nodes: list[str], size: Mapping[str, int]) -> dict[str, tuple[float, float]]:
        spots, y = {}, float(top)
        for n in nodes:
            h = max(least, size[n] * scale)
            spots[n] = (y, h)
            y += h + gap
        return spots

    left, right = place(left_nodes, out_of), place(right_nodes, into)
    bottom = max([y + h for y, h in [*left.values(), *right.values()]], default=top)
    parts = []
    for i, (name, colour) in enumerate(legend):
        parts.append(f'<rect x="{8 + i * 125}" y="4" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{22 + i * 125}" y="13" font-size="11">{escape(name)}</text>')
    # Bands stacked in the order given, centred in their node (a node may be taller than its bands).
    used_left = {n: left[n][0] + (left[n][1] - out_of[n] * scale) / 2 for n in left}
    used_right = {n: right[n][0] + (right[n][1] - into[n] * scale) / 2 for n in right}
    mid = (x_left + node_w + x_right) / 2
    for source, target, count, colour in bands:
        if not count:
            continue
        t = count * scale
        y0, y1 = used_left[source], used_right[target]
        used_left[source] += t
        used_right[target] += t
        a, b = x_left + node_w, x_right
        parts.append(f'<path d="M{a},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {b},{y1:.1f} L{b},{y1 + t:.1f} '
                     f'C{mid:.1f},{y1 + t:.1f} {mid:.1f},{y0 + t:.1f} {a},{y0 + t:.1f} Z" fill="{colour}" '
                     f'fill-opacity="0.45"><title>{escape(source)} → {escape(target)}: {count:,}</title></path>')
    for side, spots, size in (("left", left, out_of), ("right", right, into)):
        for n, (y, h) in spots.items():
            x = x_left if side == "left" else x_right
            tx, anchor = (x - 6, "end") if side == "left" else (x + node_w + 6, "start")
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" fill="#374151"/>'
                         f'<text x="{tx}" y="{y + h / 2 + 4:.1f}" font-size="12" text-anchor="{anchor}">'
                         f'{escape(n)} {size[n]:,}</text>')
    # The ruler: how many contacts a band's thickness stands for.
    step = max(ticks(0, total, 5)[1], 1.0) if total > 1 else 1.0
    ruler_x, ruler_top = mid, bottom + 14
    parts.append(f'<line x1="{ruler_x}" y1="{ruler_top}" x2="{ruler_x}" y2="{ruler_top + step * scale:.1f}" '
                 f'stroke="#374151" stroke-width="2"/>')
    parts += [_y_tick(ruler_x, ruler_top + v * scale, f"{_fmt(v)} contacts" if v else "0") for v in (0, step)]
    return _frame(int(ruler_top + step * scale + 12), "".join(parts), title).replace(
        '<svg class="chart"', '<svg class="chart flow"', 1)
