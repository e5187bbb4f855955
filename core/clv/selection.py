"""Choose the repeat-purchase model by its error on a holdout period, the way the BTYD literature compares
models (Schmittlein, Morrison & Colombo 1987; Fader, Hardie & Lee 2005; Batislam, Denizel & Filiztekin
2007).

Each customer's history is split at a calibration date. Every eligible model (BG/NBD, MBG/NBD, Pareto/NBD)
is fitted on the calibration summary and predicts each customer's repeat transactions in the holdout
period (its conditional expectation given the calibration history). The predictions are scored against
what the customers actually did: mean absolute and root mean squared error per customer, error of the
total, and the conditional-expectations table by calibration frequency (the papers' Figure of actual vs
predicted mean holdout transactions for customers with 0, 1, ..., 7+ calibration repeat purchases). The
model with the lowest error under the chosen criterion wins; a model that cannot be fitted is reported
with the reason and never chosen. Only continuous-time models compete: BG/BB needs discrete opportunities.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from core.clv._optimize import standard_errors
from core.clv.bgnbd import BgNbdFit, BgNbdParams, fit_bgnbd
from core.clv.mbgnbd import MbgNbdParams, fit_mbgnbd
from core.clv.paretonbd import ParetoNbdParams, fit_pareto_nbd
from core.clv.summary import DAYS_PER_UNIT, SECONDS_PER_DAY, TimeUnit, TransactionSummary, summarize
from core.errors import FitError

FloatArray = npt.NDArray[np.float64]
ModelName = Literal["bgnbd", "mbgnbd", "pareto_nbd"]
Criterion = Literal["mae", "rmse", "total"]

MODELS: tuple[ModelName, ...] = ("bgnbd", "mbgnbd", "pareto_nbd")
LABELS: dict[str, str] = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}


class PurchaseParams(Protocol):
    """What selection and scoring need from a fitted repeat-purchase model's parameters."""

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """P(alive at T | x, t_x, T)."""
        ...

    def conditional_expected_purchases(
        self, t: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]."""
        ...

    def expected_purchases(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)]: expected repeat purchases in (0, t] of a customer acquired at 0."""
        ...

    def expected_purchases_if_alive(self, t: npt.ArrayLike, x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """E[Y(t) | alive at T, x, T], the factor of E[Y(t) | x, t_x, T] that does not depend on t_x."""
        ...


@dataclass(frozen=True)
class PurchaseModelFit:
    """One fitted repeat-purchase model, whichever it is: parameters named as in its paper."""

    model: ModelName
    params: PurchaseParams
    parameters: dict[str, float]
    log_likelihood: float
    iterations: int
    #: Covariance of the log parameters at the optimum, in the order of ``parameters`` (NaN: not identified).
    covariance: FloatArray

    @property
    def standard_errors(self) -> dict[str, float]:
        """Each parameter's standard error from the inverse Hessian of the log-likelihood (NaN: not identified)."""
        values = standard_errors(list(self.parameters.values()), self.covariance)
        return {name: float(se) for name, se in zip(self.parameters, values, strict=True)}

    def with_parameters(self, values: FloatArray) -> PurchaseParams:
        """The same model with other parameter values (natural scale, in the order of ``parameters``)."""
        return _PARAMS[self.model](*(float(v) for v in values))


_PARAMS: dict[str, Callable[..., PurchaseParams]] = {
    "bgnbd": BgNbdParams,
    "mbgnbd": MbgNbdParams,
    "pareto_nbd": ParetoNbdParams,
}


def fit_purchase_model(
    model: ModelName,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> PurchaseModelFit:
    """Fit ``model`` ("bgnbd", "mbgnbd" or "pareto_nbd") to (x, t_x, T); raises FitError as the model does."""
    fitter = _FITTERS.get(model)
    if fitter is None:
        raise ValueError(f"unknown purchase model {model!r}; choose one of {', '.join(MODELS)}")
    return fitter(x, t_x, T, weights)


def describe_bgnbd(fit: BgNbdFit) -> PurchaseModelFit:
    """The model-independent view of a BG/NBD fit."""
    p = fit.params
    named = {"r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b}
    return PurchaseModelFit("bgnbd", p, named, fit.log_likelihood, fit.iterations, fit.covariance)


def _fit_bgnbd(x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike, w: npt.ArrayLike | None) -> PurchaseModelFit:
    return describe_bgnbd(fit_bgnbd(x, t_x, T, weights=w))


def _fit_mbgnbd(x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike, w: npt.ArrayLike | None) -> PurchaseModelFit:
    fit = fit_mbgnbd(x, t_x, T, weights=w)
    p = fit.params
    named = {"r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b}
    return PurchaseModelFit("mbgnbd", p, named, fit.log_likelihood, fit.iterations, fit.covariance)


def _fit_pareto(x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike, w: npt.ArrayLike | None) -> PurchaseModelFit:
    fit = fit_pareto_nbd(x, t_x, T, weights=w)
    p = fit.params
    named = {"r": p.r, "alpha": p.alpha, "s": p.s, "beta": p.beta}
    return PurchaseModelFit("pareto_nbd", p, named, fit.log_likelihood, fit.iterations, fit.covariance)


_FITTERS: dict[str, Callable[[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike | None], PurchaseModelFit]] = {
    "bgnbd": _fit_bgnbd,
    "mbgnbd": _fit_mbgnbd,
    "pareto_nbd": _fit_pareto,
}


@dataclass(frozen=True)
class ModelScore:
    """One model's holdout performance. ``fit`` is None (and ``error`` says why) when it could not be fitted;
    its errors are then NaN. ``total_error`` is predicted minus actual; ``relative_total_error`` its share of
    the actual total."""

    model: ModelName
    fit: PurchaseModelFit | None
    error: str | None
    predicted_total: float
    mae: float
    rmse: float
    total_error: float
    relative_total_error: float

    def criterion_value(self, criterion: Criterion) -> float:
        """The error that ``criterion`` minimises (NaN when unfitted)."""
        if criterion == "mae":
            return self.mae
        if criterion == "rmse":
            return self.rmse
        return abs(self.total_error)


@dataclass(frozen=True)
class FrequencyRow:
    """Customers with one calibration frequency (the last row: that many or more), their mean actual holdout
    transactions and each fitted model's mean prediction (keyed by model name)."""

    label: str
    customers: int
    actual: float
    predicted: dict[str, float]


@dataclass(frozen=True)
class TrackingCurve:
    """Cumulative repeat transactions of the calibration cohort from its first purchase day to the holdout end,
    actual and as each fitted model expects them: the tracking plot of Fader, Hardie & Lee (2005, figure 3),
    which shows when a forecast drifts from the data, where the holdout totals show only by how much.

    ``t`` is the grid in ``unit`` since ``start`` (epoch seconds of the cohort's first purchase day);
    ``calibration_end`` is on the same scale. A model's curve is the sum over the cohort of its unconditional
    E[X(t - birth)], so in the calibration period it tracks the data only as well as the fit does."""

    unit: TimeUnit
    start: float
    calibration_end: float
    t: tuple[float, ...]
    actual: tuple[float, ...]
    predicted: dict[str, tuple[float, ...]]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (for the run diagnostics and the report)."""
        return {"unit": self.unit, "start": self.start, "calibration_end": self.calibration_end,
                "t": list(self.t), "actual": list(self.actual),
                "predicted": {m: list(v) for m, v in self.predicted.items()}}


#: Grid points of a tracking curve at most: enough for a smooth line, few enough for a report.
TRACKING_POINTS = 160


def tracking_curve(
    customer: npt.ArrayLike,
    time: npt.ArrayLike,
    calibration_end: float,
    holdout_end: float,
    fits: Mapping[str, PurchaseModelFit],
    *,
    unit: TimeUnit = "weeks",
    points: int = TRACKING_POINTS,
) -> TrackingCurve:
    """The :class:`TrackingCurve` of the customers with a purchase by ``calibration_end`` (raw purchases as
    :func:`~core.clv.summarize` takes them; births are first purchase days, repeat transactions distinct later
    purchase days, as there). Vectorised: one sort of the purchases, and each model evaluated once per distinct
    birth day and grid point."""
    cust = np.asarray(customer, dtype=np.int64).ravel()
    day = np.floor(np.asarray(time, dtype=np.float64).ravel() / SECONDS_PER_DAY).astype(np.int64)
    end_day, cal_day = math.floor(holdout_end / SECONDS_PER_DAY), math.floor(calibration_end / SECONDS_PER_DAY)
    keep = day <= end_day
    cust, day = cust[keep], day[keep]
    days_per_unit = DAYS_PER_UNIT[unit]
    if not len(day):
        return TrackingCurve(unit, float("nan"), float("nan"), (), (), {m: () for m in fits})
    span = int(day.max() - day.min()) + 1
    key = np.unique(cust * span + (day - day.min()))  # distinct (customer, day), ascending within a customer
    cust, day = key // span, key % span + day.min()
    first = np.ones(len(key), dtype=bool)
    first[1:] = cust[1:] != cust[:-1]
    births = day[first]
    cohort = births <= cal_day
    birth_of = np.repeat(births, np.diff(np.append(np.flatnonzero(first), len(key))))
    repeat_days = np.sort(day[~first & (birth_of <= cal_day)])
    start_day = int(births[cohort].min()) if cohort.any() else cal_day
    step = max(days_per_unit, math.ceil((end_day - start_day) / max(points - 1, 1)))
    grid = np.arange(start_day, end_day + step, step, dtype=np.float64)
    grid[-1] = min(grid[-1], end_day)
    # The calibration end is a point of its own: there the actual curve equals the calibration summary's total.
    grid = np.union1d(grid, [float(cal_day)]) if start_day <= cal_day <= end_day else grid
    actual = np.searchsorted(repeat_days, grid, side="right").astype(np.float64)
    birth_days, counts = np.unique(births[cohort], return_counts=True)
    ages = np.clip(grid[None, :] - birth_days[:, None], 0.0, None) / days_per_unit
    predicted = {}
    for model, fit in fits.items():
        expected = fit.params.expected_purchases(ages.ravel()).reshape(ages.shape)
        predicted[model] = tuple(float(v) for v in counts @ expected)
    return TrackingCurve(unit, start_day * SECONDS_PER_DAY, (cal_day - start_day) / days_per_unit,
                         tuple(float(v) for v in (grid - start_day) / days_per_unit),
                         tuple(float(v) for v in actual), predicted)


@dataclass(frozen=True)
class FrequencyHistogram:
    """Customers by their number of repeat purchases in their own observation time (0, 1, ..., the last
    bucket that many or more): actual, and as the fitted model expects them, the sum over customers of
    P(X(T) = x) (Fader, Hardie & Lee 2005, figure 2): how well the fit reproduces the data it came from."""

    labels: tuple[str, ...]
    actual: tuple[int, ...]
    expected: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (for the run diagnostics and the report)."""
        return {"labels": list(self.labels), "actual": list(self.actual), "expected": list(self.expected)}


class _CountModel(Protocol):
    def p_purchases(self, k: npt.ArrayLike, t: npt.ArrayLike) -> FloatArray: ...


def frequency_histogram(params: object, frequency: npt.ArrayLike, T: npt.ArrayLike,
                        max_frequency: int = 7) -> FrequencyHistogram | None:
    """The :class:`FrequencyHistogram` of customers with observation times ``T`` (units) and repeat purchases
    ``frequency``; None for a model without P(X(t) = x). One evaluation per distinct T and count."""
    if not hasattr(params, "p_purchases"):
        return None
    model: _CountModel = params
    x = np.asarray(frequency, dtype=np.int64)
    times, per_time = np.unique(np.asarray(T, dtype=np.float64), return_counts=True)
    k = np.arange(max_frequency, dtype=np.float64)
    below = per_time @ model.p_purchases(k[None, :], times[:, None]) if len(times) else np.zeros(max_frequency)
    expected = [*below.tolist(), float(len(x) - below.sum())]
    actual = np.bincount(np.minimum(x, max_frequency), minlength=max_frequency + 1)
    labels = (*(str(i) for i in range(max_frequency)), f"{max_frequency}+")
    return FrequencyHistogram(labels, tuple(int(v) for v in actual), tuple(float(v) for v in expected))


@dataclass(frozen=True)
class HoldoutReport:
    """The comparison of the models on one calibration/holdout split, and the model it chose.

    Times are epoch seconds; ``holdout_length`` is in ``unit``. ``chosen`` is None when no model could be
    fitted (then every score's ``error`` says why).
    """

    calibration_end: float
    holdout_end: float
    unit: TimeUnit
    holdout_length: float
    n_customers: int
    actual_total: float
    criterion: Criterion
    chosen: ModelName | None
    scores: tuple[ModelScore, ...]
    by_frequency: tuple[FrequencyRow, ...]
    tracking: TrackingCurve | None = None
    """Cumulative repeat transactions over calibration and holdout (None when births are given explicitly: the
    curve counts from first purchases)."""

    def score(self, model: ModelName) -> ModelScore:
        """The score of ``model`` (KeyError if it was not compared)."""
        for entry in self.scores:
            if entry.model == model:
                return entry
        raise KeyError(model)

    def table(self) -> str:
        """The comparison as plain text: one line per model, then the conditional expectations by frequency."""
        lines = [
            f"holdout comparison: calibration to {_date(self.calibration_end)}, holdout to {_date(self.holdout_end)} "
            f"({self.holdout_length:g} {self.unit}), {self.n_customers:,} customers, "
            f"actual {self.actual_total:,.0f} repeat transactions; criterion {self.criterion}",
            f"{'model':<11} {'log-lik':>10} {'predicted':>10} {'error':>8} {'MAE':>7} {'RMSE':>7}",
        ]
        for s in self.scores:
            if s.fit is None:
                lines.append(f"{LABELS[s.model]:<11} not fitted: {s.error}")
                continue
            mark = "  <- chosen" if s.model == self.chosen else ""
            lines.append(
                f"{LABELS[s.model]:<11} {s.fit.log_likelihood:>10.1f} {s.predicted_total:>10.1f} "
                f"{s.relative_total_error:>+8.1%} {s.mae:>7.3f} {s.rmse:>7.3f}{mark}"
            )
        fitted = [s.model for s in self.scores if s.fit is not None]
        lines.append("mean holdout transactions by calibration frequency:")
        lines.append(f"{'x':>3} {'customers':>9} {'actual':>7} " + " ".join(f"{LABELS[m]:>10}" for m in fitted))
        for row in self.by_frequency:
            predicted = " ".join(f"{row.predicted[m]:>10.3f}" for m in fitted)
            lines.append(f"{row.label:>3} {row.customers:>9} {row.actual:>7.3f} {predicted}")
        curve = self.tracking
        if curve is not None and curve.t:
            lines.append("cumulative repeat transactions since the first purchase (tracking):")
            lines.append(f"{curve.unit:>9} {'actual':>9} " + " ".join(f"{LABELS[m]:>10}" for m in curve.predicted))
            for label, at in (("cal. end", curve.calibration_end), ("end", curve.t[-1])):
                values = " ".join(f"{np.interp(at, curve.t, v):>10,.0f}" for v in curve.predicted.values())
                lines.append(f"{label:>9} {np.interp(at, curve.t, curve.actual):>9,.0f} {values}")
        return "\n".join(lines)


def compare_by_holdout(
    customer: npt.ArrayLike,
    time: npt.ArrayLike,
    amount: npt.ArrayLike,
    n_customers: int,
    calibration_end: float,
    holdout_end: float,
    *,
    unit: TimeUnit = "weeks",
    birth: npt.ArrayLike | None = None,
    models: Sequence[ModelName] = MODELS,
    criterion: Criterion = "mae",
    max_frequency: int = 7,
) -> HoldoutReport:
    """Split raw purchases (as :func:`~core.clv.summarize` takes them) at ``calibration_end``, fit ``models`` on
    the calibration period and score their forecasts of each customer's repeat transactions (distinct
    purchase days) in (``calibration_end``, ``holdout_end``].

    Only customers with a purchase by ``calibration_end`` are scored: the models say nothing about
    customers not yet acquired.
    """
    if not holdout_end > calibration_end:
        raise ValueError("holdout_end must be after calibration_end")
    calibration = summarize(customer, time, amount, n_customers, calibration_end, unit=unit, birth=birth)
    later = summarize(customer, time, amount, n_customers, holdout_end, unit=unit, birth=birth)
    holdout = (later.purchase_count - calibration.purchase_count).astype(np.float64)
    days = math.floor(holdout_end / SECONDS_PER_DAY) - math.floor(calibration_end / SECONDS_PER_DAY)
    report = score_holdout(
        calibration,
        holdout,
        days / DAYS_PER_UNIT[unit],
        holdout_end=holdout_end,
        models=models,
        criterion=criterion,
        max_frequency=max_frequency,
    )
    if birth is not None:
        return report
    fits: dict[str, PurchaseModelFit] = {s.model: s.fit for s in report.scores if s.fit is not None}
    return replace(report, tracking=tracking_curve(customer, time, calibration_end, holdout_end, fits, unit=unit))


def score_holdout(
    calibration: TransactionSummary,
    holdout_transactions: npt.ArrayLike,
    holdout_length: float,
    *,
    holdout_end: float = float("nan"),
    models: Sequence[ModelName] = MODELS,
    criterion: Criterion = "mae",
    max_frequency: int = 7,
) -> HoldoutReport:
    """Fit ``models`` on ``calibration`` and score their forecasts of ``holdout_transactions`` (per customer,
    aligned with the summary) over the next ``holdout_length`` time units; see :func:`compare_by_holdout`."""
    if criterion not in ("mae", "rmse", "total"):
        raise ValueError(f"criterion must be 'mae', 'rmse' or 'total', not {criterion!r}")
    if not models:
        raise ValueError("no model to compare")
    if max_frequency < 1:
        raise ValueError("max_frequency must be >= 1")
    scored = calibration.has_purchase
    x = calibration.frequency[scored].astype(np.float64)
    t_x, T = calibration.recency[scored], calibration.T[scored]
    actual = np.asarray(holdout_transactions, dtype=np.float64)[scored]
    actual_total = float(actual.sum())
    bucket = np.minimum(x, max_frequency).astype(np.intp)
    customers = np.bincount(bucket, minlength=max_frequency + 1)

    scores: list[ModelScore] = []
    means: dict[str, FloatArray] = {}
    for model in models:
        try:
            fit = fit_purchase_model(model, x, t_x, T)
        except FitError as error:
            nan = float("nan")
            scores.append(ModelScore(model, None, error.message, nan, nan, nan, nan, nan))
            continue
        predicted = fit.params.conditional_expected_purchases(holdout_length, x, t_x, T)
        residual = predicted - actual
        total_error = float(residual.sum())
        scores.append(
            ModelScore(
                model=model,
                fit=fit,
                error=None,
                predicted_total=float(predicted.sum()),
                mae=float(np.mean(np.abs(residual))) if len(residual) else 0.0,
                rmse=float(np.sqrt(np.mean(residual**2))) if len(residual) else 0.0,
                total_error=total_error,
                relative_total_error=total_error / actual_total if actual_total > 0 else float("nan"),
            )
        )
        means[model] = _bucket_means(predicted, bucket, customers)

    actual_means = _bucket_means(actual, bucket, customers)
    rows = tuple(
        FrequencyRow(
            label=f"{k}+" if k == max_frequency else str(k),
            customers=int(customers[k]),
            actual=float(actual_means[k]),
            predicted={m: float(v[k]) for m, v in means.items()},
        )
        for k in range(max_frequency + 1)
        if customers[k] > 0
    )
    candidates = [s for s in scores if s.fit is not None]
    # min() keeps the first of equal errors, so ties go to the earlier model in ``models``.
    chosen = min(candidates, key=lambda s: s.criterion_value(criterion)).model if candidates else None
    return HoldoutReport(
        calibration_end=calibration.as_of,
        holdout_end=holdout_end,
        unit=calibration.unit,
        holdout_length=float(holdout_length),
        n_customers=int(np.count_nonzero(scored)),
        actual_total=actual_total,
        criterion=criterion,
        chosen=chosen,
        scores=tuple(scores),
        by_frequency=rows,
    )


def _bucket_means(values: FloatArray, bucket: npt.NDArray[np.intp], counts: npt.NDArray[np.int64]) -> FloatArray:
    sums = np.bincount(bucket, weights=values, minlength=len(counts))
    return np.asarray(np.divide(sums, counts, out=np.full(len(counts), np.nan), where=counts > 0), dtype=np.float64)


def _date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d") if math.isfinite(epoch) else "?"
