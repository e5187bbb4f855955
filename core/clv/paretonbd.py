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
from scipy.integrate import quad
from scipy.special import betaln, digamma, expit, exprel, gammaln, hyp2f1, xlogy

from core.clv._history import distinct_rows, validate_history
from core.clv._optimize import maximize_log_likelihood
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# Terms of the 2F1 series are summed in blocks until every row's next term is below this share of its sum.
_SERIES_TOLERANCE = 1e-17
_SERIES_BLOCK = 4096
# The series needs about 39 / (1 - z) terms, z = |alpha - beta| / (max(alpha, beta) + t_x): 40 for CDNOW's
# z ~ 0.1, 40,000 when one scale is a thousand times the other. Past this many, the customers left (those
# whose alpha and beta differ by a factor above ~1,500, with a recent first purchase) are refused with a
# FitError rather than given a truncated value: such scales mean the data do not identify the model.
_SERIES_CAP = 60_000
# Scoring many parameter draws at once works on (draws x rows) arrays of about this many elements: small enough
# that the 2F1 series' dozens of passes over them stay in the CPU cache (4x faster at 100,000 customers than
# blocks of 1 << 20, which stream from memory on every pass).
_DRAW_BLOCK = 1 << 15


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

    def p_purchases(self, k: npt.ArrayLike, t: npt.ArrayLike) -> FloatArray:
        """P(X(t) = k): k purchases in (0, t] for a customer acquired at 0 (Fader & Hardie, "Deriving an Expression
        for P(X(t)=x) Under the Pareto/NBD Model", https://www.brucehardie.com/notes/012/pareto_NBD_pmf_derivation_rev.pdf;
        CLVTools' pnbd_nocov_PMF). Broadcasts ``k`` against ``t``.

        Alive at t: the NBD pmf times (beta/(beta+t))^s. Died at tau < t after k purchases: s alpha^r beta^s
        Gamma(r+k)/(Gamma(r) k!) int_0^t tau^k (alpha+tau)^-(r+k) (beta+tau)^-(s+1) dtau, which the note writes
        as the integral over (0, inf) (one 2F1 at 0) less the one over (t, inf) (k + 1 2F1 terms at t), each in
        the variable of the larger scale so that the 2F1 argument is in [0, 1)."""
        kk, tt = np.broadcast_arrays(*_as_float(k, t))
        if np.any(kk < 0) or np.any(kk != np.floor(kk)):
            raise ValueError("k must be a non-negative integer")
        if np.any(tt < 0):
            raise ValueError("horizons t must be >= 0")
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        log_nb = (gammaln(r + kk) - gammaln(r) - gammaln(kk + 1.0) - r * np.log1p(tt / alpha)
                  + xlogy(kk, tt / (alpha + tt)))
        alive = np.exp(log_nb - s * np.log1p(tt / beta))
        big = max(alpha, beta)
        kf, tf = kk.ravel(), tt.ravel()
        log_front = betaln(r + kf, s + 1.0) - betaln(r, s)

        def log_f(i: int | FloatArray, k_: FloatArray, z: FloatArray) -> FloatArray:
            # log 2F1(r+s+i, b; r+s+k+1; z), b = s + 1 when alpha >= beta and r + k otherwise. The latter is taken
            # through Euler's transformation, (1-z)^(1-i-r) 2F1(k+1-i, s+1; r+s+k+1; z): SciPy returns NaN for
            # its large b near z = 1, and for large i the value itself overflows while its logarithm does not.
            c = r + s + k_ + 1.0
            with np.errstate(invalid="ignore", divide="ignore"):
                if alpha >= beta:
                    return np.asarray(np.log(hyp2f1(r + s + i, s + 1.0, c, z)), dtype=np.float64)
                return np.asarray((1.0 - i - r) * np.log1p(-z) + np.log(hyp2f1(k_ + 1.0 - i, s + 1.0, c, z)),
                                  dtype=np.float64)

        # Each integral's factor alpha^r beta^s / (big + y)^(r+s) taken in logs, as ratios below 1.
        z_0 = np.full(kf.shape, abs(alpha - beta) / big)
        whole = np.exp(log_front + r * math.log(alpha / big) + s * math.log(beta / big) + log_f(0, kf, z_0))
        z_t = abs(alpha - beta) / (big + tf)
        with np.errstate(divide="ignore"):
            log_t_share = np.log(tf / (big + tf))
        log_tail_front = log_front + r * np.log(alpha / (big + tf)) + s * np.log(beta / (big + tf))
        tail = np.exp(log_tail_front + log_f(0, kf, z_t))
        # Term i only for the k >= i that need it; t = 0 has none past i = 0 (t^i).
        need = np.flatnonzero((kf >= 1) & (tf > 0))
        for i in range(1, int(kk.max(initial=0.0)) + 1):
            need = need[kf[need] >= i]
            log_i = gammaln(r + s + i) - gammaln(r + s) - gammaln(i + 1.0) + i * log_t_share[need]
            with np.errstate(invalid="ignore"):
                tail[need] += np.exp(log_tail_front[need] + log_i + log_f(i, kf[need], z_t[need]))
        # The difference of the two integrals is accurate to a few ulps of the whole one, not relatively: at tiny
        # t it can come out a hair below zero, which is no probability.
        with np.errstate(invalid="ignore"):
            dropped = np.maximum(whole - tail, 0.0)
        # SciPy's 2F1 gives up (NaN or inf) for some large k with z near 1: those few entries by quadrature.
        for j in np.flatnonzero(~np.isfinite(dropped)):
            dropped[j] = _dropped_by_quadrature(self, float(kf[j]), float(tf[j]))
        return np.asarray(alive + dropped.reshape(kk.shape), dtype=np.float64)


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


