"""Customer lifetime value: fit the models once on the whole base, then score every customer in closed form.

Predictive CLV over a horizon H (in the summary's time unit) is

    CLV_i = margin * E[spend per purchase]_i * sum_k (E[Y(t_k)]_i - E[Y(t_(k-1))]_i) * (1 + d)^(-m_k / u)

with E[Y(t)] the conditional expected purchases of the repeat-purchase model (BG/NBD by default, Fader,
Hardie & Lee 2005, eq. 10; or MBG/NBD or Pareto/NBD, see :mod:`core.clv.selection`), the expected
spend from the Gamma-Gamma model (Fader & Hardie 2013), d the annual discount rate, u time units per year
and m_k the midpoint of step k. The horizon is cut into steps of about a month: each step's expected
purchases are discounted at its midpoint, which is second-order accurate for the continuous-time integral
(lifetimes discounts at the end of each month, which undervalues every month by half a month's discount).

When the base is too small or degenerate for the models, :func:`fit_and_score` either raises
:class:`~core.errors.FitError` or, with ``on_fit_failure="empirical"``, scores with transparent empirical
rules (see :func:`empirical_rates`) and says so in ``purchase_model`` / ``spend_model`` / ``diagnostics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from core.clv._history import distinct_rows
from core.clv.bgnbd import BgNbdFit, fit_bgnbd
from core.clv.bgnbd import p_alive_under_draws as bgnbd_p_alive_under_draws
from core.clv.gamma_gamma import GammaGammaFit, expected_spend_under_draws, fit_gamma_gamma
from core.clv.paretonbd import expected_while_alive_under_draws, p_alive_under_draws
from core.clv.selection import ModelName, PurchaseModelFit, PurchaseParams, describe_bgnbd, fit_purchase_model
from core.clv.summary import TransactionSummary
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]
OnFitFailure = Literal["raise", "empirical"]
PurchaseScores = tuple[PurchaseModelFit, BgNbdFit | None, FloatArray, FloatArray, FloatArray]
FitT = TypeVar("FitT", PurchaseScores, GammaGammaFit)

DAYS_PER_YEAR = 365.25
# Unique (x, T) rows are scored this many at a time so the (steps x rows) matrices stay small.
_CHUNK = 65_536
# Elements of one (draws x histories) block of the interval computation: each such matrix stays near 32 MB.
_INTERVAL_BLOCK = 1 << 22
# Chebyshev interpolation of the BG/NBD and MBG/NBD expectations under the draws: a (draw, x) is evaluated
# exactly instead when its last two coefficients exceed this share of its smallest value (the interpolation
# error is about their size). The closed form itself is only accurate to about 1e-12, a floor that the last
# coefficients reach whatever the number of nodes, so the bound sits above that, well below the 1e-9 asked.
_CHEBYSHEV_TAIL = 1e-10
_MAX_NODES = 64  # past this (a horizon thousands of times alpha) the tail check sends the rest to the closed form
#: A customer's mean repeat spend is an outlier, left out of the Gamma-Gamma fit, when its log lies more than this
#: many robust standard deviations (1.4826 MAD) above the median log and it is more than
#: :data:`OUTLIER_MIN_RATIO` times the median. CDNOW's largest is 3.4 deviations (11x the median): a real base's
#: big spenders stay in; an amount typed with extra zeros (issue 17: one purchase of 1e9 among tens of dollars
#: moved 1,820 of CDNOW's 2,357 CLVs by more than 5%) does not.
OUTLIER_DEVIATIONS = 8.0
OUTLIER_MIN_RATIO = 100.0
#: The parameter draw of the CLV intervals is seeded, so a rerun on the same data writes the same bounds.
INTERVAL_SEED = 17


@dataclass(frozen=True)
class ClvResult:
    """Per-customer CLV outputs (arrays aligned with the summary) plus the fitted models and diagnostics.

    ``expected_purchases`` is undiscounted over the horizon; ``clv`` is discounted and includes the margin;
    ``historical_value`` is total spend so far times the margin. Customers without any purchase
    (``is_customer`` False) get 0 everywhere and NaN for ``p_alive`` (not applicable, which the engine's
    columns read as "unknown"). ``purchase_model``/``spend_model`` say which method produced the numbers;
    ``purchase_fit`` describes the fitted repeat-purchase model, whichever it is (``bgnbd`` only for BG/NBD).
    """

    expected_purchases: FloatArray
    p_alive: FloatArray
    expected_spend: FloatArray
    clv: FloatArray
    historical_value: FloatArray
    is_customer: npt.NDArray[np.bool_]
    purchase_model: Literal["bgnbd", "mbgnbd", "pareto_nbd", "empirical"]
    spend_model: Literal["gamma_gamma", "empirical"]
    bgnbd: BgNbdFit | None
    gamma_gamma: GammaGammaFit | None
    horizon: float
    unit: str
    diagnostics: tuple[str, ...]
    purchase_fit: PurchaseModelFit | None = None
    #: Per-customer bounds of ``clv``, ``p_alive`` and ``expected_purchases`` (see :func:`score_intervals`) when
    #: asked for; NaN where unknown.
    clv_low: FloatArray | None = None
    clv_high: FloatArray | None = None
    p_alive_low: FloatArray | None = None
    p_alive_high: FloatArray | None = None
    expected_purchases_low: FloatArray | None = None
    expected_purchases_high: FloatArray | None = None
    #: Customers left out of the spend model as outliers (:func:`spend_outliers`); they are still scored.
    spend_outliers: npt.NDArray[np.bool_] | None = None


@dataclass(frozen=True)
class EmpiricalRates:
    """Model-free per-customer estimates used when the models cannot be fitted (all finite).

    * ``rate``: repeat purchases per time unit, the customer's own rate shrunk towards the pooled rate
      rho = sum(x) / sum(T) with the weight of one median observation window tau:
      (x + rho tau) / (T + tau). This is the posterior mean of a Poisson rate under a Gamma(rho tau, tau)
      prior, so a customer seen for a day does not get an absurd rate (exposure counts as at least a day).
    * ``p_alive``: s = exp(-rate (T - t_x)) is the chance of a silence at least as long as the current one if
      the customer still bought at that rate; its odds s / (1 - s) are weighed by the odds (1 - p) / p of
      not having dropped out, p = 1 / (x + 2) (Laplace's rule after x repeat purchases without dropping out):
      p_alive = (1 - p) s / ((1 - p) s + p (1 - s)). Without repeat purchases (p = 1/2) that is s itself; with
      many, a silence of the usual gap is no sign of dropout (issue 14: the only customer, 500 purchases, the
      last one a usual gap ago, was written churned with 0.40). A heuristic score in [0, 1] (1 right after a
      purchase), not a posterior probability.
    * ``spend``: mean spend per purchase day, (total spend + mu) / (purchases + 1), shrunk towards the
      pooled mean mu with the weight of one purchase; refunds beyond purchases count as 0.
    """

    rate: FloatArray
    p_alive: FloatArray
    spend: FloatArray


def empirical_rates(summary: TransactionSummary) -> EmpiricalRates:
    """Empirical purchase rate, activity score and spend per customer (see :class:`EmpiricalRates`)."""
    customer = summary.has_purchase
    x = summary.frequency.astype(np.float64)
    T = summary.T
    exposure = float(T[customer].sum())
    tau = float(np.median(T[customer])) if customer.any() else 0.0
    # rho * tau written as sum(x) * (tau / sum(T)) cannot overflow; tau <= sum(T).
    prior_purchases = float(x[customer].sum()) * (tau / exposure) if exposure > 0 else 0.0
    # Summaries count whole days, so no rate is measured over less than one day.
    rate = (x + prior_purchases) / np.maximum(T + tau, 1.0 / summary.days_per_unit)
    silence = np.exp(-rate * (T - summary.recency))
    dropout = 1.0 / (x + 2.0)
    stayed = (1.0 - dropout) * silence
    p_alive = stayed / (stayed + dropout * (1.0 - silence))
    count = summary.purchase_count.astype(np.float64)
    purchases = float(count[customer].sum())
    mu = float(summary.total_spend[customer].sum()) / purchases if purchases > 0 else 0.0
    spend = np.maximum(summary.total_spend + mu, 0.0) / (count + 1.0)
    return EmpiricalRates(rate=rate, p_alive=p_alive, spend=spend)


def fit_and_score(
    summary: TransactionSummary,
    horizon: float,
    annual_discount_rate: float,
    margin: float = 1.0,
    *,
    min_repeat_customers: int = 20,
    on_fit_failure: OnFitFailure = "raise",
    steps_per_year: int = 12,
    purchase_model: ModelName = "bgnbd",
    interval_draws: int = 0,
    interval_level: float = 0.90,
) -> ClvResult:
    """Fit the repeat-purchase model (``purchase_model``: "bgnbd", "mbgnbd" or "pareto_nbd", e.g. the one
    :func:`~core.clv.selection.compare_by_holdout` chose) and Gamma-Gamma on the customers of ``summary``
    and score each one's CLV.

    ``horizon`` is in the summary's unit (days or weeks); ``annual_discount_rate`` is e.g. 0.10 for 10%
    a year; ``margin`` multiplies spend into profit. The models are fitted only when at least
    ``min_repeat_customers`` customers have a repeat purchase. If a model cannot be fitted (too few repeat
    customers, divergence, non-convergence, q <= 1), ``on_fit_failure="raise"`` raises
    :class:`~core.errors.FitError` and ``"empirical"`` falls back to :func:`empirical_rates` for that
    part (purchases and spend fall back independently), recording why in ``diagnostics``.

    ``interval_draws`` > 0 also computes ``clv_low``/``clv_high``, ``p_alive_low``/``p_alive_high`` and
    ``expected_purchases_low``/``expected_purchases_high``, the central ``interval_level`` interval of each
    customer's value under the parameters' sampling distribution (:func:`score_intervals`); they are NaN,
    with the reason in ``diagnostics``, when the purchases fell back to the empirical rules.
    """
    if not horizon > 0:
        raise ValueError("horizon must be > 0")
    if not 0 <= annual_discount_rate < 1:
        raise ValueError("annual_discount_rate must be in [0, 1)")
    if not 0 < margin <= 1:
        raise ValueError("margin must be in (0, 1]")
    customer = summary.has_purchase
    x = summary.frequency.astype(np.float64)
    units_per_year = DAYS_PER_YEAR / summary.days_per_unit
    grid, discount = _discount_grid(horizon, annual_discount_rate, units_per_year, steps_per_year)
    diagnostics: list[str] = []
    n_repeat = int(np.count_nonzero(customer & (x > 0)))

    blocker = None
    if n_repeat < min_repeat_customers:
        blocker = FitError(
            f"only {n_repeat} customer(s) with a repeat purchase, fewer than the {min_repeat_customers} "
            "needed to fit the CLV models",
            hint="lower clv.min_repeat_customers, widen the data window, or use the empirical fallback",
        )
    purchases = _attempt(
        "purchases",
        lambda: _purchase_scores(summary, customer, grid, discount, purchase_model),
        blocker,
        on_fit_failure,
        diagnostics,
    )
    outliers = spend_outliers(x, summary.monetary_value, customer)
    if outliers.any():
        diagnostics.append(f"spend: {int(outliers.sum())} customer(s) whose mean purchase is an outlier (up to "
                           f"{float(summary.monetary_value[outliers].max()):.4g}) left out of the spend model")
    fitted = customer & ~outliers
    gamma_gamma = _attempt(
        "spend",
        lambda: fit_gamma_gamma(x[fitted], summary.monetary_value[fitted]),
        blocker,
        on_fit_failure,
        diagnostics,
    )
    if gamma_gamma is not None and gamma_gamma.independence.warning:
        diagnostics.append(gamma_gamma.independence.warning)

    purchase_fit: PurchaseModelFit | None = None
    bgnbd: BgNbdFit | None = None
    if purchases is not None:
        purchase_fit, bgnbd, p_alive, expected, discounted = purchases
    else:
        rates = empirical_rates(summary)
        p_alive = rates.p_alive
        # A constant rate while active: the grid's discounted sum is rate * P(active) * sum(step * discount).
        active_rate = rates.rate * p_alive
        expected = active_rate * horizon
        discounted = active_rate * float(np.dot(np.diff(grid), discount))
    if gamma_gamma is not None:
        spend = gamma_gamma.params.conditional_expected_spend(x, summary.monetary_value)
    else:
        spend = empirical_rates(summary).spend

    zero = np.zeros(len(x))
    bounds: dict[str, FloatArray] = {}
    if interval_draws > 0:
        bounds = {name: np.full(len(x), np.nan) for name in _BOUND_FIELDS}
        if purchase_fit is None:
            diagnostics.append("CLV intervals: none, the purchases fell back to the empirical rules")
        else:
            try:
                found = score_intervals(
                    purchase_fit, gamma_gamma, x[customer], summary.recency[customer], summary.T[customer],
                    spend[customer], summary.monetary_value[customer], grid, discount, margin,
                    draws=interval_draws, level=interval_level,
                )
                for name, (low, high) in (("p_alive", found.p_alive), ("expected_purchases", found.expected_purchases),
                                          ("clv", found.clv)):
                    bounds[f"{name}_low"][customer], bounds[f"{name}_high"][customer] = low, high
            except FitError as error:
                diagnostics.append(f"CLV intervals: none, {error.message}")
    return ClvResult(
        expected_purchases=np.where(customer, expected, zero),
        p_alive=np.where(customer, p_alive, np.nan),
        expected_spend=np.where(customer, spend, zero),
        clv=np.where(customer, margin * spend * discounted, zero),
        historical_value=margin * summary.total_spend,
        is_customer=customer,
        purchase_model=purchase_fit.model if purchase_fit is not None else "empirical",
        spend_model="gamma_gamma" if gamma_gamma is not None else "empirical",
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        horizon=float(horizon),
        unit=summary.unit,
        diagnostics=tuple(diagnostics),
        purchase_fit=purchase_fit,
        spend_outliers=outliers,
        **bounds,
    )


def spend_outliers(x: FloatArray, monetary_value: FloatArray, customer: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Repeat customers whose mean spend per purchase is far above everyone else's (see
    :data:`OUTLIER_DEVIATIONS`): on the log scale, robust to the outliers themselves (median and MAD)."""
    out = np.zeros(len(x), dtype=bool)
    candidate = customer & (x > 0) & (monetary_value > 0) & np.isfinite(monetary_value)
    if np.count_nonzero(candidate) < 3:
        return out
    logs = np.log(monetary_value[candidate])
    median = float(np.median(logs))
    deviation = 1.4826 * float(np.median(np.abs(logs - median)))
    limit = median + max(OUTLIER_DEVIATIONS * deviation, math.log(OUTLIER_MIN_RATIO))
    out[candidate] = logs > limit
    return out


@dataclass(frozen=True)
class Intervals:
    """Per-customer (low, high) bounds of each output: the central ``level`` of its values over the draws."""

    p_alive: tuple[FloatArray, FloatArray]
    expected_purchases: tuple[FloatArray, FloatArray]
    clv: tuple[FloatArray, FloatArray]


def score_intervals(
    purchase_fit: PurchaseModelFit,
    gamma_gamma: GammaGammaFit | None,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    spend: FloatArray,
    monetary_value: FloatArray,
    grid: FloatArray,
    discount: FloatArray,
    margin: float,
    *,
    draws: int = 200,
    level: float = 0.90,
    seed: int = INTERVAL_SEED,
) -> Intervals:
    """Bounds of each customer's P(alive), expected purchases over the horizon and discounted CLV: the central
    ``level`` quantiles over ``draws`` parameter sets drawn from the Laplace approximation at the optimum (the
    log parameters ~ Normal(estimate, inverse observed information), so every draw is positive).

    The purchase model and Gamma-Gamma are drawn independently (they are fitted separately); without a
    Gamma-Gamma fit (empirical ``spend``) or with a parameter the data do not identify (NaN covariance), that
    part is held at its estimate, so the bounds reflect only the uncertainty that can be measured; a spend draw
    with q <= 1 (no finite mean) uses the estimate's ``spend``. The draws are fixed by ``seed``, so the bounds
    do not depend on the order of the customers. Parameter uncertainty only: a customer's own purchase noise
    is not in the bounds.

    Vectorised over the draws: every distinct history (x, t_x, T) is scored once under all draws, the
    expectations while alive once per distinct (x, T), CLV once per distinct (history, own mean spend).
    """
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    rng = np.random.default_rng(seed)
    purchase_draws = _draw(rng, np.array(list(purchase_fit.parameters.values())), purchase_fit.covariance, draws)
    spend_draws: FloatArray | None = None
    if gamma_gamma is not None:
        g = gamma_gamma.params
        spend_draws = _draw(rng, np.array([g.p, g.q, g.gamma]), gamma_gamma.covariance, draws)
    (hx, htx, hT), at_history = distinct_rows(x, t_x, T)
    (vx, vT), at_window = distinct_rows(hx, hT)
    total_if_alive, discounted_if_alive = _while_alive_under_draws(purchase_fit, purchase_draws, vx, vT, grid,
                                                                   discount)
    own = np.where(x > 0, monetary_value, 0.0)  # without repeat purchases the own mean spend plays no part
    (value_history, value_own, value_spend), at_value = distinct_rows(at_history.astype(np.float64), own, spend)
    value_of = value_history.astype(np.intp)
    bounds = {name: (np.empty(n), np.empty(n))
              for name, n in (("p_alive", len(hx)), ("expected", len(hx)), ("clv", len(value_of)))}
    per_block = max(1, _INTERVAL_BLOCK // draws)
    for start in range(0, len(hx), per_block):
        block = slice(start, start + per_block)
        alive = _p_alive_under_draws(purchase_fit, purchase_draws, hx[block], htx[block], hT[block])
        _bounds(alive, level, bounds["p_alive"], block)
        _bounds(alive * total_if_alive[:, at_window[block]], level, bounds["expected"], block)
        # Value rows are sorted by history, so this block's are contiguous.
        first, stop = np.searchsorted(value_of, [start, start + alive.shape[1]])
        rows = slice(int(first), int(stop))
        history = value_of[rows]
        if spend_draws is None:
            each = np.broadcast_to(value_spend[rows], (draws, len(history)))
        else:
            each = expected_spend_under_draws(spend_draws, hx[history], value_own[rows])
            each = np.where(np.isfinite(each), each, value_spend[rows])
        values = margin * each * alive[:, history - start] * discounted_if_alive[:, at_window[history]]
        _bounds(values, level, bounds["clv"], rows)
    return Intervals(
        p_alive=(bounds["p_alive"][0][at_history], bounds["p_alive"][1][at_history]),
        expected_purchases=(bounds["expected"][0][at_history], bounds["expected"][1][at_history]),
        clv=(bounds["clv"][0][at_value], bounds["clv"][1][at_value]),
    )


_BOUND_FIELDS = ("clv_low", "clv_high", "p_alive_low", "p_alive_high", "expected_purchases_low",
                 "expected_purchases_high")


def _bounds(values: FloatArray, level: float, out: tuple[FloatArray, FloatArray], rows: slice) -> None:
    """The central ``level`` quantiles of each column of ``values`` into ``out[0][rows]``, ``out[1][rows]``: the
    same numbers as ``np.quantile`` (linear). Each column's draws are sorted as one contiguous row: NumPy's
    vectorised sort of short contiguous rows takes half the time of a partial sort down the strided columns."""
    last = values.shape[0] - 1
    positions = (0.5 * (1.0 - level) * last, 0.5 * (1.0 + level) * last)
    ordered = np.ascontiguousarray(values.T)
    ordered.sort(axis=1)
    for target, pos in zip(out, positions, strict=True):
        below = ordered[:, math.floor(pos)]
        target[rows] = below + (pos - math.floor(pos)) * (ordered[:, math.ceil(pos)] - below)


def _p_alive_under_draws(
    fit: PurchaseModelFit, draws: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """(draws x customers) P(alive): BG/NBD's closed form and Pareto/NBD's series over all draws at once, the
    MBG/NBD closed form per draw."""
    if fit.model == "pareto_nbd":
        return p_alive_under_draws(draws, x, t_x, T)
    if fit.model == "bgnbd":
        return bgnbd_p_alive_under_draws(draws, x, t_x, T)
    return np.stack([fit.with_parameters(row).p_alive(x, t_x, T) for row in draws])


def _while_alive_under_draws(
    fit: PurchaseModelFit, draws: FloatArray, x: FloatArray, T: FloatArray, grid: FloatArray, discount: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(draws x distinct (x, T)) expected purchases over the horizon if alive, undiscounted and discounted."""
    if fit.model == "pareto_nbd":
        return expected_while_alive_under_draws(draws, x, T, grid, discount)
    return _while_alive_through_z(fit, draws, x, T, grid, discount)


def _while_alive_through_z(
    fit: PurchaseModelFit, draws: FloatArray, x: FloatArray, T: FloatArray, grid: FloatArray, discount: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """:func:`_while_alive_under_draws` for BG/NBD and MBG/NBD, by Chebyshev interpolation of each (draw, x)'s
    expectation as a function of one variable.

    Their expectation while alive, G = c/(a-1) [1 - (1-z)^(r+x) 2F1(...; z)] with z = t/(alpha+T+t), depends on
    T and t only through z (Fader, Hardie & Lee 2005, eq. 10). In w = -log(1-z) = log1p(t/(alpha+T)) it is
    analytic except on the lines Im w = +-pi (the image of 2F1's cut z >= 1), and G/w is analytic at w = 0 too,
    so a Chebyshev interpolant of G/w on [0, W] converges geometrically, at the rate of the Bernstein ellipse
    that reaches those lines. Per (draw, x), G is evaluated exactly (every guard of the closed form applies) at
    a few dozen nodes instead of at every (T, step); the interpolants of all x are then evaluated at every
    (draw, T, step) together, by matrix products. A (draw, x) whose Chebyshev tail is not below
    :data:`_CHEBYSHEV_TAIL` of its smallest value is evaluated exactly at its own points instead.
    """
    xs, x_of = np.unique(x, return_inverse=True)
    windows, T_of = np.unique(T, return_inverse=True)
    steps = grid[1:]
    # discounted = sum_k discount_k (G_k - G_(k-1)) = sum_k (discount_k - discount_(k+1)) G_k, discount_(K+1) = 0.
    step_weights = discount - np.append(discount[1:], 0.0)
    alpha = draws[:, list(fit.parameters).index("alpha")]
    # The largest w of each draw: the shortest window at the full horizon.
    span = np.log1p(steps[-1] / (alpha + windows[0]))
    nodes = _chebyshev_nodes(float(np.max(span)))
    theta = np.pi * (np.arange(nodes) + 0.5) / nodes
    to_coefficients = 2.0 / nodes * np.cos(np.outer(np.arange(nodes), theta))
    to_coefficients[0] *= 0.5
    coefficients = np.empty((len(draws), len(xs), nodes))
    exact = np.zeros((len(draws), len(xs)), dtype=bool)
    for k, row in enumerate(draws):
        w_nodes = 0.5 * span[k] * (1.0 + np.cos(theta))
        # At T = 0, t = alpha (e^w - 1) gives z = 1 - e^-w.
        values = fit.with_parameters(row).expected_purchases_if_alive(alpha[k] * np.expm1(w_nodes)[:, None], xs, 0.0)
        values = values / w_nodes[:, None]
        found = to_coefficients @ values
        coefficients[k] = found.T
        tail = np.abs(found[-1]) + np.abs(found[-2])
        # Written so that NaN (a draw the closed form cannot evaluate) also takes the exact path.
        exact[k] = ~(tail <= _CHEBYSHEV_TAIL * np.min(np.abs(values), axis=0))
    total = np.empty((len(draws), len(x)))
    discounted = np.empty((len(draws), len(x)))
    per_block = max(1, _INTERVAL_BLOCK // (len(draws) * max(len(steps), len(xs))))
    for start in range(0, len(windows), per_block):
        block = windows[start : start + per_block]
        w = np.log1p(steps / (alpha[:, None, None] + block[:, None]))  # (draws, windows, steps)
        u = 2.0 * w / span[:, None, None] - 1.0
        weighted = w * step_weights
        basis_total = np.empty((len(draws), nodes, len(block)))
        basis_discounted = np.empty((len(draws), nodes, len(block)))
        # T_0 = 1, T_1 = u, T_(j+1) = 2u T_j - T_(j-1), in place: these arrays are the bulk of the work.
        previous, current, twice_u, scratch = np.ones_like(u), u, 2.0 * u, np.empty_like(u)
        for j in range(nodes):
            if j >= 2:
                np.multiply(twice_u, current, out=scratch)
                np.subtract(scratch, previous, out=previous)
                previous, current = current, previous
            chebyshev = previous if j == 0 else current
            basis_total[:, j] = chebyshev[:, :, -1] * w[:, :, -1]
            basis_discounted[:, j] = np.einsum("dwk,dwk->dw", chebyshev, weighted)
        pairs = np.flatnonzero((T_of >= start) & (T_of < start + len(block)))
        columns = (slice(None), x_of[pairs], T_of[pairs] - start)
        total[:, pairs] = np.matmul(coefficients, basis_total)[columns]
        discounted[:, pairs] = np.matmul(coefficients, basis_discounted)[columns]
    for k, xi in zip(*np.nonzero(exact), strict=True):
        pairs = np.flatnonzero(x_of == xi)
        cumulative = fit.with_parameters(draws[k]).expected_purchases_if_alive(steps[:, None], x[pairs], T[pairs])
        total[k, pairs] = cumulative[-1]
        discounted[k, pairs] = discount @ np.diff(cumulative, axis=0, prepend=0.0)
    return total, discounted


def _chebyshev_nodes(span: float) -> int:
    """Nodes for a Chebyshev interpolant on [0, span] of a function analytic within distance pi of the real axis:
    its error falls like rho^-n, rho = b + sqrt(1 + b^2) with b = pi / (span / 2) the ellipse's semi-minor axis."""
    b = 2.0 * np.pi / max(span, 1e-12)
    rho = b + math.sqrt(1.0 + b * b)
    return int(min(_MAX_NODES, max(8, math.ceil(math.log(1e15) / math.log(rho)) + 2)))


def _draw(rng: np.random.Generator, estimate: FloatArray, covariance: FloatArray, draws: int) -> FloatArray:
    """``draws`` natural-scale parameter sets: log-normal around ``estimate`` with the log-scale covariance;
    the estimate itself, repeated, when the covariance is unknown."""
    if covariance.shape != (len(estimate), len(estimate)) or not np.all(np.isfinite(covariance)):
        return np.tile(estimate, (draws, 1))
    return np.asarray(np.exp(rng.multivariate_normal(np.log(estimate), covariance, size=draws)), dtype=np.float64)


def _purchase_scores(
    summary: TransactionSummary,
    customer: npt.NDArray[np.bool_],
    grid: FloatArray,
    discount: FloatArray,
    model: ModelName,
) -> PurchaseScores:
    """Fit the purchase model on the customers, then P(alive), expected and discounted expected purchases for all."""
    x = summary.frequency.astype(np.float64)
    data = (x[customer], summary.recency[customer], summary.T[customer])
    bgnbd = fit_bgnbd(*data) if model == "bgnbd" else None
    fit = describe_bgnbd(bgnbd) if bgnbd is not None else fit_purchase_model(model, *data)
    p_alive = fit.params.p_alive(x, summary.recency, summary.T)
    expected, discounted = _expected_purchases(fit.params, x, summary.T, p_alive, grid, discount)
    return fit, bgnbd, p_alive, expected, discounted


def _attempt(
    part: str,
    fit: Callable[[], FitT],
    blocker: FitError | None,
    on_fit_failure: OnFitFailure,
    diagnostics: list[str],
) -> FitT | None:
    """Run one model fit (and scoring); on FitError (or a known ``blocker``) raise or record the fallback."""
    try:
        if blocker is not None:
            raise blocker
        return fit()
    except FitError as error:
        if on_fit_failure == "raise":
            raise
        diagnostics.append(f"{part}: {error.message}; used the empirical fallback")
        return None


def _discount_grid(
    horizon: float, annual_discount_rate: float, units_per_year: float, steps_per_year: int
) -> tuple[FloatArray, FloatArray]:
    """Step boundaries 0 = t_0 < ... < t_K = horizon (about ``steps_per_year`` a year) and the discount
    factor at each step's midpoint."""
    steps = max(1, math.ceil(horizon / units_per_year * steps_per_year - 1e-9))
    grid = np.linspace(0.0, horizon, steps + 1)
    midpoints = 0.5 * (grid[1:] + grid[:-1])
    discount = (1.0 + annual_discount_rate) ** (-midpoints / units_per_year)
    return grid, discount


def _expected_purchases(
    params: PurchaseParams, x: FloatArray, T: FloatArray, p_alive: FloatArray, grid: FloatArray, discount: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """E[Y(horizon)] and its discounted counterpart for every customer.

    E[Y(t) | x, t_x, T] = P(alive) * G(t; x, T), where G depends on x and T only; G is evaluated once per
    distinct (x, T) on the whole grid, in chunks, and mapped back.
    """
    order = np.lexsort((T, x))
    xs, Ts = x[order], T[order]
    new = np.ones(len(xs), dtype=bool)
    new[1:] = (xs[1:] != xs[:-1]) | (Ts[1:] != Ts[:-1])
    group = np.cumsum(new) - 1
    inverse = np.empty(len(x), dtype=np.intp)
    inverse[order] = group
    ux, uT = xs[new], Ts[new]
    total = np.empty(len(ux))
    discounted = np.empty(len(ux))
    t = grid[1:, None]
    for start in range(0, len(ux), _CHUNK):
        part = slice(start, start + _CHUNK)
        cumulative = params.expected_purchases_if_alive(t, ux[part], uT[part])
        increments = np.diff(cumulative, axis=0, prepend=0.0)
        total[part] = cumulative[-1]
        discounted[part] = discount @ increments
    return p_alive * total[inverse], p_alive * discounted[inverse]
