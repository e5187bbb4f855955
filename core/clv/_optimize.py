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
# Relative step of the log parameters for the finite-difference Hessian: near the cube root of the gradient's
# relative precision, where truncation and rounding errors balance.
_HESSIAN_STEP = 1e-4


@dataclass(frozen=True)
class Optimum:
    """Where the optimiser stopped: parameters (natural scale), log-likelihood and effort spent."""

    params: FloatArray
    log_likelihood: float
    iterations: int
    evaluations: int
    message: str
    #: Covariance of the log parameters (the inverse observed information, see :func:`log_covariance`); NaN
    #: when the likelihood is flat in some direction at the optimum.
    covariance: FloatArray


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
        covariance=log_covariance(neg_mean_ll, log_params, total_weight),
    )


def log_covariance(neg_mean_ll: Objective, log_params: FloatArray, total_weight: float) -> FloatArray:
    """The Laplace approximation of the log parameters' sampling distribution at the optimum: the inverse of
    the observed information, total_weight times the Hessian of the mean negative log-likelihood.

    The Hessian is taken by central differences of the analytic gradient (2k gradient evaluations, error
    O(step^2)), symmetrised. All NaN when it is not positive definite (a flat or saddle direction: the data do
    not pin the parameters down, so no standard error is honest).
    """
    k = len(log_params)
    hessian = np.empty((k, k))
    for j in range(k):
        step = np.zeros(k)
        step[j] = _HESSIAN_STEP
        hessian[:, j] = (neg_mean_ll(log_params + step)[1] - neg_mean_ll(log_params - step)[1]) / (2 * _HESSIAN_STEP)
    information = 0.5 * (hessian + hessian.T) * total_weight
    try:
        # Cholesky both tests positive definiteness and inverts stably.
        factor = np.linalg.cholesky(information)
        inverse = np.linalg.inv(factor)
    except np.linalg.LinAlgError:
        return np.full((k, k), np.nan)
    covariance = inverse.T @ inverse
    return covariance if np.all(np.isfinite(covariance)) else np.full((k, k), np.nan)


def standard_errors(params: Sequence[float], covariance: FloatArray) -> FloatArray:
    """Standard errors of the natural-scale parameters from the log-scale covariance (delta method:
    se(theta) = theta * se(log theta), exact to first order; at the optimum it equals the inverse Hessian in
    natural parameters, as lifetimes reports)."""
    return np.asarray(params, dtype=np.float64) * np.sqrt(np.diag(covariance))