def _dropped_by_quadrature(p: ParetoNbdParams, k: float, t: float) -> float:
    """P(k purchases, then death before t) from its defining integral over the death time tau (see
    :meth:`ParetoNbdParams.p_purchases`), the integrand scaled by its largest value on a grid so quad sees ~1."""
    r, alpha, s, beta = p.r, p.alpha, p.s, p.beta
    log_c = gammaln(r + k) - gammaln(r) - gammaln(k + 1.0) + r * math.log(alpha) + math.log(s) + s * math.log(beta)

    def log_h(tau: FloatArray) -> FloatArray:
        return np.asarray(log_c + xlogy(k, tau) - (r + k) * np.log(alpha + tau) - (s + 1.0) * np.log(beta + tau),
                          dtype=np.float64)

    grid = np.linspace(0.0, t, 257)[1:]
    scale = float(log_h(grid).max())
    peak = float(grid[int(np.argmax(log_h(grid)))])
    value, _ = quad(lambda tau: float(np.exp(log_h(np.asarray(tau)) - scale)), 0.0, t, points=[peak], limit=200,
                    epsabs=0.0, epsrel=1e-12)
    return float(value * math.exp(scale))


def _expected_while_alive(
    t: FloatArray, r: FloatArray | np.float64, alpha: FloatArray | np.float64, s: float | FloatArray,
    beta: FloatArray | np.float64
) -> FloatArray:
    """r/alpha * beta * [1 - (beta/(beta+t))^(s-1)] / (s-1), written as r/alpha * beta * L * exprel(-(s-1) L)
    with L = log(1 + t/beta), which is exact at s = 1 (where it is r/alpha * beta * L) and near it."""
    log_growth = np.log1p(t / beta)
    return np.asarray(r / alpha * beta * log_growth * exprel(-(s - 1.0) * log_growth), dtype=np.float64)


