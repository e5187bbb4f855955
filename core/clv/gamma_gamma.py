"""Gamma-Gamma model of spend per transaction (Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary
Value", after Colombo & Jiang 1999 and Fader, Hardie & Lee 2005, "RFM and CLV").

Each transaction's value is Gamma(p, nu); across customers nu ~ Gamma(q, gamma). A customer with x repeat
transactions of mean value zbar has a likelihood in zbar alone. The model assumes that
spend is independent of purchase frequency: :func:`check_independence` reports how far the data are from
that assumption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, gammaln

from core.clv._optimize import maximize_log_likelihood, standard_errors
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]

INDEPENDENCE_THRESHOLD = 0.3


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: transaction value ~ Gamma(shape p, rate nu), nu ~ Gamma(shape q, rate gamma)."""

    p: float
    q: float
    gamma: float

    @property
    def population_mean(self) -> float:
        """Mean spend per transaction across customers, gamma p / (q - 1) (infinite when q <= 1)."""
        return self.gamma * self.p / (self.q - 1.0) if self.q > 1.0 else float("inf")

    def log_likelihood(self, x: npt.ArrayLike, zbar: npt.ArrayLike) -> FloatArray:
        """Log density of each customer's mean spend zbar over x > 0 transactions."""
        xa = np.asarray(x, dtype=np.float64)
        za = np.asarray(zbar, dtype=np.float64)
        p, q, g = self.p, self.q, self.gamma
        px = p * xa
        return np.asarray(
            gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
            + (px - 1.0) * np.log(za) + px * np.log(xa) - (px + q) * np.log(g + xa * za),
            dtype=np.float64,
        )

    def conditional_expected_spend(self, x: npt.ArrayLike, zbar: npt.ArrayLike) -> FloatArray:
        """E[M | x, zbar]: expected spend per future transaction given the customer's history.

        A weighted mean of the population mean and the customer's own zbar,
        ``(q - 1)/(p x + q - 1) * gamma p/(q - 1) + p x/(p x + q - 1) * zbar``; customers with x = 0 get
        the population mean. A negative zbar (refunds beyond purchases) counts as 0.
        """
        xa = np.asarray(x, dtype=np.float64)
        za = np.maximum(np.asarray(zbar, dtype=np.float64), 0.0)
        p, q, g = self.p, self.q, self.gamma
        denominator = p * xa + q - 1.0
        own = (g + xa * np.where(xa > 0, za, 0.0)) * p / np.where(denominator > 0, denominator, 1.0)
        return np.asarray(np.where(xa > 0, own, self.population_mean), dtype=np.float64)


def expected_spend_under_draws(draws: FloatArray, x: FloatArray, zbar: FloatArray) -> FloatArray:
    """E[M | x, zbar] (:meth:`GammaGammaParams.conditional_expected_spend`) of each customer (columns) under each
    parameter set (rows of ``draws``: p, q, gamma) at once; NaN under a draw with q <= 1 (no finite mean)."""
    p, q, g = (draws[:, j, None] for j in range(3))
    own = np.where(x > 0, np.maximum(zbar, 0.0), 0.0)
    # With x = 0 this is the population mean gamma p / (q - 1), as in the method.
    denominator = p * x + q - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        spend = (g + x * own) * p / denominator
    return np.asarray(np.where(q > 1.0, spend, np.nan), dtype=np.float64)


@dataclass(frozen=True)
class IndependenceCheck:
    """Pearson correlation between frequency and mean spend of repeat customers; a warning above threshold."""

    correlation: float
    n_customers: int
    warning: str | None


@dataclass(frozen=True)
class GammaGammaFit:
    """A fitted Gamma-Gamma model with its log-likelihood, optimiser effort and independence check."""

    params: GammaGammaParams
    log_likelihood: float
    iterations: int
    evaluations: int
    message: str
    n_customers: float
    independence: IndependenceCheck
    #: Covariance of the log parameters at the optimum (Laplace approximation), in parameter order.
    covariance: FloatArray

    @property
    def standard_errors(self) -> dict[str, float]:
        """Standard errors of p, q, gamma from the inverse Hessian of the log-likelihood (NaN: not identified)."""
        p = self.params
        values = standard_errors((p.p, p.q, p.gamma), self.covariance)
        return {name: float(se) for name, se in zip(("p", "q", "gamma"), values, strict=True)}


