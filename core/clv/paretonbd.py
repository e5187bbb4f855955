"""Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo 1987, "Counting Your Customers:
Who Are They and What Will They Do Next?", Management Science 33(1), 1-24), with the likelihood as derived
in Fader, Hardie & Lee (2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions"
(http://brucehardie.com/notes/009/pareto_nbd_derivations_2005-11-05.pdf).

While alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); their lifetime is
exponential with rate mu ~ Gamma(s, beta), unobserved. History (x, t_x, T) as for BG/NBD.

The note writes the likelihood as

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [(alpha+T)^-(r+x) (beta+T)^-s + s/(r+s+x) A_0]

where A_0 is a difference of two 2F1 terms. That difference is the integral over the death
time tau in (t_x, T] of (alpha+tau)^-(r+x) (beta+tau)^-(s+1), and cancels catastrophically when t_x is
close to T; here the two ends G(t_x), G(T) of that integral are kept in log space and subtracted as
G(t_x) (1 - exp(log G(T) - log G(t_x))). With the note's choice of the larger of alpha, beta, the 2F1
argument z lies in [0, 1) (its |z| < 1 form); after Euler's transformation the series
2F1(1, c'; k+1; z) with c' < k + 1 has terms that fall at least as fast as z^n, so it is summed directly,
together with its derivatives in closed form (digamma differences as running sums). That makes the
gradient analytic; the two forms meet at alpha = beta (z = 0, the series' first term), so the switch between
them is smooth. It needs about 39 / (1 - z) terms: when alpha and beta are more than ~1,500 times apart
(typically s and beta running off together, i.e. no heterogeneity in dropout) it refuses with a FitError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, expit, exprel, gammaln

from core.clv._history import validate_history
from core.clv._optimize import maximize_log_likelihood
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]

# Terms of the 2F1 series are summed in blocks until every row's next term is below this share of its sum.
_SERIES_TOLERANCE = 1e-17
_SERIES_BLOCK = 4096
# The series needs about 39 / (1 - z) terms, z = |alpha - beta| / (max(alpha, beta) + t_x): 40 for CDNOW's
# z ~ 0.1, 40,000 when one scale is a thousand times the other. Past this many, the customers left (those
# whose alpha and beta differ by a factor above ~1,500, with a recent first purchase) are refused with a
# FitError rather than given a truncated value: such scales mean the data do not identify the model.
_SERIES_CAP = 60_000


@dataclass(frozen=True)
class ParetoNbdParams:
    """Pareto/NBD parameters: purchase rate lambda ~ Gamma(shape r, rate alpha); dropout rate
    mu ~ Gamma(shape s, rate beta). ``alpha`` and ``beta`` are in the time unit of the data (e.g. weeks)."""

    r: float
    alpha: float
    s: float
    beta: float

    def log_likelihood(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """Log-likelihood of each customer's (x, t_x, T) (the note's expression above)."""
        xa, txa, Ta = np.broadcast_arrays(*_as_float(x, t_x, T))
        terms = _Terms.evaluate(self.r, self.alpha, self.s, self.beta, xa.ravel(), txa.ravel(), Ta.ravel(), False)
        return np.asarray(terms.log_likelihood.reshape(xa.shape), dtype=np.float64)

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T): the share of the likelihood from "still alive at T"."""
        xa, txa, Ta = np.broadcast_arrays(*_as_float(x, t_x, T))
        terms = _Terms.evaluate(self.r, self.alpha, self.s, self.beta, xa.ravel(), txa.ravel(), Ta.ravel(), False)
        return np.asarray((1.0 - terms.dropped_share).reshape(xa.shape), dtype=np.float64)

    def conditional_expected_purchases(
        self, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t] (Schmittlein et al. 1987; the note).

        ``P(alive) (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]``, whose s = 1 limit
        is taken smoothly. Broadcasts ``t`` against the customer arrays (``t[:, None]`` for several horizons).
        """
        return np.asarray(self.p_alive(x, t_x, T) * self.expected_purchases_if_alive(t, x, T), dtype=np.float64)

    def expected_purchases_if_alive(self, t: npt.ArrayLike, x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """E[Y(t) | alive at T, x, T], the factor of the conditional expectation besides P(alive)."""
        tt, xa, Ta = _as_float(t, x, T)
        if np.any(tt < 0):
            raise ValueError("horizons t must be >= 0")
        return _expected_while_alive(tt, self.r + xa, self.alpha + Ta, self.s, self.beta + Ta)

    def expected_purchases(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)]: expected purchases in (0, t] for a customer acquired at 0, r beta / (alpha (s-1))
        [1 - (beta/(beta+t))^(s-1)] (the note)."""
        (tt,) = _as_float(t)
        if np.any(tt < 0):
            raise ValueError("horizons t must be >= 0")
        return _expected_while_alive(tt, np.float64(self.r), np.float64(self.alpha), self.s, np.float64(self.beta))