def _sum_series(
    c: FloatArray, k1: FloatArray, z: FloatArray, gradient: bool
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """sum_n t_n with t_0 = 1, t_(n+1) = t_n (c + n) / (k1 + n) z, and (with ``gradient``) sum_n t_n d log t_n / dc,
    sum_n t_n d log t_n / dk1 and sum_n n t_n / z. One vector step per term across all rows: the rows are many
    and the terms few (CDNOW: about 20), where a (rows x terms) matrix would cost more in memory traffic.

    Raises :class:`FitError` when a row has not converged after :data:`_SERIES_CAP` terms."""
    total = np.ones(len(z))
    sum_dc, sum_dk, sum_dz = np.zeros(len(z)), np.zeros(len(z)), np.zeros(len(z))
    live = np.arange(len(z))
    term = np.ones(len(z))
    psi_c, psi_k = np.zeros(len(z)), np.zeros(len(z))  # d log t_n / dc and -d log t_n / dk1
    n = 0
    while len(live) and n < _SERIES_CAP:
        # t_n <= z^n (0 < c < k1), so log(tolerance) / log(z) terms suffice.
        steps = max(4, math.ceil(math.log(_SERIES_TOLERANCE) / math.log(float(z[live].max()))) - n)
        steps = min(steps, _SERIES_BLOCK)
        cl, kl, zl = c[live], k1[live], z[live]
        tl, tot = term[live], total[live]
        if gradient:
            pc, pk = psi_c[live], psi_k[live]
            sdc, sdk, sdz = sum_dc[live], sum_dk[live], sum_dz[live]
        for _ in range(steps):
            if gradient:
                pc += 1.0 / (cl + n)
                pk += 1.0 / (kl + n)
            tl *= (cl + n) / (kl + n) * zl
            n += 1
            tot += tl
            if gradient:
                sdc += tl * pc
                sdk += tl * pk
                sdz += tl * n
        term[live], total[live] = tl, tot
        if gradient:
            psi_c[live], psi_k[live] = pc, pk
            sum_dc[live], sum_dk[live], sum_dz[live] = sdc, sdk, sdz
        live = live[tl > _SERIES_TOLERANCE * tot]
    if len(live):
        raise FitError(
            "Pareto/NBD cannot be evaluated: the purchase and dropout scales differ too much "
            f"(|alpha - beta| / (max(alpha, beta) + t) = {float(z[live].max()):.6f}), so the data do not "
            "identify the model",
            hint="use BG/NBD (clv.model) or the empirical fallback",
        )
    return total, sum_dc, sum_dk, sum_dz / z


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
        positive = np.flatnonzero(z > 0)
        # Rows grouped by the number of terms their z needs (within a factor of 2), so that a few rows with z near
        # 1 (e.g. parameter draws far from the estimate) do not lengthen every other row's sum.
        with np.errstate(divide="ignore"):
            need = np.log(_SERIES_TOLERANCE) / np.log(z[positive])
        group = np.floor(np.log2(np.maximum(need, 16.0)))
        for level in np.unique(group):
            rows = positive[group == level]
            sums = _sum_series(c[rows], k[rows] + 1.0, z[rows], gradient)
            total[rows], sum_dc[rows], sum_dk[rows], sum_dz[rows] = sums
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
class _Ends:
    """The distinct (x, y) pairs of the window ends y = t_x and y = T: the 2F1 series, the costly part of the
    likelihood, depends on a customer's x and y only, and summaries in whole days repeat them a lot (1,000,000
    simulated customers have about 300,000 distinct rows but only about 19,000 distinct ends)."""

    x: FloatArray
    y: FloatArray
    at_t_x: IntArray
    at_T: IntArray

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, T: FloatArray) -> _Ends:
        (ex, ey), inverse = distinct_rows(np.concatenate([x, x]), np.concatenate([t_x, T]))
        return cls(x=ex, y=ey, at_t_x=inverse[: len(x)], at_T=inverse[len(x) :])


Param = float | FloatArray


