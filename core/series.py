"""Chart-ready series for the report, computed once per run from the enrichment table (pure, vectorised)."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.criteria import FieldTable


def chart_series(table: FieldTable, points: int = 20) -> dict[str, Any]:
    """CLV distribution (log-spaced histogram), CLV concentration (Lorenz) curve, and P(alive) by recency.

    Only customers (contacts with a won deal) are included; values are rounded for a compact snapshot.
    """
    won = table.numbers("won_deals")
    customers = np.nan_to_num(won) >= 1
    clv = np.nan_to_num(table.numbers("clv")[customers])
    out: dict[str, Any] = {"customers": int(customers.sum())}
    if clv.size == 0:
        return out
    positive = clv[clv > 0]
    if positive.size:
        edges = np.unique(np.geomspace(max(positive.min(), 1.0), max(positive.max(), 2.0), 13).round(0))
        counts, _ = np.histogram(positive, bins=edges)
        out["clv_histogram"] = {"edges": edges.tolist(), "counts": counts.tolist(),
                                "zero": int((clv <= 0).sum())}
    ordered = np.sort(clv)[::-1]
    total = ordered.sum()
    if total > 0:
        share = np.cumsum(ordered) / total
        at = np.linspace(0, 1, points + 1)
        idx = np.clip((at * ordered.size).astype(int) - 1, 0, ordered.size - 1)
        curve = np.where(at == 0, 0.0, share[idx])
        out["clv_concentration"] = [[round(float(x), 3), round(float(y), 4)] for x, y in zip(at, curve, strict=True)]
    recency = table.numbers("days_since_last_purchase")[customers]
    alive = table.numbers("p_alive")[customers]
    known = np.isfinite(recency) & np.isfinite(alive)
    if known.any():
        edges = np.unique(np.quantile(recency[known], np.linspace(0, 1, 11)).round(0))
        out["p_alive_by_recency"] = _binned_mean(recency, alive, known, edges)
        # Apart for one-time and repeat buyers: the models treat them differently (a BG/NBD customer can only
        # drop out right after a repeat purchase), and their mix across recency bins shapes the overall curve.
        repeat = np.nan_to_num(table.numbers("frequency")[customers]) >= 1
        out["p_alive_by_recency_repeat"] = _binned_mean(recency, alive, known & repeat, edges)
        out["p_alive_by_recency_one_time"] = _binned_mean(recency, alive, known & ~repeat, edges)
    return out


def _binned_mean(x: np.ndarray, y: np.ndarray, rows: np.ndarray, edges: np.ndarray) -> list[list[float]]:
    """``[left edge, mean y]`` of the ``rows`` in each bin of ``x`` (bins without rows are left out)."""
    which = np.clip(np.searchsorted(edges, x[rows], side="right") - 1, 0, max(len(edges) - 2, 0))
    sums = np.bincount(which, weights=y[rows], minlength=len(edges))
    counts = np.bincount(which, minlength=len(edges))
    return [[round(float(edges[i]), 1), round(float(sums[i] / counts[i]), 4)] for i in range(len(edges)) if counts[i]]