@dataclass(frozen=True)
class ParetoNbdFit:
    """A fitted Pareto/NBD model: parameters, maximised log-likelihood and how the optimiser got there."""

    params: ParetoNbdParams
    log_likelihood: float
    iterations: int
    evaluations: int
    message: str
    n_customers: float
    n_distinct_rows: int
    #: Covariance of the log parameters at the optimum (Laplace approximation), in parameter order.
    covariance: FloatArray


def fit_pareto_nbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> ParetoNbdFit:
    """Fit r, alpha, s, beta by maximum likelihood from per-customer (x, t_x, T).

    ``weights`` counts how many customers each row stands for (default 1); identical rows are merged. The
    optimiser (L-BFGS-B on the log parameters, analytic gradient) starts from a fixed, data-scaled point.

    Raises :class:`FitError` when there is no repeat purchase at all, or when the optimiser does not
    converge to finite, identified parameters.
    """
    xa, txa, Ta = np.broadcast_arrays(*_as_float(x, t_x, T))
    w = np.ones(xa.shape) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), xa.shape)
    xa, txa, Ta, w = xa.ravel(), txa.ravel(), Ta.ravel(), w.ravel()
    validate_history(xa, txa, Ta, w, "Pareto/NBD")
    rows = _Rows.build(xa, txa, Ta, w)
    if rows.total_repeat_weight <= 0:
        raise FitError(
            "Pareto/NBD cannot be fitted: no customer has a repeat purchase",
            hint="CLV needs customers who bought at least twice; use the empirical fallback",
        )
    # r = 1 with alpha matching the mean repeat rate; s = 1 with beta the mean observation window.
    mean_rate = rows.total_repeat_weight / max(rows.total_exposure, 1e-12)
    mean_T = rows.total_exposure / rows.total_weight
    start = (1.0, float(np.clip(1.0 / mean_rate, 1e-6, 1e6)), 1.0, float(np.clip(mean_T, 1e-6, 1e6)))
    names = ("r", "alpha", "s", "beta")
    optimum = maximize_log_likelihood(rows.objective, start, rows.total_weight, names, "Pareto/NBD")
    r, alpha, s, beta = (float(v) for v in optimum.params)
    return ParetoNbdFit(
        params=ParetoNbdParams(r=r, alpha=alpha, s=s, beta=beta),
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


def _expected_while_alive(
    t: FloatArray, r: FloatArray | np.float64, alpha: FloatArray | np.float64, s: float, beta: FloatArray | np.float64
) -> FloatArray:
    """r/alpha * beta * [1 - (beta/(beta+t))^(s-1)] / (s-1), written as r/alpha * beta * L * exprel(-(s-1) L)
    with L = log(1 + t/beta), which is exact at s = 1 (where it is r/alpha * beta * L) and near it."""
    log_growth = np.log1p(t / beta)
    return np.asarray(r / alpha * beta * log_growth * exprel(-(s - 1.0) * log_growth), dtype=np.float64)


@dataclass(frozen=True)
class _Series:
    """log I and its derivatives for I(k, b, z) = int_0^1 u^(k-1) (1 - z u)^-b du = 2F1(k, b; k+1; z) / k."""

    log_value: FloatArray
    d_k: FloatArray
    d_b: FloatArray
    d_z: FloatArray

    @classmethod
    def evaluate(cls, k: FloatArray, b: FloatArray, z: FloatArray, gradient: bool) -> _Series:
        # Euler: 2F1(k, b; k+1; z) = (1-z)^(1-b) 2F1(1, c; k+1; z) with c = k + 1 - b, summed as
        # sum_n t_n, t_0 = 1, t_(n+1) = t_n (c + n) / (k + 1 + n) z. Since 0 < c < k + 1, t_n <= z^n.
        c = k + 1.0 - b
        n_rows = len(k)
        total = np.ones(n_rows)
        # Running sums for the derivatives of log sum: d/dc, d/d(k+1) and d/dz of each term.
        sum_dc = np.zeros(n_rows)
        sum_dk = np.zeros(n_rows)
        sum_dz = np.zeros(n_rows)
        term = np.ones(n_rows)
        psi_c = np.zeros(n_rows)  # digamma(c + n) - digamma(c)
        psi_k = np.zeros(n_rows)  # digamma(k + 1 + n) - digamma(k + 1)
        active = np.flatnonzero(z > 0)
        start = 0
        while len(active) and start < _SERIES_CAP:
            # t_n <= z^n, so log(tolerance) / log(z) terms suffice; a block never holds many more than needed.
            needed = math.ceil(math.log(_SERIES_TOLERANCE) / math.log(float(z[active].max()))) - start
            n = start + np.arange(min(max(needed, 4), _SERIES_BLOCK), dtype=np.float64)  # t_(n+1) from t_n
            ca, ka, za = c[active, None], k[active, None], z[active, None]
            ratio = (ca + n) / (ka + 1.0 + n) * za
            terms = term[active, None] * np.cumprod(ratio, axis=1)  # t_(n+1)
            total[active] += terms.sum(axis=1)
            if gradient:
                dc = psi_c[active, None] + np.cumsum(1.0 / (ca + n), axis=1)
                dk = psi_k[active, None] + np.cumsum(1.0 / (ka + 1.0 + n), axis=1)
                sum_dc[active] += (terms * dc).sum(axis=1)
                sum_dk[active] += (terms * dk).sum(axis=1)
                # n t_n / z, so that z -> 0 needs no special case.
                sum_dz[active] += (terms * (n + 1.0)).sum(axis=1) / za[:, 0]
                psi_c[active] = dc[:, -1]
                psi_k[active] = dk[:, -1]
            term[active] = terms[:, -1]
            start += len(n)
            active = active[term[active] > _SERIES_TOLERANCE * total[active]]
        if len(active):
            raise FitError(
                "Pareto/NBD cannot be evaluated: the purchase and dropout scales differ too much "
                f"(|alpha - beta| / (max(alpha, beta) + t) = {float(z[active].max()):.6f}), so the data do not "
                "identify the model",
                hint="use BG/NBD (clv.model) or the empirical fallback",
            )
        # z = 0 (alpha = beta): only t_0 = 1, and d(sum)/dz = t_1 / z = c / (k + 1).
        flat = z <= 0
        sum_dz[flat] = c[flat] / (k[flat] + 1.0)
        log_one_minus_z = np.log1p(-z)
        log_value = -np.log(k) + (1.0 - b) * log_one_minus_z + np.log(total)
        d_c = sum_dc / total
        d_k1 = -sum_dk / total
        # c = k + 1 - b moves with k and against b.
        return cls(
            log_value=log_value,
            d_k=-1.0 / k + d_c + d_k1,
            d_b=-log_one_minus_z - d_c,
            d_z=(b - 1.0) / (1.0 - z) + sum_dz / total,
        )


@dataclass(frozen=True)
class _Terms:
    """Per-customer log-likelihood, share of "dropped out in (t_x, T]" and (optionally) the gradient."""

    log_likelihood: FloatArray
    dropped_share: FloatArray
    gradient: FloatArray | None  # (4, n): d LL / d (r, alpha, s, beta)

    @classmethod
    def evaluate(
        cls,
        r: float,
        alpha: float,
        s: float,
        beta: float,
        x: FloatArray,
        t_x: FloatArray,
        T: FloatArray,
        gradient: bool,
    ) -> _Terms:
        m = r + x
        k = m + s
        # The note's case split: integrate in the variable of the larger scale, so z = |alpha-beta|/(...) >= 0.
        big = max(alpha, beta)
        alpha_big = alpha >= beta
        b = np.full(len(x), s + 1.0) if alpha_big else m
        ends = np.concatenate([t_x, T])
        z = abs(alpha - beta) / (big + ends)
        k2, b2 = np.concatenate([k, k]), np.concatenate([b, b])
        series = _Series.evaluate(k2, b2, z, gradient)
        # log G(y) = -k log(big + y) + log I(k, b, z_y): G(y) = int_y^inf (alpha+u)^-m (beta+u)^-(s+1) du.
        log_big = np.log(big + ends)
        log_g = -k2 * log_big + series.log_value
        n = len(x)
        gap = log_g[n:] - log_g[:n]  # log G(T) - log G(t_x) <= 0
        open_window = gap < 0
        with np.errstate(divide="ignore"):
            log_dropped = np.log(s) + log_g[:n] + np.log(-np.expm1(np.where(open_window, gap, -1.0)))
        log_dropped = np.where(open_window, log_dropped, -np.inf)
        log_alive = -m * np.log(alpha + T) - s * np.log(beta + T)
        log_common = gammaln(m) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        both = np.logaddexp(log_alive, log_dropped)
        share = np.where(open_window, expit(log_dropped - log_alive), 0.0)
        if not gradient:
            return cls(log_likelihood=log_common + both, dropped_share=share, gradient=None)

        # d log G(y) for each parameter, y = t_x and T, following how k, b and z depend on them.
        inv_big = 1.0 / (big + ends)
        small = beta if alpha_big else alpha
        dz_big = (small + ends) * inv_big**2  # dz / d(larger scale)
        dz_small = -inv_big  # dz / d(smaller scale)
        d_big = -k2 * inv_big + series.d_z * dz_big
        d_small = series.d_z * dz_small
        d_r = -log_big + series.d_k + (0.0 if alpha_big else series.d_b)
        d_s = -log_big + series.d_k + (series.d_b if alpha_big else 0.0)
        d_alpha, d_beta = (d_big, d_small) if alpha_big else (d_small, d_big)
        ratio = np.exp(np.where(open_window, gap, 0.0))
        denominator = np.where(open_window, 1.0 - ratio, 1.0)

        def d_log_window(d: FloatArray) -> FloatArray:
            # d log(G(t_x) - G(T)) = (dG(t_x)/G(t_x) - e^gap dG(T)/G(T)) / (1 - e^gap)
            return np.asarray((d[:n] - ratio * d[n:]) / denominator, dtype=np.float64)

        alive_share = 1.0 - share
        grad = np.empty((4, n))
        grad[0] = digamma(m) - digamma(r) + np.log(alpha) - alive_share * np.log(alpha + T) + share * d_log_window(d_r)
        grad[1] = r / alpha - alive_share * m / (alpha + T) + share * d_log_window(d_alpha)
        grad[2] = np.log(beta) - alive_share * np.log(beta + T) + share * (1.0 / s + d_log_window(d_s))
        grad[3] = s / beta - alive_share * s / (beta + T) + share * d_log_window(d_beta)
        return cls(log_likelihood=log_common + both, dropped_share=share, gradient=grad)


@dataclass(frozen=True)
class _Rows:
    """Distinct (x, t_x, T) rows with their weights (customers with T = 0 carry no information)."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    w: FloatArray
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
        return cls(
            x=x,
            t_x=t_x,
            T=T,
            w=w,
            total_weight=float(w.sum()),
            total_repeat_weight=float(np.dot(x, w)),
            total_exposure=float(np.dot(T, w)),
        )

    def objective(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood and its gradient with respect to the log parameters."""
        r, alpha, s, beta = np.exp(log_params)
        terms = _Terms.evaluate(float(r), float(alpha), float(s), float(beta), self.x, self.t_x, self.T, True)
        assert terms.gradient is not None
        W = self.total_weight
        ll = float(np.dot(self.w, terms.log_likelihood))
        grad = (terms.gradient @ self.w) * np.array([r, alpha, s, beta])
        return -ll / W, -grad / W