def _log_g(
    r: Param, alpha: Param, s: Param, beta: Param, x: FloatArray, y: FloatArray, gradient: bool
) -> tuple[FloatArray, FloatArray | None]:
    """log G(y) = log int_y^inf (alpha+u)^-(r+x) (beta+u)^-(s+1) du for each (x, y), and with ``gradient`` its
    derivatives (4, n) in (r, alpha, s, beta). The parameters are scalars or arrays aligned with ``x``."""
    m = r + x
    k = m + s
    # The note's case split: integrate in the variable of the larger scale, so z = |alpha-beta|/(...) >= 0.
    big = np.maximum(alpha, beta)
    alpha_big = np.asarray(alpha >= beta)
    b = np.asarray(np.where(alpha_big, s + 1.0, m), dtype=np.float64)
    b = np.broadcast_to(b, k.shape)
    z = np.asarray(np.abs(alpha - beta) / (big + y), dtype=np.float64)
    series = _Series.evaluate(k, b, z, gradient)
    log_big = np.log(big + y)
    log_g = -k * log_big + series.log_value
    if not gradient:
        return log_g, None
    # Following how k, b and z depend on the parameters.
    inv_big = 1.0 / (big + y)
    small = np.minimum(alpha, beta)
    dz_big = (small + y) * inv_big**2  # dz / d(larger scale)
    d_big = -k * inv_big + series.d_z * dz_big
    d_small = -series.d_z * inv_big
    d_r = -log_big + series.d_k + np.where(alpha_big, 0.0, series.d_b)
    d_s = -log_big + series.d_k + np.where(alpha_big, series.d_b, 0.0)
    d_alpha = np.where(alpha_big, d_big, d_small)
    d_beta = np.where(alpha_big, d_small, d_big)
    return log_g, np.stack([d_r, d_alpha, d_s, d_beta])


def _window(
    r: Param, alpha: Param, s: Param, beta: Param, x: FloatArray, T: FloatArray, log_g_t_x: FloatArray,
    log_g_T: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """log L (with its common factor), the share of "dropped out in (t_x, T]", log G(T) - log G(t_x) and
    whether that window is open, from the two ends' log G. Broadcasts parameters against rows."""
    gap = log_g_T - log_g_t_x  # <= 0
    open_window = gap < 0
    with np.errstate(divide="ignore"):
        log_dropped = np.log(s) + log_g_t_x + np.log(-np.expm1(np.where(open_window, gap, -1.0)))
    log_dropped = np.where(open_window, log_dropped, -np.inf)
    m = r + x
    log_alive = -m * np.log(alpha + T) - s * np.log(beta + T)
    log_common = gammaln(m) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    log_likelihood = log_common + np.logaddexp(log_alive, log_dropped)
    share = np.where(open_window, expit(log_dropped - log_alive), 0.0)
    return log_likelihood, share, gap, open_window


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
        ends: _Ends | None = None,
    ) -> _Terms:
        ends = ends if ends is not None else _Ends.build(x, t_x, T)
        log_g, d_g = _log_g(r, alpha, s, beta, ends.x, ends.y, gradient)
        lo, hi = log_g[ends.at_t_x], log_g[ends.at_T]
        log_likelihood, share, gap, open_window = _window(r, alpha, s, beta, x, T, lo, hi)
        if d_g is None:
            return cls(log_likelihood=log_likelihood, dropped_share=share, gradient=None)

        m = r + x
        ratio = np.exp(np.where(open_window, gap, 0.0))
        denominator = np.where(open_window, 1.0 - ratio, 1.0)

        def d_log_window(j: int) -> FloatArray:
            # d log(G(t_x) - G(T)) = (dG(t_x)/G(t_x) - e^gap dG(T)/G(T)) / (1 - e^gap)
            return np.asarray((d_g[j, ends.at_t_x] - ratio * d_g[j, ends.at_T]) / denominator, dtype=np.float64)

        alive_share = 1.0 - share
        grad = np.empty((4, len(x)))
        grad[0] = digamma(m) - digamma(r) + np.log(alpha) - alive_share * np.log(alpha + T) + share * d_log_window(0)
        grad[1] = r / alpha - alive_share * m / (alpha + T) + share * d_log_window(1)
        grad[2] = np.log(beta) - alive_share * np.log(beta + T) + share * (1.0 / s + d_log_window(2))
        grad[3] = s / beta - alive_share * s / (beta + T) + share * d_log_window(3)
        return cls(log_likelihood=log_likelihood, dropped_share=share, gradient=grad)