def check_independence(
    x: npt.ArrayLike,
    zbar: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    threshold: float = INDEPENDENCE_THRESHOLD,
) -> IndependenceCheck:
    """Correlation of frequency and mean spend among customers with x > 0 (the note's model check).

    The Gamma-Gamma model assumes the two are independent; a correlation beyond ``threshold`` in absolute
    value produces a warning text. With fewer than 3 customers or no variation the correlation is 0.
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    za = np.asarray(zbar, dtype=np.float64).ravel()
    w = np.ones_like(xa) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    keep = (xa > 0) & (w > 0)
    xa, za, w = xa[keep], za[keep], w[keep]
    n = len(xa)
    corr = 0.0
    if n >= 3:
        dx = xa - np.average(xa, weights=w)
        dz = za - np.average(za, weights=w)
        sxx, szz = float(np.dot(w, dx * dx)), float(np.dot(w, dz * dz))
        if sxx > 0 and szz > 0:
            corr = float(np.dot(w, dx * dz)) / math.sqrt(sxx * szz)
    warning = None
    if abs(corr) > threshold:
        warning = (
            f"frequency and spend per transaction are correlated (Pearson r = {corr:.2f} over {n} repeat "
            "customers): the Gamma-Gamma independence assumption does not hold well, so expected spend "
            "is biased for very frequent or very rare buyers"
        )
    return IndependenceCheck(correlation=corr, n_customers=n, warning=warning)


def fit_gamma_gamma(
    x: npt.ArrayLike,
    zbar: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> GammaGammaFit:
    """Fit p, q, gamma by maximum likelihood on the customers with x > 0 and zbar > 0.

    ``x`` is the number of repeat transactions and ``zbar`` their mean value; other customers carry no
    information on spend per repeat transaction and are skipped. Terms depending on x alone are computed
    once per distinct x. Raises :class:`FitError` without usable customers, when the optimiser does not
    converge, or when q <= 1 (a spend distribution without a finite mean cannot value anyone).
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    za = np.asarray(zbar, dtype=np.float64).ravel()
    w = np.ones_like(xa) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (len(xa) == len(za) == len(w)):
        raise ValueError(f"x, zbar and weights differ in length ({len(xa)}, {len(za)}, {len(w)})")
    if not np.all(np.isfinite(xa) & np.isfinite(za) & np.isfinite(w)):
        raise ValueError("invalid Gamma-Gamma data: non-finite values")
    keep = (xa > 0) & (za > 0) & (w > 0)
    if not keep.any():
        raise FitError(
            "Gamma-Gamma cannot be fitted: no customer has a repeat purchase with a positive amount",
            hint="use the empirical spend fallback",
        )
    data = _Rows.build(xa[keep], za[keep], w[keep])
    # Fixed, data-scaled start: p = 1, q = 2 (finite mean) and gamma matching the mean spend.
    start = (1.0, 2.0, float(np.dot(data.zbar, data.w)) / data.total_weight)
    optimum = maximize_log_likelihood(data.objective, start, data.total_weight, ("p", "q", "gamma"), "Gamma-Gamma")
    p, q, g = (float(v) for v in optimum.params)
    if q <= 1.0:
        raise FitError(
            f"Gamma-Gamma fit has q = {q:.3g} <= 1: spend per transaction has no finite population mean",
            hint="a few extreme amounts dominate; check for outliers or use the empirical spend fallback",
        )
    return GammaGammaFit(
        params=GammaGammaParams(p=p, q=q, gamma=g),
        log_likelihood=optimum.log_likelihood,
        iterations=optimum.iterations,
        evaluations=optimum.evaluations,
        message=optimum.message,
        covariance=optimum.covariance,
        n_customers=data.total_weight,
        independence=check_independence(xa, za, w),
    )


@dataclass(frozen=True)
class _Rows:
    """Distinct (x, zbar) rows with x > 0, plus per-distinct-x weights for the terms depending on x alone."""

    x_values: FloatArray
    x_weight: FloatArray
    x: FloatArray
    zbar: FloatArray
    w: FloatArray
    # sum w ((p x - 1) log zbar + p x log x) = p * p_slope + fixed, computed once.
    fixed: float
    p_slope: float
    total_weight: float

    @classmethod
    def build(cls, x: FloatArray, zbar: FloatArray, w: FloatArray) -> _Rows:
        # Sorting (and merging identical rows) makes the sums, hence the fit, independent of customer order.
        order = np.lexsort((zbar, x))
        x, zbar, w = x[order], zbar[order], w[order]
        new = np.ones(len(x), dtype=bool)
        new[1:] = (x[1:] != x[:-1]) | (zbar[1:] != zbar[:-1])
        starts = np.flatnonzero(new)
        x, zbar, w = x[starts], zbar[starts], np.add.reduceat(w, starts)
        x_values, x_index = np.unique(x, return_inverse=True)
        log_z = np.log(zbar)
        return cls(
            x_values=x_values,
            x_weight=np.asarray(np.bincount(x_index, weights=w, minlength=len(x_values)), dtype=np.float64),
            x=x,
            zbar=zbar,
            w=w,
            fixed=-float(np.dot(w, log_z)),
            p_slope=float(np.dot(w, x * (log_z + np.log(x)))),
            total_weight=float(w.sum()),
        )

    def objective(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood and its gradient with respect to the log parameters."""
        p, q, g = np.exp(log_params)
        xv, wx = self.x_values, self.x_weight
        W = self.total_weight
        pxv = p * xv
        log_scale = np.log(g + self.x * self.zbar)
        px = p * self.x
        ll = (
            float(np.dot(wx, gammaln(pxv + q) - gammaln(pxv))) - W * (gammaln(q) - q * np.log(g))
            + self.fixed + p * self.p_slope - float(np.dot(self.w, (px + q) * log_scale))
        )
        g_p = float(np.dot(wx, xv * (digamma(pxv + q) - digamma(pxv)))) + self.p_slope
        g_p -= float(np.dot(self.w, self.x * log_scale))
        g_q = float(np.dot(wx, digamma(pxv + q))) - W * (digamma(q) - np.log(g)) - float(np.dot(self.w, log_scale))
        g_g = W * q / g - float(np.dot(self.w, (px + q) / (g + self.x * self.zbar)))
        grad = np.array([g_p * p, g_q * q, g_g * g]) / W
        return -ll / W, -grad
