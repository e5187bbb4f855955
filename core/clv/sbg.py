"""Shifted-beta-geometric (sBG) model of contract renewals (Fader & Hardie 2007, "How to Project Customer
Retention", Journal of Interactive Marketing 21(1), 76-90), with the discounted expected residual lifetime
of Fader & Hardie 2010 ("Customer-Base Valuation in a Contractual Setting: The Perils of Ignoring
Heterogeneity", Marketing Science 29(1), 85-93).

At each renewal opportunity a customer churns with probability theta, constant for that customer;
theta ~ Beta(alpha, beta) across customers. Periods are contract periods (months, years...). ``S(t)`` is
the probability of surviving t renewal opportunities; a customer "with n renewals" has paid n + 1 times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, digamma

from core.clv._optimize import maximize_log_likelihood
from core.clv._special import hyp2f1_real
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SbgParams:
    """sBG parameters: churn probability theta ~ Beta(alpha, beta)."""

    alpha: float
    beta: float

    def survival(self, t: npt.ArrayLike) -> FloatArray:
        """S(t) = B(alpha, beta + t) / B(alpha, beta): share of a cohort still customers after t periods."""
        tt = _periods(t)
        return np.asarray(np.exp(betaln(self.alpha, self.beta + tt) - betaln(self.alpha, self.beta)), dtype=np.float64)

    def churn_probability(self, t: npt.ArrayLike) -> FloatArray:
        """P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta): churn at the t-th opportunity, t >= 1."""
        tt = _periods(t)
        if np.any(tt < 1):
            raise ValueError("churn happens at t >= 1")
        log_p = betaln(self.alpha + 1.0, self.beta + tt - 1.0) - betaln(self.alpha, self.beta)
        return np.asarray(np.exp(log_p), dtype=np.float64)

    def retention_rate(self, t: npt.ArrayLike) -> FloatArray:
        """r_t = S(t) / S(t-1) = (beta + t - 1) / (alpha + beta + t - 1), t >= 1: rises with t."""
        tt = _periods(t)
        if np.any(tt < 1):
            raise ValueError("retention rates start at t = 1")
        return np.asarray((self.beta + tt - 1.0) / (self.alpha + self.beta + tt - 1.0), dtype=np.float64)

    def derl(self, renewals: npt.ArrayLike, discount_rate: float) -> FloatArray:
        """Discounted expected residual lifetime of a customer who has made ``renewals`` renewals.

        Fader & Hardie (2010): evaluated just before the next renewal decision, in units of the
        per-period payment, with ``discount_rate`` per period (> 0):
        ``(beta + n)/(alpha + beta + n) * 2F1(1, beta + n + 1; alpha + beta + n + 1; 1/(1 + d))``.
        Multiply by the margin per period to get the customer's residual value.
        """
        if not discount_rate > 0:
            raise ValueError("DERL needs a discount rate > 0 (without discounting it is infinite for alpha <= 1)")
        n = _periods(renewals)
        # Renewal counts are few distinct integers: evaluate each once.
        values, inverse = np.unique(n, return_inverse=True)
        renew = (self.beta + values) / (self.alpha + self.beta + values)
        upper = self.beta + values + 1.0
        series = hyp2f1_real(1.0, upper, upper + self.alpha, 1.0 / (1.0 + discount_rate))
        return np.asarray((renew * series)[inverse].reshape(n.shape), dtype=np.float64)

    def expected_renewals(self, renewals: npt.ArrayLike, horizon: int) -> FloatArray:
        """Expected number of further renewals within the next ``horizon`` opportunities, given n renewals.

        Sums S(n + k) / S(n) for k = 1..horizon. Unlike the untruncated mean, (beta + n)/(alpha - 1),
        it is finite for every alpha.
        """
        if horizon < 0:
            raise ValueError("horizon must be >= 0")
        n = _periods(renewals)
        values, inverse = np.unique(n, return_inverse=True)
        k = np.arange(horizon, dtype=np.float64)[:, None]
        steps = (self.beta + values + k) / (self.alpha + self.beta + values + k)
        total = np.cumprod(steps, axis=0).sum(axis=0) if horizon else np.zeros(len(values))
        return np.asarray(total[inverse].reshape(n.shape), dtype=np.float64)


@dataclass(frozen=True)
class SbgFit:
    """A fitted sBG model with its log-likelihood and optimiser effort."""

    params: SbgParams
    log_likelihood: float
    iterations: int
    evaluations: int
    message: str
    n_customers: float


def fit_sbg(survivors: npt.ArrayLike) -> SbgFit:
    """Fit alpha, beta to one cohort's survivor counts: customers alive at the start of periods 0, 1, ..., n.

    ``survivors[0]`` is the cohort size; ``survivors[t] - survivors[t+1]`` churned at opportunity t + 1 and
    the last count is still alive (censored): the paper's likelihood, summed over the cohort.
    """
    s = np.asarray(survivors, dtype=np.float64).ravel()
    if len(s) < 2 or np.any(~np.isfinite(s)) or np.any(np.diff(s) > 0) or s[-1] < 0:
        raise ValueError("survivors must be at least two finite, non-increasing, non-negative counts")
    t = np.arange(1, len(s), dtype=np.float64)
    return fit_sbg_durations(np.r_[t, t[-1]], np.r_[np.ones(len(t), bool), False], weights=np.r_[-np.diff(s), s[-1]])


def fit_sbg_durations(
    periods: npt.ArrayLike, churned: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> SbgFit:
    """Fit alpha, beta to per-customer durations: ``periods`` renewal opportunities observed and whether the
    customer churned at the last one (``churned``) or is still a customer (censored).

    Customers acquired at different times mix freely, each with its own observation length.
    """
    t = np.asarray(periods, dtype=np.float64).ravel()
    dead = np.asarray(churned, dtype=bool).ravel()
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (len(t) == len(dead) == len(w)):
        raise ValueError("periods, churned and weights differ in length")
    if np.any(~np.isfinite(t)) or np.any(t < 0) or np.any(t != np.floor(t)) or np.any(dead & (t < 1)):
        raise ValueError("periods must be non-negative integers (>= 1 for churned customers)")
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    churned_weight = float(w[dead].sum())
    if churned_weight <= 0:
        raise FitError("sBG cannot be fitted: nobody churned, so churn probability is not identified")
    if float(np.dot(w, t)) <= churned_weight:
        raise FitError("sBG cannot be fitted: everybody churned at the first opportunity")
    rows = _Rows.build(t, dead, w)
    optimum = maximize_log_likelihood(rows.objective, (1.0, 1.0), rows.total_weight, ("alpha", "beta"), "sBG")
    alpha, beta = (float(v) for v in optimum.params)
    return SbgFit(
        params=SbgParams(alpha=alpha, beta=beta),
        log_likelihood=optimum.log_likelihood,
        iterations=optimum.iterations,
        evaluations=optimum.evaluations,
        message=optimum.message,
        n_customers=rows.total_weight,
    )


def _periods(t: npt.ArrayLike) -> FloatArray:
    tt = np.asarray(t, dtype=np.float64)
    if np.any(~np.isfinite(tt)) or np.any(tt < 0):
        raise ValueError("periods must be finite and >= 0")
    return tt


@dataclass(frozen=True)
class _Rows:
    """Distinct (periods, churned) with weights."""

    t_churned: FloatArray
    w_churned: FloatArray
    t_alive: FloatArray
    w_alive: FloatArray
    total_weight: float

    @classmethod
    def build(cls, t: FloatArray, dead: npt.NDArray[np.bool_], w: FloatArray) -> _Rows:
        tc, ic = np.unique(t[dead], return_inverse=True)
        ta, ia = np.unique(t[~dead], return_inverse=True)
        return cls(
            t_churned=tc,
            w_churned=np.asarray(np.bincount(ic, weights=w[dead], minlength=len(tc)), dtype=np.float64),
            t_alive=ta,
            w_alive=np.asarray(np.bincount(ia, weights=w[~dead], minlength=len(ta)), dtype=np.float64),
            total_weight=float(w.sum()),
        )

    def objective(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood and its gradient with respect to log alpha, log beta."""
        alpha, beta = np.exp(log_params)
        tc, wc, ta, wa = self.t_churned, self.w_churned, self.t_alive, self.w_alive
        base = betaln(alpha, beta)
        # log P(T = t) = lB(alpha + 1, beta + t - 1) - lB(alpha, beta); log S(t) = lB(alpha, beta + t) - lB(...)
        ll = float(np.dot(wc, betaln(alpha + 1.0, beta + tc - 1.0) - base))
        ll += float(np.dot(wa, betaln(alpha, beta + ta) - base))
        d_base_alpha = digamma(alpha) - digamma(alpha + beta)
        d_base_beta = digamma(beta) - digamma(alpha + beta)
        g_alpha = float(
            np.dot(wc, digamma(alpha + 1.0) - digamma(alpha + beta + tc) - d_base_alpha)
            + np.dot(wa, digamma(alpha) - digamma(alpha + beta + ta) - d_base_alpha)
        )
        g_beta = float(
            np.dot(wc, digamma(beta + tc - 1.0) - digamma(alpha + beta + tc) - d_base_beta)
            + np.dot(wa, digamma(beta + ta) - digamma(alpha + beta + ta) - d_base_beta)
        )
        W = self.total_weight
        return -ll / W, -np.array([g_alpha * alpha, g_beta * beta]) / W
