"""Input checks and row bookkeeping shared by the continuous-time purchase models (Pareto/NBD, MBG/NBD)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def validate_history(x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray, model: str) -> None:
    """Raise ValueError naming every way (x, t_x, T, weights) cannot be a continuous-time purchase history."""
    checks = [
        (np.all(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T) & np.isfinite(w)), "non-finite values"),
        (np.all(x >= 0) and np.all(x == np.floor(x)), "frequency x must be a non-negative integer"),
        (np.all((t_x >= 0) & (t_x <= T)), "recency must satisfy 0 <= t_x <= T"),
        (np.all(t_x[x == 0] == 0), "recency t_x must be 0 when x = 0"),
        (np.all(w >= 0), "weights must be >= 0"),
    ]
    problems = [msg for ok, msg in checks if not ok]
    if problems:
        raise ValueError(f"invalid {model} data: " + "; ".join(problems))


def distinct_rows(*columns: FloatArray) -> tuple[tuple[FloatArray, ...], npt.NDArray[np.intp]]:
    """The distinct rows of equal-length ``columns`` (sorted by the first column, then the next...) and, for
    each input row, the index of its distinct row, so that ``distinct[j][inverse] == columns[j]``."""
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    changed = np.zeros(len(order), dtype=bool)
    changed[:1] = True
    for c in ordered:
        changed[1:] |= c[1:] != c[:-1]
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = np.cumsum(changed) - 1
    return tuple(c[changed] for c in ordered), inverse
