"""BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way:
An Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275-284).

While alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after every purchase
they drop out with probability p ~ Beta(a, b). A customer's history is summarised by (x, t_x, T): x repeat
purchases, the last at t_x, observed over (0, T].

Equation numbers refer to the paper. Everything is computed in log space with ``gammaln``/``logaddexp``,
so frequencies in the thousands, T = 0 and customers without repeats are all finite. The Gauss
hypergeometric function of eq. (10) is taken in whichever of its two Euler-equivalent forms stays bounded
(for frequent buyers, the one whose upper parameters do not grow with x); the rare overflows left, for
extreme parameters, are computed from the defining integral by Gauss-Jacobi quadrature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betainc, betaln, digamma, expit, gammaln, roots_jacobi, xlogy

from core.clv._optimize import maximize_log_likelihood
from core.clv._special import hyp2f1_real
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]

_QUADRATURE_NODES = 64
# Within this distance of a = 1, eq. (10)'s bracket loses digits to cancellation (about 1e-16 / |a - 1|).
_SINGULAR_STEP = 1e-4


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rate lambda ~ Gamma(shape r, rate alpha); dropout p ~ Beta(a, b).

    ``alpha`` is in the time unit of the data it was fitted on (e.g. weeks).
    """

    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """Log-likelihood of each customer's (x, t_x, T) (eq. 6, in log space)."""
        xa, txa, Ta = _as_float(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        # eq. 6 = A * [B(a, b+x)/B(a,b) (alpha+T)^-(r+x) + [x>0] B(a+1, b+x-1)/B(a,b) (alpha+t_x)^-(r+x)]
        log_common = gammaln(r + xa) - gammaln(r) + r * np.log(alpha)
        log_alive = betaln(a, b + xa) - betaln(a, b) - (r + xa) * np.log(alpha + Ta)
        repeat = xa > 0
        safe_b = np.where(repeat, b + xa - 1.0, 1.0)
        log_dropped = betaln(a + 1.0, safe_b) - betaln(a, b) - (r + xa) * np.log(alpha + txa)
        both = np.logaddexp(log_alive, np.where(repeat, log_dropped, -np.inf))
        return np.asarray(log_common + both, dtype=np.float64)

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T): 1 for x = 0, else 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
        (Fader, Hardie & Lee 2008, "Computing P(alive) Using the BG/NBD Model"), as a logistic of the log-odds."""
        xa, txa, Ta = _as_float(x, t_x, T)
        repeat = xa > 0
        log_odds_dead = (
            np.log(self.a)
            - np.log(np.where(repeat, self.b + xa - 1.0, 1.0))
            + (self.r + xa) * np.log1p((Ta - txa) / (self.alpha + txa))
        )
        return np.asarray(np.where(repeat, expit(-log_odds_dead), 1.0), dtype=np.float64)

    def conditional_expected_purchases(
        self, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t] for a customer with that history (eq. 10).

        Broadcasts ``t`` against the customer arrays (e.g. ``t[:, None]`` for several horizons at once).
        """
        return np.asarray(self.p_alive(x, t_x, T) * self.expected_purchases_if_alive(t, x, T), dtype=np.float64)

    def expected_purchases_if_alive(self, t: npt.ArrayLike, x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """E[Y(t) | alive at T, x, T]: the factor of eq. (10) besides P(alive); it does not depend on t_x.

        Broadcasts ``t`` against ``x`` and ``T``.
        """
        tt, xa, Ta = _as_float(t, x, T)
        if np.any(tt < 0):
            raise ValueError("horizons t must be >= 0")
        return _expected_while_alive(tt, self.r + xa, self.alpha + Ta, self.a, self.b + xa)

    def expected_purchases(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)]: expected purchases in (0, t] for a customer just acquired at time 0 (eq. 9)."""
        (tt,) = _as_float(t)
        if np.any(tt < 0):
            raise ValueError("horizons t must be >= 0")
        return _expected_while_alive(tt, np.float64(self.r), np.float64(self.alpha), self.a, np.float64(self.b))

    def p_purchases(self, k: npt.ArrayLike, t: npt.ArrayLike) -> FloatArray:
        """P(X(t) = k): probability of exactly k purchases in (0, t] for a new customer (eq. 8)."""
        kk, tt = _as_float(k, t)
        if np.any(kk < 0) or np.any(kk != np.floor(kk)):
            raise ValueError("k must be a non-negative integer")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        share = tt / (alpha + tt)
        # NB(r, alpha/(alpha+t)) pmf at k, the count while alive throughout.
        log_nb = gammaln(r + kk) - gammaln(r) - gammaln(kk + 1.0) - r * np.log1p(tt / alpha) + xlogy(kk, share)
        alive = np.exp(betaln(a, b + kk) - betaln(a, b) + log_nb)
        repeat = kk > 0
        safe_k = np.where(repeat, kk, 1.0)
        # Dropped after the k-th purchase: needs at least k purchases while alive, P(NB >= k) = I_share(k, r).
        dropped = np.exp(betaln(a + 1.0, b + safe_k - 1.0) - betaln(a, b)) * betainc(safe_k, r, share)
        return np.asarray(alive + np.where(repeat, dropped, 0.0), dtype=np.float64)


@dataclass(frozen=True)
class BgNbdFit:
    """A fitted BG/NBD model: parameters, maximised log-likelihood and how the optimiser got there."""

    params: BgNbdParams
    log_likelihood: float
    iterations: int
    evaluations: int
    message: str
    n_customers: float
    n_distinct_rows: int
    #: Covariance of the log parameters at the optimum (Laplace approximation), in parameter order.
    covariance: FloatArray


def fit_bgnbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> BgNbdFit:
    """Fit r, alpha, a, b by maximum likelihood (eq. 6) from per-customer (x, t_x, T).

    ``weights`` counts how many customers each row stands for (default 1). Identical rows are merged
    first, and every term that depends on x alone is computed once per distinct x, so the cost per
    iteration is a handful of vector operations over the distinct rows. The optimiser (L-BFGS-B on the
    log parameters, analytic gradient) starts from a fixed point, so the fit is deterministic.

    Raises :class:`FitError` when there is no repeat purchase at all, or when the optimiser does not
    converge to finite, identified parameters.
    """
    xa, txa, Ta = _as_float(x, t_x, T)
    xa, txa, Ta = np.broadcast_arrays(xa, txa, Ta)
    w = np.ones(xa.shape) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), xa.shape)
    _validate(xa.ravel(), txa.ravel(), Ta.ravel(), w.ravel())
    data = _Rows.build(xa.ravel(), txa.ravel(), Ta.ravel(), w.ravel())
    if data.total_repeat_weight <= 0:
        raise FitError(
            "BG/NBD cannot be fitted: no customer has a repeat purchase",
            hint="CLV needs customers who bought at least twice; use the empirical fallback",
        )
    # A fixed, data-scaled start: r = 1 and alpha matching the mean repeat rate, a = b = 1.
    mean_rate = data.total_repeat_weight / max(data.total_exposure, 1e-12)
    start = (1.0, float(np.clip(1.0 / mean_rate, 1e-6, 1e6)), 1.0, 1.0)
    optimum = maximize_log_likelihood(data.objective, start, data.total_weight, ("r", "alpha", "a", "b"), "BG/NBD")
    r, alpha, a, b = (float(v) for v in optimum.params)
    return BgNbdFit(
        params=BgNbdParams(r=r, alpha=alpha, a=a, b=b),
        log_likelihood=optimum.log_likelihood,
        iterations=optimum.iterations,
        evaluations=optimum.evaluations,
        message=optimum.message,
        covariance=optimum.covariance,
        n_customers=data.total_weight,
        n_distinct_rows=data.n_rows,
    )


def p_alive_under_draws(draws: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """P(alive at T | x, t_x, T) of each customer (columns) under each parameter set (rows of ``draws``: r, alpha,
    a, b), the closed form of :meth:`BgNbdParams.p_alive` for all draws at once.

    Its log-odds a/(b+x-1) + (r+x) [log(alpha+T) - log(alpha+t_x)] take the logarithms from a table per draw and
    distinct time, and the x-only term from one per draw and distinct x, so each (draw, customer) costs a few
    look-ups and one logistic. The difference of logarithms is within 1e-15 absolute of log1p's.
    """
    r, alpha, a, b = (column[:, None] for column in draws.T)
    xs, at_x = np.unique(x, return_inverse=True)
    times, at_time = np.unique(np.concatenate([T, t_x]), return_inverse=True)
    log_time = np.log(alpha + times)
    log_odds_x = np.log(a) - np.log(np.where(xs > 0, b + xs - 1.0, 1.0))
    log_odds_dead = np.take(log_odds_x, at_x, axis=1) + (r + x) * (
        np.take(log_time, at_time[: len(T)], axis=1) - np.take(log_time, at_time[len(T) :], axis=1)
    )
    alive = np.asarray(expit(-log_odds_dead), dtype=np.float64)
    alive[:, x == 0] = 1.0  # without a repeat purchase a BG/NBD customer cannot have dropped out
    return alive


def _as_float(*arrays: npt.ArrayLike) -> tuple[FloatArray, ...]:
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def _validate(x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> None:
    checks = [
        (np.all(np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T) & np.isfinite(w)), "non-finite values"),
        (np.all(x >= 0) and np.all(x == np.floor(x)), "frequency x must be a non-negative integer"),
        (np.all((t_x >= 0) & (t_x <= T)), "recency must satisfy 0 <= t_x <= T"),
        (np.all(t_x[x == 0] == 0), "recency t_x must be 0 when x = 0"),
        (np.all(w >= 0), "weights must be >= 0"),
    ]
    problems = [msg for ok, msg in checks if not ok]
    if problems:
        raise ValueError("invalid BG/NBD data: " + "; ".join(problems))


def _expected_while_alive(
    t: FloatArray, r: FloatArray | np.float64, alpha: FloatArray | np.float64, a: float, b: FloatArray | np.float64
) -> FloatArray:
    """Expected purchases in the next t for a customer alive now whose rate ~ Gamma(r, alpha) and dropout
    ~ Beta(a, b): (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))] (eqs. 9 and 10,
    with the posterior parameters r+x, alpha+T, b+x for eq. 10)."""
    if abs(a - 1.0) < _SINGULAR_STEP:
        # a = 1 is a removable singularity where the bracket cancels to 0/0: interpolate linearly
        # between the two sides, exact to O(_SINGULAR_STEP**2).
        below = _closed_form(t, r, alpha, 1.0 - _SINGULAR_STEP, b)
        above = _closed_form(t, r, alpha, 1.0 + _SINGULAR_STEP, b)
        share = (a - 1.0 + _SINGULAR_STEP) / (2.0 * _SINGULAR_STEP)
        return np.asarray(below + share * (above - below), dtype=np.float64)
    return _closed_form(t, r, alpha, a, b)


def _closed_form(
    t: FloatArray, r: FloatArray | np.float64, alpha: FloatArray | np.float64, a: float, b: FloatArray | np.float64
) -> FloatArray:
    t, r, alpha, b = np.broadcast_arrays(t, r, alpha, b)
    # c = a+b-1 only reaches 0 for x = 0 and a+b = 1 exactly, a pole of 2F1 that the factor c cancels;
    # c * 2F1 is smooth there, so moving c by 1e-12 changes the result by about as much.
    b = np.where(np.abs(a + b - 1.0) < 1e-12, 1.0 - a + 1e-12, b)
    c = a + b - 1.0
    z = t / (alpha + t)
    # (1-z)^r 2F1(r, b; c; z) equals, by Euler's transformation, (1-z)^(a-1) 2F1(c-r, a-1; c; z). Near z = 1
    # a 2F1 grows like (1-z)^(c-A-B): the first form stays bounded when a-1 > r, the second when r > a-1
    # (always the case for frequent buyers, whose r+x is large), so each customer gets the bounded one.
    direct = a - 1.0 > r
    upper_1 = np.where(direct, r, c - r)
    upper_2 = np.where(direct, b, a - 1.0)
    power = np.where(direct, r, a - 1.0)
    # Overflow is detected below and handled by quadrature, so numpy need not warn about it.
    with np.errstate(over="ignore", invalid="ignore"):
        f = hyp2f1_real(upper_1, upper_2, c, z)
        # 1 - (1-z)^power f computed as -expm1(log(...)) so that short horizons keep their digits.
        positive = f > 0
        log_term = power * np.log1p(-z) + np.log(np.where(positive, f, 1.0))
        bracket = np.where(positive, -np.expm1(log_term), 1.0 - (1.0 - z) ** power * f)
        value = np.array(c / (a - 1.0) * bracket, dtype=np.float64)
    failed = ~np.isfinite(value)
    if np.any(failed):
        value[failed] = _by_quadrature(t[failed], r[failed], alpha[failed], a, b[failed])
        if not np.all(np.isfinite(value)):
            raise FitError(
                f"BG/NBD expected purchases cannot be evaluated at r={float(np.max(r)):.4g}, "
                f"alpha={float(np.max(alpha)):.4g}, a={a:.4g}, b={float(np.max(b)):.4g}: degenerate parameters",
                hint="parameters this extreme come from data without heterogeneity; use the empirical fallback",
            )
    return np.asarray(np.maximum(value, 0.0), dtype=np.float64)


def _by_quadrature(t: FloatArray, r: FloatArray, alpha: FloatArray, a: float, b: FloatArray) -> FloatArray:
    """The same expectation as the defining integral over the dropout probability p ~ Beta(a, b):
    E[(1 - (alpha/(alpha + p t))^r) / p], by Gauss-Jacobi quadrature (one node set per distinct b).

    Used where 2F1 overflows: large a with r close to a - 1, where 2F1 is astronomically large and its
    prefactor astronomically small. There the Beta is concentrated and the integrand smooth, so 64 nodes
    give full precision.
    """
    out = np.empty(len(t))
    for value in np.unique(b):
        rows = b == value
        # roots_jacobi overflows (NaN weights) once a + b reaches about a thousand; the caller reports it.
        with np.errstate(all="ignore"):
            u, w = roots_jacobi(_QUADRATURE_NODES, value - 1.0, a - 1.0)
            p = 0.5 * (1.0 + u)
            # The Jacobi weight (1-u)^(b-1) (1+u)^(a-1) is the Beta(a, b) density of p up to a constant, so
            # normalised weights give the expectation without forming that constant.
            integrand = -np.expm1(-r[rows, None] * np.log1p(p * t[rows, None] / alpha[rows, None])) / p
            out[rows] = integrand @ (w / w.sum())
    return out


@dataclass(frozen=True)
class _Rows:
    """Distinct (x, t_x, T) rows with weights, pre-split for the likelihood.

    Customers without repeats contribute r log(alpha/(alpha+T)) only, so they are kept as distinct T
    values. For repeat customers, every term depending on x alone is evaluated per distinct x.
    """

    T0: FloatArray
    w0: FloatArray
    x_values: FloatArray
    x_weight: FloatArray
    x_index: npt.NDArray[np.intp]
    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    w: FloatArray
    total_weight: float
    total_repeat_weight: float
    total_exposure: float
    n_rows: int

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> _Rows:
        keep = (w > 0) & (T > 0)
        x, t_x, T, w = x[keep], t_x[keep], T[keep], w[keep]
        none = x == 0
        T0, inverse0 = np.unique(T[none], return_inverse=True)
        w0 = np.asarray(np.bincount(inverse0, weights=w[none], minlength=len(T0)), dtype=np.float64)
        rx, rt, rT, rw = x[~none], t_x[~none], T[~none], w[~none]
        order = np.lexsort((rT, rt, rx))
        rx, rt, rT, rw = rx[order], rt[order], rT[order], rw[order]
        new = np.ones(len(rx), dtype=bool)
        new[1:] = (rx[1:] != rx[:-1]) | (rt[1:] != rt[:-1]) | (rT[1:] != rT[:-1])
        starts = np.flatnonzero(new)
        rx, rt, rT, rw = rx[starts], rt[starts], rT[starts], np.add.reduceat(rw, starts)
        x_values, x_index = np.unique(rx, return_inverse=True)
        return cls(
            T0=T0,
            w0=w0,
            x_values=x_values,
            x_weight=np.asarray(np.bincount(x_index, weights=rw, minlength=len(x_values)), dtype=np.float64),
            x_index=x_index,
            x=rx,
            t_x=rt,
            T=rT,
            w=rw,
            # From the sorted rows, so that the starting point (hence the fit) ignores customer order.
            total_weight=float(w0.sum() + rw.sum()),
            total_repeat_weight=float(np.dot(rx, rw)),
            total_exposure=float(np.dot(T0, w0) + np.dot(rT, rw)),
            n_rows=len(T0) + len(rx),
        )

    def objective(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood and its gradient with respect to the log parameters."""
        r, alpha, a, b = np.exp(log_params)
        xv, wx = self.x_values, self.x_weight
        W = self.total_weight

        # Customers without repeats: r [log alpha - log(alpha + T)].
        log_ratio0 = np.log(alpha) - np.log(alpha + self.T0)
        ll = r * np.dot(self.w0, log_ratio0)
        g_r = np.dot(self.w0, log_ratio0)
        g_alpha = r * np.dot(self.w0, 1.0 / alpha - 1.0 / (alpha + self.T0))
        g_a = 0.0
        g_b = 0.0

        if len(self.x):
            # Terms of eq. 6 that depend on x only, once per distinct x.
            Wr = float(wx.sum())
            log_beta_ratio = gammaln(a + b) - gammaln(b) - gammaln(a + b + xv) + gammaln(b + xv)
            ll += float(np.dot(wx, gammaln(r + xv) - gammaln(r) + log_beta_ratio)) + r * np.log(alpha) * Wr
            g_r += float(np.dot(wx, digamma(r + xv) - digamma(r)) + np.log(alpha) * Wr)
            g_alpha += r * Wr / alpha
            g_a += float(np.dot(wx, digamma(a + b) - digamma(a + b + xv)))
            g_b += float(np.dot(wx, digamma(a + b) - digamma(b) - digamma(a + b + xv) + digamma(b + xv)))

            # Per row: log[(alpha+T)^-m + a/(b+x-1) (alpha+t_x)^-m], m = r + x, as
            # -m log(alpha+T) + softplus(d) with d = log(a/(b+x-1)) + m log((alpha+T)/(alpha+t_x)).
            log_odds_x = np.log(a) - np.log(b + xv - 1.0)
            m = r + self.x
            inv_t = 1.0 / (alpha + self.t_x)
            inv_T = 1.0 / (alpha + self.T)
            log_t = np.log(alpha + self.t_x)
            gap = np.log1p((self.T - self.t_x) * inv_t)
            d = log_odds_x[self.x_index] + m * gap
            dropped = expit(d)  # share of the likelihood from "dropped out after t_x"
            ll += float(np.dot(self.w, np.logaddexp(0.0, d) - m * (log_t + gap)))
            wd = self.w * dropped
            g_r += float(np.dot(wd, gap) - np.dot(self.w, log_t + gap))
            g_alpha += float(np.dot(self.w * m, dropped * (inv_T - inv_t) - inv_T))
            dropped_x = np.bincount(self.x_index, weights=wd, minlength=len(xv))
            g_a += float(dropped_x.sum()) / a
            g_b -= float(np.dot(dropped_x, 1.0 / (b + xv - 1.0)))

        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b]) / W
        return -float(ll) / W, -grad
