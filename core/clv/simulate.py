"""Synthetic customer bases drawn from the BG/NBD, Pareto/NBD and Gamma-Gamma models, for tests and benchmarks.

Vectorised: one draw per customer and per quantity, no loop over purchases. Given the number N of Poisson
purchase events in (0, T], their times are N uniform order statistics on (0, T]; a customer who drops out
after the K-th repeat purchase shows x = min(K, N) of them, the last at the x-th order statistic, which is
T * Beta(x, N - x + 1).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from core.clv.bgnbd import BgNbdParams
from core.clv.gamma_gamma import GammaGammaParams
from core.clv.paretonbd import ParetoNbdParams

FloatArray = npt.NDArray[np.float64]


def simulate_bgnbd(
    params: BgNbdParams, T: npt.ArrayLike, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Draw (x, t_x) for customers observed over (0, T] under BG/NBD ``params``."""
    Ta = np.asarray(T, dtype=np.float64)
    rate = rng.gamma(params.r, 1.0 / params.alpha, size=Ta.shape)
    p = rng.beta(params.a, params.b, size=Ta.shape)
    events = rng.poisson(rate * Ta)
    # The customer drops out right after repeat purchase number K ~ Geometric(p) on {1, 2, ...}.
    last_purchase = rng.geometric(np.clip(p, 1e-12, 1.0))
    x = np.minimum(events, last_purchase).astype(np.int64)
    has = x > 0
    share = np.zeros(Ta.shape)
    share[has] = rng.beta(x[has], events[has] - x[has] + 1)
    return x, share * Ta


def simulate_mean_spend(params: GammaGammaParams, x: npt.ArrayLike, rng: np.random.Generator) -> FloatArray:
    """Draw each customer's mean spend over its x repeat purchases (0 where x = 0)."""
    xa = np.asarray(x, dtype=np.float64)
    nu = rng.gamma(params.q, 1.0 / params.gamma, size=xa.shape)
    has = xa > 0
    zbar = np.zeros(xa.shape)
    # The mean of x Gamma(p, nu) amounts is Gamma(p x, x nu).
    zbar[has] = rng.gamma(params.p * xa[has], 1.0 / (xa[has] * nu[has]))
    return zbar


def simulate_pareto_nbd(
    params: ParetoNbdParams, T: npt.ArrayLike, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Draw (x, t_x) for customers observed over (0, T] under Pareto/NBD ``params``: purchase rate
    lambda ~ Gamma(r, alpha), dropout rate mu ~ Gamma(s, beta), lifetime ~ Exponential(mu); the x purchases
    while active in (0, min(lifetime, T)] are uniform there, so the last is that span times U^(1/x)."""
    Ta = np.asarray(T, dtype=np.float64)
    rate = rng.gamma(params.r, 1.0 / params.alpha, size=Ta.shape)
    dropout = rng.gamma(params.s, 1.0 / params.beta, size=Ta.shape)
    active = np.minimum(rng.exponential(1.0, size=Ta.shape) / dropout, Ta)
    x = rng.poisson(rate * active).astype(np.int64)
    has = x > 0
    t_x = np.zeros(Ta.shape)
    t_x[has] = active[has] * rng.uniform(size=int(has.sum())) ** (1.0 / x[has])
    return x, t_x
