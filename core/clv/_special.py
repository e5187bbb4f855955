"""The Gauss hypergeometric function 2F1 on [0, 1), guarded against a known weakness of scipy's.

For z near 1, ``scipy.special.hyp2f1`` (Cephes) switches to the 1 - z transformation, whose gamma-function
ratios are singular when c - a - b is an integer. There it returns inf/NaN, and close to an integer it
loses digits silently (a relative error around 1e-16 / distance). BG/NBD and sBG hit that case whenever a
parameter difference is a whole number (e.g. a = 1 + r, or sBG alpha = 1 or 2) and the horizon is long.
2F1 is analytic in c, so near an integer we evaluate it at four points a safe distance away and
interpolate with a cubic, which is exact to about 1e-12 relative.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import hyp2f1

FloatArray = npt.NDArray[np.float64]

_NEAR_ONE = 0.85  # below this z Cephes sums the series directly and is accurate
_STEP = 1e-3  # distance of the interpolation nodes from the integer: Cephes' error there is ~1e-13
_NODES = np.array([-2.0, -1.0, 1.0, 2.0])


def hyp2f1_real(a: npt.ArrayLike, b: npt.ArrayLike, c: npt.ArrayLike, z: npt.ArrayLike) -> FloatArray:
    """2F1(a, b; c; z) for real arguments with 0 <= z < 1, vectorised with broadcasting."""
    a_, b_, c_, z_ = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, c, z)))
    value = np.asarray(hyp2f1(a_, b_, c_, z_), dtype=np.float64)
    excess = c_ - a_ - b_
    offset = excess - np.round(excess)
    risky = (z_ > _NEAR_ONE) & (np.abs(offset) < 2.0 * _STEP)
    if not np.any(risky):
        return value
    a_r, b_r, z_r, off = a_[risky], b_[risky], z_[risky], offset[risky]
    base = c_[risky] - off  # the c that makes c - a - b exactly an integer
    samples = np.stack([hyp2f1(a_r, b_r, base + node * _STEP, z_r) for node in _NODES])
    # Lagrange weights of the nodes for the point off / _STEP.
    u = off / _STEP
    weights = np.stack(
        [np.prod([(u - other) / (node - other) for other in _NODES if other != node], axis=0) for node in _NODES]
    )
    value[risky] = np.sum(weights * samples, axis=0)
    return value
