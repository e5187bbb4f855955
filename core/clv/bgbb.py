"""BG/BB model of discrete-time repeat transactions (Fader, Hardie & Shang 2010, "Customer-Base Analysis in
a Discrete-Time Noncontractual Setting", Marketing Science 29(6), 1086-1108).

For activities that happen at most once per period: yearly donations, event attendance, renewals of a
magazine bought at the kiosk. At each of n transaction opportunities a living customer transacts with
probability p ~ Beta(alpha, beta); before each opportunity they die with probability theta ~ Beta(gamma,
delta). A history is (x, t_x, n): x transactions, the last at opportunity t_x (0 if none), over n
opportunities after the first transaction.

The likelihood is a sum of n - t_x + 1 Beta-function ratios,
summed in log space (logsumexp) with the gradient as the weighted mean of each term's digamma
derivatives. Expectations over future opportunities are finite sums of the survival probabilities
B(gamma, delta + k) / B(gamma, delta), exact also where the paper's closed forms divide by gamma - 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, digamma, gammaln, logsumexp

from core.clv._optimize import maximize_log_likelihood
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BgBbParams:
    """BG/BB parameters: transaction probability p ~ Beta(alpha, beta), dropout probability theta ~ Beta(gamma,
    delta), both per opportunity."""

    alpha: float
    beta: float
    gamma: float
    delta: float

    def log_likelihood(self, x: npt.ArrayLike, t_x: npt.ArrayLike, n: npt.ArrayLike) -> FloatArray:
        """Log-likelihood of each customer's (x, t_x, n)."""
        xa, txa, na = _histories(x, t_x, n)
        terms = _log_terms(self.alpha, self.beta, self.gamma, self.delta, xa.ravel(), txa.ravel(), na.ravel())
        return np.asarray(logsumexp(terms.log_terms, axis=1).reshape(xa.shape), dtype=np.float64)

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, n: npt.ArrayLike) -> FloatArray:
        """P(alive at opportunity n + 1 | x, t_x, n): B(alpha+x, beta+n-x)/B(alpha, beta)
        B(gamma, delta+n+1)/B(gamma, delta) / L."""
        xa, txa, na = _histories(x, t_x, n)
        ll = self.log_likelihood(xa, txa, na)
        log_alive = (
            betaln(self.alpha + xa, self.beta + na - xa) - betaln(self.alpha, self.beta)
            + betaln(self.gamma, self.delta + na + 1.0) - betaln(self.gamma, self.delta)
        )
        return np.asarray(np.minimum(np.exp(log_alive - ll), 1.0), dtype=np.float64)

    def conditional_expected_purchases(
        self, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, n: npt.ArrayLike
    ) -> FloatArray:
        """E[X(n, n + t) | x, t_x, n]: expected transactions in the next ``t`` opportunities, as
        B(alpha+x+1, beta+n-x)/B(alpha, beta) / L * sum_(k=1..t) B(gamma, delta+n+k)/B(gamma, delta).

        ``t`` are whole numbers of opportunities and broadcast against the customer arrays.
        """
        xa, txa, na = _histories(x, t_x, n)
        tt = _opportunities(t)
        ll = self.log_likelihood(xa, txa, na)
        log_buy = betaln(self.alpha + xa + 1.0, self.beta + na - xa) - betaln(self.alpha, self.beta)
        return np.asarray(np.exp(log_buy - ll) * self._survival_sum(tt, na), dtype=np.float64)

    def expected_purchases(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)]: expected transactions in the first ``t`` opportunities of a new customer,
        alpha/(alpha+beta) * sum_(k=1..t) B(gamma, delta+k)/B(gamma, delta)."""
        tt = _opportunities(t)
        mean_p = self.alpha / (self.alpha + self.beta)
        return np.asarray(mean_p * self._survival_sum(tt, np.zeros(())), dtype=np.float64)

    def p_purchases(self, k: npt.ArrayLike, n: int) -> FloatArray:
        """P(X(n) = k): probability of exactly k transactions in the first n opportunities."""
        kk = _opportunities(k)
        if n < 0 or n != int(n):
            raise ValueError("n must be a whole number of opportunities >= 0")
        a, b, g, d = self.alpha, self.beta, self.gamma, self.delta
        log_choose_n = gammaln(n + 1.0) - gammaln(kk + 1.0) - gammaln(np.maximum(n - kk, 0.0) + 1.0)
        alive = np.exp(log_choose_n + betaln(a + kk, b + n - kk) - betaln(a, b) + betaln(g, d + n) - betaln(g, d))
        # Died after i opportunities alive, i = k .. n-1, having transacted at k of them.
        i = np.arange(n, dtype=np.float64)[:, None]
        later = i >= kk
        safe_i = np.where(later, i, kk)
        log_died = (
            gammaln(safe_i + 1.0) - gammaln(kk + 1.0) - gammaln(safe_i - kk + 1.0)
            + betaln(a + kk, b + safe_i - kk) - betaln(a, b) + betaln(g + 1.0, d + safe_i) - betaln(g, d)
        )
        died = np.where(later, np.exp(log_died), 0.0).sum(axis=0)
        return np.asarray(np.where(kk <= n, alive + died, 0.0), dtype=np.float64)

    def _survival_sum(self, t: FloatArray, n: FloatArray) -> FloatArray:
        """sum_(k=1..t) B(gamma, delta+n+k) / B(gamma, delta), broadcast over t and n, once per distinct n."""
        t_b, n_b = np.broadcast_arrays(t, n)
        n_values, n_index = np.unique(n_b, return_inverse=True)
        horizon = int(t_b.max()) if t_b.size else 0
        k = np.arange(1, horizon + 1, dtype=np.float64)
        terms = np.exp(betaln(self.gamma, self.delta + n_values[:, None] + k) - betaln(self.gamma, self.delta))
        cumulative = np.concatenate([np.zeros((len(n_values), 1)), np.cumsum(terms, axis=1)], axis=1)
        return np.asarray(cumulative[n_index.ravel(), t_b.ravel().astype(np.intp)].reshape(t_b.shape), dtype=np.float64)


@dataclass(frozen=True)
class BgBbFit:
    """A fitted BG/BB model: parameters, maximised log-likelihood and how the optimiser got there."""

    params: BgBbParams
    log_likelihood: float
    iterations: int
    evaluations: int
    message: str
    n_customers: float
    n_distinct_rows: int


def fit_bgbb(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    n: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> BgBbFit:
    """Fit alpha, beta, gamma, delta by maximum likelihood from per-customer (x, t_x, n).

    ``weights`` counts the customers each row stands for (the published donation data come as counts per
    distinct history); identical rows are merged. Deterministic (fixed start, L-BFGS-B, analytic gradient).

    Raises :class:`FitError` when nobody transacted after the first period, or when the optimiser does
    not converge to finite, identified parameters.
    """
    xa, txa, na = _histories(x, t_x, n)
    w = np.ones(xa.shape) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), xa.shape)
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("invalid BG/BB data: weights must be finite and >= 0")
    rows = _Rows.build(xa.ravel(), txa.ravel(), na.ravel(), w.ravel())
    if float(np.dot(rows.x, rows.w)) <= 0:
        raise FitError(
            "BG/BB cannot be fitted: nobody transacted in the observed opportunities",
            hint="the model needs some customers with repeat transactions; use the empirical fallback",
        )
    optimum = maximize_log_likelihood(
        rows.objective, (1.0, 1.0, 1.0, 1.0), rows.total_weight, ("alpha", "beta", "gamma", "delta"), "BG/BB"
    )
    alpha, beta, gamma, delta = (float(v) for v in optimum.params)
    return BgBbFit(
        params=BgBbParams(alpha=alpha, beta=beta, gamma=gamma, delta=delta),
        log_likelihood=optimum.log_likelihood,
        iterations=optimum.iterations,
        evaluations=optimum.evaluations,
        message=optimum.message,
        n_customers=rows.total_weight,
        n_distinct_rows=len(rows.x),
    )


def _opportunities(t: npt.ArrayLike) -> FloatArray:
    tt = np.asarray(t, dtype=np.float64)
    if np.any(~np.isfinite(tt)) or np.any(tt < 0) or np.any(tt != np.floor(tt)):
        raise ValueError("horizons t must be whole numbers of opportunities >= 0")
    return tt


def _histories(x: npt.ArrayLike, t_x: npt.ArrayLike, n: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    xa, txa, na = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, n)))
    checks = [
        (np.all(np.isfinite(xa) & np.isfinite(txa) & np.isfinite(na)), "non-finite values"),
        (np.all(xa == np.floor(xa)) and np.all(txa == np.floor(txa)) and np.all(na == np.floor(na)),
         "x, t_x and n must be whole numbers"),
        (np.all((xa >= 0) & (xa <= txa) & (txa <= na)), "histories must satisfy 0 <= x <= t_x <= n"),
        (np.all(txa[xa == 0] == 0), "t_x must be 0 when x = 0"),
    ]
    problems = [msg for ok, msg in checks if not ok]
    if problems:
        raise ValueError("invalid BG/BB data: " + "; ".join(problems))
    return xa, txa, na


@dataclass(frozen=True)
class _LogTerms:
    """Log of each term of the likelihood per row (column 0: alive throughout; column 1 + i: died after t_x + i
    opportunities alive), -inf where a row has fewer terms; and the arguments the gradient needs."""

    log_terms: FloatArray
    # Second arguments of the transaction Beta B(alpha + x, .) and both of the dropout Beta B(., .), per term.
    beta_arg: FloatArray
    gamma_arg: FloatArray
    delta_arg: FloatArray


def _log_terms(
    alpha: float, beta: float, gamma: float, delta: float, x: FloatArray, t_x: FloatArray, n: FloatArray
) -> _LogTerms:
    width = int(np.max(n - t_x)) + 1 if len(x) else 1
    i = np.arange(width - 1, dtype=np.float64)
    beta_arg = np.concatenate([(beta + n - x)[:, None], beta + (t_x - x)[:, None] + i], axis=1)
    gamma_arg = np.concatenate([np.full((len(x), 1), gamma), np.full((len(x), width - 1), gamma + 1.0)], axis=1)
    delta_arg = np.concatenate([(delta + n)[:, None], delta + t_x[:, None] + i], axis=1)
    present = np.concatenate([np.ones((len(x), 1), bool), i < (n - t_x)[:, None]], axis=1)
    log_terms = (
        betaln(alpha + x[:, None], beta_arg) - betaln(alpha, beta) + betaln(gamma_arg, delta_arg) - betaln(gamma, delta)
    )
    return _LogTerms(
        log_terms=np.where(present, log_terms, -np.inf),
        beta_arg=beta_arg,
        gamma_arg=gamma_arg,
        delta_arg=delta_arg,
    )


@dataclass(frozen=True)
class _Rows:
    """Distinct (x, t_x, n) with weights."""

    x: FloatArray
    t_x: FloatArray
    n: FloatArray
    w: FloatArray
    total_weight: float

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, n: FloatArray, w: FloatArray) -> _Rows:
        keep = w > 0
        keys = np.stack([x[keep], t_x[keep], n[keep]], axis=1)
        distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
        weights = np.bincount(inverse.ravel(), weights=w[keep], minlength=len(distinct))
        return cls(
            x=distinct[:, 0].copy(),
            t_x=distinct[:, 1].copy(),
            n=distinct[:, 2].copy(),
            w=np.asarray(weights, dtype=np.float64),
            total_weight=float(weights.sum()),
        )

    def objective(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        """Mean negative log-likelihood and its gradient with respect to the log parameters."""
        alpha, beta, gamma, delta = (float(v) for v in np.exp(log_params))
        terms = _log_terms(alpha, beta, gamma, delta, self.x, self.t_x, self.n)
        ll = logsumexp(terms.log_terms, axis=1)
        share = np.exp(terms.log_terms - ll[:, None])  # each term's share of the row's likelihood
        ax = alpha + self.x[:, None]
        # d log B(p, q) = (digamma(p) - digamma(p+q)) dp + (digamma(q) - digamma(p+q)) dq, per term.
        psi_ab = digamma(ax + terms.beta_arg)
        psi_gd = digamma(terms.gamma_arg + terms.delta_arg)
        d_alpha = (share * (digamma(ax) - psi_ab)).sum(axis=1) - (digamma(alpha) - digamma(alpha + beta))
        d_beta = (share * (digamma(terms.beta_arg) - psi_ab)).sum(axis=1) - (digamma(beta) - digamma(alpha + beta))
        d_gamma = (share * (digamma(terms.gamma_arg) - psi_gd)).sum(axis=1) - (digamma(gamma) - digamma(gamma + delta))
        d_delta = (share * (digamma(terms.delta_arg) - psi_gd)).sum(axis=1) - (digamma(delta) - digamma(gamma + delta))
        W = self.total_weight
        grad = np.array([d @ self.w for d in (d_alpha, d_beta, d_gamma, d_delta)])
        grad *= np.array([alpha, beta, gamma, delta])
        return -float(np.dot(self.w, ll)) / W, -grad / W
