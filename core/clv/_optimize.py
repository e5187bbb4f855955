"""Maximum likelihood in log-parameter space, shared by the CLV models.

Every model parameter here is positive, so the optimiser works on their logarithms (no constraints, and
steps are relative). The objective is the mean negative log-likelihood per weighted observation so that
the stopping tolerances mean the same thing for 2,000 and for 1,000,000 customers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from core.errors import FitError

FloatArray = npt.NDArray[np.float64]
Objective = Callable[[FloatArray], tuple[float, FloatArray]]

# Real customer bases give parameters well inside [1e-5, 1e5] (CDNOW's are 0.2 .. 16; alpha in days stays in
# the thousands). An estimate beyond is a model collapsing to a limit case the data cannot identify (e.g. no
# heterogeneity: r, alpha -> infinity with r/alpha fixed), where the objective is flat and the closed forms
# lose precision, so it is reported as divergence. The search box is wider so that such a drift shows.
PLAUSIBLE_LOG = math.log(1e5)
SEARCH_LOG = math.log(1e6)
_GRADIENT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Optimum:
    """Where the optimiser stopped: parameters (natural scale), log-likelihood and effort spent."""

    params: FloatArray
    log_likelihood: float
    iterations: int
    evaluations: int
    message: str


def maximize_log_likelihood(
    neg_mean_ll: Objective,
    start: Sequence[float],
    total_weight: float,
    names: Sequence[str],
    model: str,
) -> Optimum:
    """Maximise a log-likelihood given as ``neg_mean_ll(log_params) -> (value, gradient)``.

    ``start`` is on the natural scale. Raises :class:`FitError` when the optimiser fails, stops at a
    non-finite value, or a parameter runs off to 0 or infinity.
    """
    x0 = np.log(np.asarray(start, dtype=np.float64))
    result = minimize(
        neg_mean_ll,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-SEARCH_LOG, SEARCH_LOG)] * len(x0),
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
    )
    log_params = np.asarray(result.x, dtype=np.float64)
    value = float(result.fun)
    gradient = np.asarray(result.jac, dtype=np.float64)
    hint = "check the input data (enough customers with repeat purchases?) or use the empirical fallback"
    if not (np.isfinite(value) and np.all(np.isfinite(log_params)) and np.all(np.isfinite(gradient))):
        raise FitError(f"{model} fit produced non-finite values ({result.message})", hint=hint)
    diverged = [n for n, v in zip(names, log_params, strict=True) if abs(v) > PLAUSIBLE_LOG]
    if diverged:
        values = ", ".join(f"{n}={np.exp(v):.3g}" for n, v in zip(names, log_params, strict=True))
        raise FitError(
            f"{model} fit did not converge: {', '.join(diverged)} drifted towards 0 or infinity ({values}), "
            "so the data do not identify the model",
            hint=hint,
        )
    # L-BFGS-B can stop on "ABNORMAL" line searches at a true optimum, where the objective is flat to
    # machine precision; a small projected gradient is the criterion that matters.
    if not result.success and float(np.max(np.abs(gradient))) > _GRADIENT_TOLERANCE:
        raise FitError(f"{model} fit did not converge after {result.nit} iterations: {result.message}", hint=hint)
    return Optimum(
        params=np.exp(log_params),
        log_likelihood=-value * total_weight,
        iterations=int(result.nit),
        evaluations=int(result.nfev),
        message=str(result.message),
    )
