"""The report's model-fit pictures, as inline SVG: how well the CLV model reproduces the history it was fitted on
and forecasts a held-out period (the classic BTYD plots of Fader, Hardie & Lee 2005: the frequency histogram,
the tracking plot, conditional expectations by frequency), and the predictive score's calibration curve and lift
chart. Each takes the run's diagnostics as stored (JSON) and returns nothing when the run has no such data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from cli.charts import PALETTE, WIDTH, columns, ticks

HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 280, 62, 16, 30, 48
LABELS = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}
ACTUAL = "#111827"


def _label(value: float) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}".rstrip("0").rstrip(".")


def lines(series: Sequence[tuple[str, Sequence[tuple[float, float]], str]], title: str, x_label: str,
          y_label: str, *, x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None,
          marker_x: float | None = None, marker_label: str = "", diagonal: bool = False) -> str:
    """Several named lines ``(name, points, colour)`` on shared axes with ticks, a legend, and optionally a dashed
    vertical marker (the calibration end) and the diagonal (a perfect calibration, a random ranking)."""
    xs = [x for _, points, _ in series for x, _ in points] or [0.0, 1.0]
    ys = [y for _, points, _ in series for _, y in points] or [0.0, 1.0]
    x0, x1 = x_range or (min(xs), max(xs))
    y0, y1 = y_range or (0.0, max(ys) * 1.05 or 1.0)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + plot_w * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return TOP + plot_h * (1 - (y - y0) / (y1 - y0))

    parts = [f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#999"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#999"/>']
    for x in ticks(x0, x1):
        parts.append(f'<g class="tick x"><line x1="{px(x):.1f}" y1="{TOP + plot_h}" x2="{px(x):.1f}" '
                     f'y2="{TOP + plot_h + 4}" stroke="#999"/><text x="{px(x):.1f}" y="{TOP + plot_h + 16}" '
                     f'font-size="10" text-anchor="middle">{_label(x)}</text></g>')
    for y in ticks(y0, y1):
        parts.append(f'<g class="tick y"><line x1="{LEFT - 4}" y1="{py(y):.1f}" x2="{LEFT}" y2="{py(y):.1f}" '
                     f'stroke="#999"/><line x1="{LEFT}" y1="{py(y):.1f}" x2="{LEFT + plot_w}" y2="{py(y):.1f}" '
                     f'stroke="#f1f1f1"/><text x="{LEFT - 7}" y="{py(y) + 3:.1f}" font-size="10" '
                     f'text-anchor="end">{_label(y)}</text></g>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle">'
                 f'{escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{TOP + plot_h / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {TOP + plot_h / 2})">{escape(y_label)}</text>')
    if diagonal:
        parts.append(f'<line x1="{px(x0):.1f}" y1="{py(y0):.1f}" x2="{px(x1):.1f}" y2="{py(y1):.1f}" '
                     f'stroke="#bbb" stroke-dasharray="4 4"/>')
    if marker_x is not None and x0 <= marker_x <= x1:
        parts.append(f'<line x1="{px(marker_x):.1f}" y1="{TOP}" x2="{px(marker_x):.1f}" y2="{TOP + plot_h}" '
                     f'stroke="#6b7280" stroke-dasharray="3 3"/><text x="{px(marker_x) + 4:.1f}" y="{TOP + 10}" '
                     f'font-size="10" fill="#374151">{escape(marker_label)}</text>')
    for i, (name, points, colour) in enumerate(series):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
                     f'<title>{escape(name)}</title></polyline>')
        legend_x = LEFT + 8 + i * 120
        parts.append(f'<rect x="{legend_x}" y="6" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="15" font-size="11">{escape(name)}</text>')
    total = HEIGHT + 26
    return (f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {total}" '
            f'width="{WIDTH}" height="{total}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
            f'<text x="4" y="17" font-size="14" font-weight="600">{escape(title)}</text>'
            f'<g transform="translate(0,26)">{"".join(parts)}</g></svg>')


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def model_fit_charts(diagnostics: Mapping[str, Any] | None) -> list[str]:
    """The model-fit pictures a run's diagnostics allow (empty when none: no model fitted, or an old run)."""
    diagnostics = diagnostics or {}
    clv, predictive = diagnostics.get("clv") or {}, diagnostics.get("predictive") or {}
    out: list[str] = []
    histogram = clv.get("frequency_histogram")
    if histogram and histogram.get("labels"):
        name = LABELS.get(histogram.get("model", ""), histogram.get("model", "model"))
        out.append(columns(list(histogram["labels"]),
                           [("actual", [float(v) for v in histogram["actual"]]),
                            (f"{name} expected", [float(v) for v in histogram["expected"]])],
                           "Customers by repeat purchases: actual vs the fitted model"))
    tracking = (clv.get("holdout") or {}).get("tracking")
    if tracking and tracking.get("t"):
        t = [float(v) for v in tracking["t"]]
        series = [("actual", list(zip(t, (float(v) for v in tracking["actual"]), strict=True)), ACTUAL)]
        series += [(LABELS.get(m, m), list(zip(t, (float(v) for v in values), strict=True)), _colour(i))
                   for i, (m, values) in enumerate(tracking["predicted"].items())]
        unit = tracking.get("unit", "weeks")
        out.append(lines(series, "Cumulative repeat transactions: calibration, then the held-out period",
                         f"{unit} since the first purchase", "repeat transactions",
                         marker_x=float(tracking["calibration_end"]), marker_label="calibration end"))
    rows = (clv.get("holdout") or {}).get("by_frequency") or []
    if rows:
        models = list(rows[0].get("predicted", {}))
        out.append(columns([str(r["x"]) for r in rows],
                           [("actual", [float(r["actual"]) for r in rows]),
                            *((LABELS.get(m, m), [float(r["predicted"][m]) for r in rows]) for m in models)],
                           "Mean held-out transactions by calibration repeat purchases"))
    bins = predictive.get("calibration") or []
    if bins:
        points = [(float(p) * 100, float(o) * 100) for p, o, _ in bins]
        top = max(max(p for p, _ in points), max(o for _, o in points)) * 1.1 or 1.0
        out.append(lines([("observed", points, _colour(0))], "Predictive score calibration (hold-out, tenths)",
                         "predicted conversion probability (%)", "observed conversion rate (%)",
                         x_range=(0.0, top), y_range=(0.0, top), diagonal=True))
    gains = predictive.get("gains") or []
    if gains:
        points = [(float(x) * 100, float(y) * 100) for x, y in gains]
        out.append(lines([("predictive score", points, _colour(0))],
                         "Lift: share of conversions among the top-scored contacts (hold-out)",
                         "% of contacts, highest score first", "% of conversions",
                         x_range=(0.0, 100.0), y_range=(0.0, 100.0), diagonal=True))
    return out