def p_alive_under_draws(draws: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """P(alive) of each customer (columns) under each parameter set (rows of ``draws``: r, alpha, s, beta),
    all at once: the 2F1 series runs once over every (draw, distinct end) pair rather than draw by draw, and the
    logarithms of alpha + T and beta + T once per (draw, distinct T)."""
    ends = _Ends.build(x, t_x, T)
    n_ends = len(ends.x)
    (windows,), at_window = distinct_rows(T)
    out = np.empty((len(draws), len(x)))
    per_block = max(1, _DRAW_BLOCK // max(n_ends, len(x), 1))
    for start in range(0, len(draws), per_block):
        block = draws[start : start + per_block]
        d = len(block)
        r, alpha, s, beta = (block[:, j, None] for j in range(4))
        r_e, alpha_e, s_e, beta_e = (np.broadcast_to(v, (d, n_ends)).ravel() for v in (r, alpha, s, beta))
        log_g, _ = _log_g(r_e, alpha_e, s_e, beta_e, np.tile(ends.x, d), np.tile(ends.y, d), False)
        log_g = log_g.reshape(d, n_ends)
        # P(alive) = 1 / (1 + dropped / alive), the log odds without the factors the two terms share:
        # log s + log(G(t_x) - G(T)) + (r+x) log(alpha+T) + s log(beta+T), built in place in one buffer.
        lo = np.take(log_g, ends.at_t_x, axis=1)
        odds = np.take(log_g, ends.at_T, axis=1)
        odds -= lo  # log G(T) - log G(t_x) <= 0
        np.expm1(odds, out=odds)
        np.negative(odds, out=odds)
        with np.errstate(divide="ignore"):
            np.log(odds, out=odds)
        odds += lo
        odds += np.log(s)
        odds += (r + x) * np.take(np.log(alpha + windows), at_window, axis=1)
        odds += np.take(s * np.log(beta + windows), at_window, axis=1)
        np.negative(odds, out=odds)
        out[start : start + d] = expit(odds)
    return out


def expected_while_alive_under_draws(
    draws: FloatArray, x: FloatArray, T: FloatArray, grid: FloatArray, discount: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """E[Y(horizon) | alive at T, x, T] of each (x, T) (columns) under each parameter set (rows of ``draws``), and
    its discounted sum over the steps of ``grid`` (0 = t_0 < ... < t_K = horizon; ``discount`` at each step).

    The expectation factors as (r+x)/(alpha+T) * h(t; s, beta + T) (see :func:`_expected_while_alive`), and h
    does not depend on x: it is evaluated once per (draw, distinct T, step), then scaled per customer."""
    (windows,), at_window = distinct_rows(T)
    total_h = np.empty((len(draws), len(windows)))
    discounted_h = np.empty((len(draws), len(windows)))
    steps = grid[None, 1:, None]
    # (draws, steps, distinct T) blocks: with T in whole days there are a few hundred distinct T and one block.
    per_block = max(1, _DRAW_BLOCK // max(steps.size * len(windows), 1))
    for start in range(0, len(draws), per_block):
        block = draws[start : start + per_block]
        s, beta = block[:, 2, None, None], block[:, 3, None, None]
        # h at each step end; r/alpha = 1 leaves h itself.
        h = _expected_while_alive(steps, np.float64(1.0), np.float64(1.0), s, beta + windows)
        total_h[start : start + len(block)] = h[:, -1, :]
        discounted_h[start : start + len(block)] = np.einsum("k,dkw->dw", discount, np.diff(h, axis=1, prepend=0.0))
    rate = (draws[:, 0, None] + x) / (draws[:, 1, None] + T)
    return rate * total_h[:, at_window], rate * discounted_h[:, at_window]


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
    ends: _Ends

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
            ends=_Ends.build(x, t_x, T),
        )

    def objective(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood and its gradient with respect to the log parameters."""
        r, alpha, s, beta = np.exp(log_params)
        terms = _Terms.evaluate(float(r), float(alpha), float(s), float(beta), self.x, self.t_x, self.T, True,
                                self.ends)
        assert terms.gradient is not None
        W = self.total_weight
        ll = float(np.dot(self.w, terms.log_likelihood))
        grad = (terms.gradient @ self.w) * np.array([r, alpha, s, beta])
        return -ll / W, -grad / W
