"""MBG/NBD model of repeat purchasing (Batislam, Denizel & Filiztekin 2007, "Empirical validation and
comparison of models for customer base analysis", International Journal of Research in Marketing 24(3),
201-209).

As BG/NBD (Fader, Hardie & Lee 2005), a living customer buys as a Poisson process with rate
lambda ~ Gamma(r, alpha) and drops out with probability p ~ Beta(a, b) at each purchase, but here also at
time 0, right after the first purchase. So a customer without repeat purchases may be dead (in BG/NBD they
are certainly alive), which stops the model from predicting purchases by one-time buyers gone long ago.

Likelihood (Batislam et al.), in log space:

    L = B(a, b+x+1)/B(a, b) Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
        + B(a+1, b+x)/B(a, b) Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))

The expectations reuse the BG/NBD closed form: alive at T after x repeat purchases means x + 1 survived
dropout chances, so the posterior of p is Beta(a, b + x + 1) where BG/NBD has Beta(a, b + x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betainc, betaln, digamma, expit, gammaln, xlogy

from core.clv._history import validate_history
from core.clv._optimize import maximize_log_likelihood
from core.clv.bgnbd import _expected_while_alive
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MbgNbdParams:
    """MBG/NBD parameters: purchase rate lambda ~ Gamma(shape r, rate alpha); dropout p ~ Beta(a, b).

    ``alpha`` is in the time unit of the data it was fitted on (e.g. weeks).
    """

    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """Log-likelihood of each customer's (x, t_x, T) (Batislam et al. 2007)."""
        xa, txa, Ta = _as_float(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        log_common = gammaln(r + xa) - gammaln(r) + r * np.log(alpha)
        log_alive = (
            gammaln(a + b) + gammaln(b + xa + 1.0) - gammaln(b) - gammaln(a + b + xa + 1.0)
            - (r + xa) * np.log(alpha + Ta)
        )
        log_either = np.logaddexp(0.0, self._log_odds_dead(xa, txa, Ta))
        return np.asarray(log_common + log_alive + log_either, dtype=np.float64)

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)), below 1 also for x = 0."""
        xa, txa, Ta = _as_float(x, t_x, T)
        return np.asarray(expit(-self._log_odds_dead(xa, txa, Ta)), dtype=np.float64)

    def conditional_expected_purchases(
        self, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t] (Batislam et al. 2007):
        P(alive) (a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; t/(alpha+T+t))].

        Broadcasts ``t`` against the customer arrays (e.g. ``t[:, None]`` for several horizons at once).
        """
        return np.asarray(self.p_alive(x, t_x, T) * self.expected_purchases_if_alive(t, x, T), dtype=np.float64)

    def expected_purchases_if_alive(self, t: npt.ArrayLike, x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """E[Y(t) | alive at T, x, T], the factor of the conditional expectation besides P(alive)."""
        tt, xa, Ta = _as_float(t, x, T)
        if np.any(tt < 0):
            raise ValueError("horizons t must be >= 0")
        return _expected_while_alive(tt, self.r + xa, self.alpha + Ta, self.a, self.b + xa + 1.0)

    def expected_purchases(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)] for a customer acquired at 0 (Batislam et al. 2007): b/(a-1) [1 - (alpha/(alpha+t))^r
        2F1(r, b+1; a+b; t/(alpha+t))], i.e. the chance b/(a+b) of surviving time 0 times the expectation
        of a living customer whose dropout is Beta(a, b+1)."""
        (tt,) = _as_float(t)
        if np.any(tt < 0):
            raise ValueError("horizons t must be >= 0")
        alive = _expected_while_alive(tt, np.float64(self.r), np.float64(self.alpha), self.a, np.float64(self.b + 1.0))
        return np.asarray(self.b / (self.a + self.b) * alive, dtype=np.float64)

    def p_purchases(self, k: npt.ArrayLike, t: npt.ArrayLike) -> FloatArray:
        """P(X(t) = k) for a customer acquired at 0. As for BG/NBD (Fader, Hardie & Lee 2005, eq. 8), with the
        MBG/NBD's extra coin at time 0: alive throughout after k + 1 survivals, B(a, b+k+1)/B(a, b) times the
        NB(r, alpha/(alpha+t)) pmf at k; or dropped right after the k-th purchase (k = 0: at once),
        B(a+1, b+k)/B(a, b), which needs k purchases before t, P(NB >= k) = I_share(k, r) (1 for k = 0)."""
        kk, tt = _as_float(k, t)
        if np.any(kk < 0) or np.any(kk != np.floor(kk)):
            raise ValueError("k must be a non-negative integer")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        share = tt / (alpha + tt)
        log_nb = gammaln(r + kk) - gammaln(r) - gammaln(kk + 1.0) - r * np.log1p(tt / alpha) + xlogy(kk, share)
        alive = np.exp(betaln(a, b + kk + 1.0) - betaln(a, b) + log_nb)
        reached = np.where(kk > 0, betainc(np.where(kk > 0, kk, 1.0), r, share), 1.0)
        dropped = np.exp(betaln(a + 1.0, b + kk) - betaln(a, b)) * reached
        return np.asarray(alive + dropped, dtype=np.float64)

    def _log_odds_dead(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        gap = np.log1p((T - t_x) / (self.alpha + t_x))
        return np.asarray(np.log(self.a) - np.log(self.b + x) + (self.r + x) * gap, dtype=np.float64)


@dataclass(frozen=True)
class MbgNbdFit:
    """A fitted MBG/NBD model: parameters, maximised log-likelihood and how the optimiser got there."""

    params: MbgNbdParams
    log_likelihood: float
    iterations: int
    evaluations: int
    message: str
    n_customers: float
    n_distinct_rows: int
    #: Covariance of the log parameters at the optimum (Laplace approximation), in parameter order.
    covariance: FloatArray


def fit_mbgnbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> MbgNbdFit:
    """Fit r, alpha, a, b by maximum likelihood from per-customer (x, t_x, T).

    ``weights`` counts how many customers each row stands for (default 1); identical rows are merged and
    the terms that depend on x alone are computed once per distinct x. Deterministic (fixed start).

    Raises :class:`FitError` when there is no repeat purchase at all, or when the optimiser does not
    converge to finite, identified parameters.
    """
    xa, txa, Ta = np.broadcast_arrays(*_as_float(x, t_x, T))
    w = np.ones(xa.shape) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), xa.shape)
    xa, txa, Ta, w = xa.ravel(), txa.ravel(), Ta.ravel(), w.ravel()
    validate_history(xa, txa, Ta, w, "MBG/NBD")
    rows = _Rows.build(xa, txa, Ta, w)
    if rows.total_repeat_weight <= 0:
        raise FitError(
            "MBG/NBD cannot be fitted: no customer has a repeat purchase",
            hint="CLV needs customers who bought at least twice; use the empirical fallback",
        )
    mean_rate = rows.total_repeat_weight / max(rows.total_exposure, 1e-12)
    start = (1.0, float(np.clip(1.0 / mean_rate, 1e-6, 1e6)), 1.0, 1.0)
    optimum = maximize_log_likelihood(rows.objective, start, rows.total_weight, ("r", "alpha", "a", "b"), "MBG/NBD")
    r, alpha, a, b = (float(v) for v in optimum.params)
    return MbgNbdFit(
        params=MbgNbdParams(r=r, alpha=alpha, a=a, b=b),
        log_likelihood=optimum.log_likelihood,
        iterations=optimum.iterations,
        evaluations=optimum.evaluations,
        message=optimum.message,
        covariance=optimum.covariance,
        n_customers=rows.total_weight,
        n_distinct_rows=len(rows.x),
    )


def _as_float(*arrays: npt.ArrayLike) -> tuple[FloatArray, ...]:
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


@dataclass(frozen=True)
class _Rows:
    """Distinct (x, t_x, T) rows with weights; ``x_values``/``x_index`` map rows to their distinct x."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    w: FloatArray
    x_values: FloatArray
    x_weight: FloatArray
    x_index: npt.NDArray[np.intp]
    total_weight: float
    total_repeat_weight: float
    total_exposure: float

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> _Rows:
        keep = (w > 0) & (T > 0)
        x, t_x, T, w = x[keep], t_x[keep], T[keep], w[keep]
        order = np.lexsort((T, t_x, x))
        x, t_x, T, w = x[order], t_x[order], T[order], w[order]
        new = np.ones(len(x), dtype=bool)
        new[1:] = (x[1:] != x[:-1]) | (t_x[1:] != t_x[:-1]) | (T[1:] != T[:-1])
        starts = np.flatnonzero(new)
        x, t_x, T = x[starts], t_x[starts], T[starts]
        w = np.add.reduceat(w, starts) if len(starts) else w[:0]
        x_values, x_index = np.unique(x, return_inverse=True)
        return cls(
            x=x,
            t_x=t_x,
            T=T,
            w=w,
            x_values=x_values,
            x_weight=np.asarray(np.bincount(x_index, weights=w, minlength=len(x_values)), dtype=np.float64),
            x_index=x_index,
            total_weight=float(w.sum()),
            total_repeat_weight=float(np.dot(x, w)),
            total_exposure=float(np.dot(T, w)),
        )

    def objective(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood and its gradient with respect to the log parameters."""
        r, alpha, a, b = np.exp(log_params)
        xv, wx = self.x_values, self.x_weight
        # Terms in x alone, once per distinct x: log Gamma(r+x)/Gamma(r) + log B(a, b+x+1)/B(a, b).
        ll = float(np.dot(wx, gammaln(r + xv) - gammaln(r) + gammaln(a + b) + gammaln(b + xv + 1.0)
                          - gammaln(b) - gammaln(a + b + xv + 1.0)))
        ll += r * np.log(alpha) * self.total_weight
        g_r = float(np.dot(wx, digamma(r + xv) - digamma(r))) + np.log(alpha) * self.total_weight
        g_alpha = r * self.total_weight / alpha
        g_a = float(np.dot(wx, digamma(a + b) - digamma(a + b + xv + 1.0)))
        g_b = float(np.dot(wx, digamma(a + b) + digamma(b + xv + 1.0) - digamma(b) - digamma(a + b + xv + 1.0)))

        # Per row: -m log(alpha+T) + softplus(d), d = log(a/(b+x)) + m log((alpha+T)/(alpha+t_x)), m = r + x.
        m = r + self.x
        inv_t = 1.0 / (alpha + self.t_x)
        inv_T = 1.0 / (alpha + self.T)
        log_T = np.log(alpha + self.T)
        gap = np.log1p((self.T - self.t_x) * inv_t)
        d = (np.log(a) - np.log(b + xv))[self.x_index] + m * gap
        dead = expit(d)
        ll += float(np.dot(self.w, np.logaddexp(0.0, d) - m * log_T))
        wd = self.w * dead
        g_r += float(np.dot(wd, gap) - np.dot(self.w, log_T))
        g_alpha += float(np.dot(self.w * m, dead * (inv_T - inv_t) - inv_T))
        dead_x = np.bincount(self.x_index, weights=wd, minlength=len(xv))
        g_a += float(dead_x.sum()) / a
        g_b -= float(np.dot(dead_x, 1.0 / (b + xv)))

        W = self.total_weight
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b]) / W
        return -ll / W, -grad
