"""Customer value per contact: won deals -> transaction summary -> :func:`core.clv.fit_and_score`, plus the
derived values stage rules use (:data:`core.fields.CLV_VALUES`).

Purchases are the won deals closed by ``as_of`` with a known close time (an unknown amount counts 0). The
models are fitted once on the whole base. When they cannot be fitted (too few repeat customers,
non-convergence...) the CLV package's empirical fallback scores everyone and the reason is kept in
:attr:`ClvOutcome.diagnostics`; if even that fails, CLV falls back to historical value. The run never stops
for CLV and no output is NaN except ``p_alive`` for contacts who never bought (not applicable).

``clv.model = "auto"`` chooses the repeat-purchase model the way the BTYD literature compares them
(:func:`core.clv.compare_by_holdout`): the history is split in half at the midpoint between the first
purchase and ``as_of`` (CDNOW: 39 + 39 weeks), BG/NBD, MBG/NBD and Pareto/NBD are fitted on the first half
and the one whose forecasts of each customer's repeat purchases in the second half have the lowest mean
absolute error is refitted on the whole history. The comparison is kept in the diagnostics (``holdout``).

Uncertainty: each fitted model's parameter standard errors (inverse Hessian of the log-likelihood at the
optimum) are in the diagnostics (``standard_errors``); with ``intervals`` on, ``clv_low``/``clv_high``,
``p_alive_low``/``p_alive_high`` and ``expected_purchases_low``/``expected_purchases_high`` bound each customer's
value by the central 90% of its values over :data:`INTERVAL_DRAWS` fixed-seed parameter draws
(:func:`core.clv.value.score_intervals`).

Derived values, in days:

* ``usual_gap_days``: the customer's expected time between purchases, ``1 / E[lambda]``. With BG/NBD (and
  MBG/NBD, Pareto/NBD, whose purchase rate has the same Gamma(r, alpha) prior) it is the posterior mean
  purchase rate ``(r + x) / (alpha + T)`` (Fader, Hardie & Lee 2005, the Gamma posterior of lambda), which
  shrinks a short history towards the population; with the empirical fallback, the empirical shrunk rate.
* ``recency_ratio``: days since the last purchase over ``usual_gap_days`` (2 = two usual gaps of silence).
* ``clv_percentile``: the contact's CLV rank among customers, 0-100 (100 = the highest).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.clv import compare_by_holdout, fit_and_score, summarize
from core.clv.selection import ModelName, describe_bgnbd, frequency_histogram
from core.columns import DealColumns, FloatArray, StatusCode
from core.config import ClvConfig
from core.errors import ClmError
from core.quality import EXAMPLES

DAY = 86_400.0
#: Parameter sets drawn for the CLV intervals: the 5th and 95th percentiles of 200 draws move by about 1% of
#: the interval's width from one seed to another.
INTERVAL_DRAWS = 200


@dataclass(frozen=True)
class ClvOutcome:
    """Per-contact CLV columns (``columns``: every name of :data:`core.fields.CLV_VALUES`) and how they were
    obtained (``model``, ``diagnostics``)."""

    columns: dict[str, FloatArray]
    is_customer: np.ndarray
    model: str
    diagnostics: dict[str, Any] = field(default_factory=dict)


def customer_value(deals: DealColumns, n_contacts: int, as_of: float, config: ClvConfig, *,
                   intervals: bool = False) -> ClvOutcome:
    """Fit the CLV models on the won deals and score every contact (see the module docstring); with
    ``intervals`` (or ``config.intervals``), ``columns`` also has the ``*_low``/``*_high`` bounds."""
    intervals = intervals or config.intervals
    notes: list[str] = []
    owner = deals.contact_index
    won = (owner >= 0) & (deals.status == StatusCode.WON) & ~(deals.closed_at > as_of)
    undated = won & np.isnan(deals.closed_at)
    if undated.any():
        notes.append(f"{int(undated.sum())} won deal(s) without a close date left out of CLV")
    won &= ~undated
    amount = deals.amount[won]
    unpriced = np.isnan(amount)
    if unpriced.any():
        notes.append(f"{int(unpriced.sum())} won deal(s) without an amount counted as 0")
    paid = np.where(unpriced, 0.0, amount)
    summary = summarize(owner[won], deals.closed_at[won], paid, n_contacts, as_of, unit=config.time_unit)
    days_per_unit = summary.days_per_unit
    holdout: dict[str, Any] | None = None
    purchase_model: ModelName = "bgnbd"
    if config.model == "auto":
        purchase_model, holdout = _choose_by_holdout(owner[won], deals.closed_at[won], paid, n_contacts, as_of,
                                                     config, notes)
    elif config.model != "historical":
        purchase_model = config.model
    try:
        result = fit_and_score(
            summary, config.horizon, config.annual_discount_rate, config.margin,
            # "historical" asks for no model: the empirical rules score everyone directly.
            min_repeat_customers=config.min_repeat_customers if config.model != "historical" else sys.maxsize,
            on_fit_failure="empirical",
            purchase_model=purchase_model,
            interval_draws=INTERVAL_DRAWS if intervals else 0,
        )
    except (ClmError, ValueError, FloatingPointError) as error:
        return _historical_only(summary.total_spend * config.margin, summary.has_purchase, summary.frequency,
                                summary.recency, summary.T, days_per_unit,
                                [*notes, f"CLV models failed ({error}); CLV = historical value"])
    customer = result.is_customer
    x = summary.frequency.astype(np.float64)
    if result.purchase_fit is not None:
        named = result.purchase_fit.parameters
        rate = (named["r"] + x) / (named["alpha"] + summary.T)
    else:
        from core.clv import empirical_rates

        rate = empirical_rates(summary).rate
    with np.errstate(divide="ignore", invalid="ignore"):
        gap_days = np.where(customer & (rate > 0), days_per_unit / rate, np.nan)
        days_since_last = (as_of - summary.last_purchase) / DAY
        ratio = days_since_last / gap_days
    diagnostics: dict[str, Any] = {
        "model": config.model,
        # True when the configured models could not be fitted and the empirical rules were used instead.
        "fallback": config.model != "historical" and (result.purchase_model == "empirical"
                                                      or result.spend_model != "gamma_gamma"),
        "purchase_model": result.purchase_model,
        "spend_model": result.spend_model,
        "customers": int(customer.sum()),
        "repeat_customers": int((customer & (x > 0)).sum()),
        "unit": result.unit,
        "horizon": result.horizon,
    }
    if result.bgnbd is not None:
        fit = result.bgnbd
        diagnostics["bgnbd"] = {"r": fit.params.r, "alpha": fit.params.alpha, "a": fit.params.a, "b": fit.params.b,
                                "log_likelihood": fit.log_likelihood, "iterations": fit.iterations,
                                "message": fit.message, "standard_errors": describe_bgnbd(fit).standard_errors}
    if result.purchase_fit is not None and result.bgnbd is None:
        fitted = result.purchase_fit
        diagnostics[fitted.model] = {**fitted.parameters, "log_likelihood": fitted.log_likelihood,
                                     "iterations": fitted.iterations, "standard_errors": fitted.standard_errors}
    if holdout is not None:
        diagnostics["holdout"] = holdout
    if result.purchase_fit is not None:
        # The fit against the data it came from: customers by repeat purchases, actual vs expected.
        histogram = frequency_histogram(result.purchase_fit.params, summary.frequency[customer], summary.T[customer])
        if histogram is not None:
            diagnostics["frequency_histogram"] = {"model": result.purchase_fit.model, **histogram.to_dict()}
    if result.gamma_gamma is not None:
        gg = result.gamma_gamma
        diagnostics["gamma_gamma"] = {"p": gg.params.p, "q": gg.params.q, "gamma": gg.params.gamma,
                                      "log_likelihood": gg.log_likelihood, "message": gg.message,
                                      "standard_errors": gg.standard_errors}
    if config.model == "historical":
        notes.append("clv.model = historical: empirical rates, no model fitted")
    else:
        notes.extend(result.diagnostics)
    if result.spend_outliers is not None and result.spend_outliers.any():
        outlying = _largest_deals(deals.ids[won], owner[won], paid, result.spend_outliers)
        diagnostics["spend_outliers"] = {"contacts": int(result.spend_outliers.sum()), "deals": outlying}
        notes.append(f"the spend model left out the outlying deal(s) {', '.join(outlying)}"
                     + (" and others" if len(outlying) < int(result.spend_outliers.sum()) else ""))
    diagnostics["notes"] = notes
    columns = {
        "frequency": np.where(customer, x, np.nan),
        "recency": np.where(customer, summary.recency * days_per_unit, np.nan),
        "age": np.where(customer, summary.T * days_per_unit, np.nan),
        "p_alive": _finite_or(result.p_alive, np.nan, customer),
        "expected_purchases": _finite_or(result.expected_purchases, 0.0, customer),
        "expected_spend": _finite_or(result.expected_spend, 0.0, customer),
        "clv": _finite_or(result.clv, 0.0, customer),
        "historical_value": np.nan_to_num(result.historical_value, nan=0.0, posinf=0.0, neginf=0.0),
        "usual_gap_days": gap_days,
        "recency_ratio": ratio,
    }
    columns["clv_percentile"] = percentile_rank(columns["clv"], customer)
    for name in ("clv_low", "clv_high", "p_alive_low", "p_alive_high", "expected_purchases_low",
                 "expected_purchases_high"):
        bound = getattr(result, name)
        if bound is not None:
            columns[name] = np.where(customer, bound, np.nan)
    return ClvOutcome(columns=columns, is_customer=customer, model=diagnostics["purchase_model"],
                      diagnostics=diagnostics)


def _choose_by_holdout(customer: np.ndarray, time: FloatArray, amount: FloatArray, n_contacts: int, as_of: float,
                       config: ClvConfig, notes: list[str]) -> tuple[ModelName, dict[str, Any] | None]:
    """The purchase model with the lowest holdout MAE over the second half of the history (module docstring),
    and the comparison for the diagnostics; BG/NBD, with the reason in ``notes``, when none can be compared."""
    if not len(time):
        notes.append("clv.model = auto: no purchases to compare the models on; used BG/NBD")
        return "bgnbd", None
    first_day = np.floor(float(time.min()) / DAY)
    split = (first_day + np.floor((np.floor(as_of / DAY) - first_day) / 2.0)) * DAY
    if split <= first_day * DAY:
        notes.append("clv.model = auto: the history is too short to hold half of it out; used BG/NBD")
        return "bgnbd", None
    try:
        report = compare_by_holdout(customer, time, amount, n_contacts, split, as_of, unit=config.time_unit)
    except (ClmError, ValueError, FloatingPointError) as error:
        notes.append(f"clv.model = auto: the holdout comparison failed ({error}); used BG/NBD")
        return "bgnbd", None
    holdout: dict[str, Any] = {
        "calibration_end": split,
        "holdout_length": report.holdout_length,
        "actual": report.actual_total,
        "chosen": report.chosen,
        "models": {s.model: {"predicted": s.predicted_total, "mae": s.mae, "rmse": s.rmse, "error": s.error}
                   for s in report.scores},
        "table": report.table(),
        "tracking": report.tracking.to_dict() if report.tracking is not None else None,
        "by_frequency": [{"x": row.label, "customers": row.customers, "actual": row.actual,
                          "predicted": row.predicted} for row in report.by_frequency],
    }
    if report.chosen is None:
        notes.append("clv.model = auto: no model could be fitted on the first half of the history; used BG/NBD")
        return "bgnbd", holdout
    best = report.score(report.chosen)
    notes.append(f"clv.model = auto: {report.chosen} chosen by holdout MAE {best.mae:.3f} over the last "
                 f"{report.holdout_length:g} {config.time_unit}")
    return report.chosen, holdout


def _largest_deals(ids: np.ndarray, owner: np.ndarray, paid: FloatArray, flagged: np.ndarray) -> list[str]:
    """The id of each flagged contact's largest deal (up to :data:`core.quality.EXAMPLES`), largest first."""
    rows = np.flatnonzero(flagged[owner])
    # Largest first, then one per contact: the deal that made its mean spend an outlier.
    rows = rows[np.argsort(-paid[rows], kind="stable")]
    _, first = np.unique(owner[rows], return_index=True)
    chosen = rows[np.sort(first)][:EXAMPLES]
    return [str(i) for i in ids[chosen]]


def _finite_or(values: FloatArray, fill: float, customer: np.ndarray) -> FloatArray:
    """Customers' values with any non-finite one replaced by ``fill``; non-customers ``fill``."""
    return np.where(customer & np.isfinite(values), values, fill)


def percentile_rank(values: FloatArray, among: np.ndarray) -> FloatArray:
    """For the rows ``among``, the share (0-100) of those rows with a value at or below theirs; NaN elsewhere."""
    out = np.full(len(values), np.nan)
    pool = np.sort(values[among])
    if len(pool):
        out[among] = 100.0 * np.searchsorted(pool, values[among], side="right") / len(pool)
    return out


def _historical_only(historical: FloatArray, customer: np.ndarray, frequency: np.ndarray, recency: FloatArray,
                     T: FloatArray, days_per_unit: float, notes: list[str]) -> ClvOutcome:
    """CLV = historical value, no expected purchases, unknown P(alive): the last-resort fallback."""
    x = frequency.astype(np.float64)
    value = np.nan_to_num(historical, nan=0.0)
    columns = {
        "frequency": np.where(customer, x, np.nan),
        "recency": np.where(customer, recency * days_per_unit, np.nan),
        "age": np.where(customer, T * days_per_unit, np.nan),
        "p_alive": np.full(len(x), np.nan),
        "expected_purchases": np.zeros(len(x)),
        "expected_spend": np.zeros(len(x)),
        "clv": value,
        "historical_value": value,
        "usual_gap_days": np.full(len(x), np.nan),
        "recency_ratio": np.full(len(x), np.nan),
    }
    columns["clv_percentile"] = percentile_rank(value, customer)
    return ClvOutcome(columns=columns, is_customer=customer, model="historical_value",
                      diagnostics={"model": "historical_value", "fallback": True, "purchase_model": "none",
                                   "spend_model": "none", "notes": notes})
