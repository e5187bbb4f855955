"""Predictive conversion score: the probability that a contact becomes a customer within ``horizon_days``,
learned from the history of the same CRM, calibrated, and refused when its measured quality is too low.

Training set (a back-test in time): cut-off ``c = as_of - horizon_days``. Contacts created by ``c`` who were
not customers at ``c`` are the examples; the label is "first purchase in ``(c, as_of]``". Contacts created
after ``c`` are excluded (nothing was known about them at ``c``), and so are those already customers at ``c``.

Features (``predictive.features``), each as known at the cut-off for training and at ``as_of`` for scoring:

* deal aggregates and derived values (``open_deals``, ``days_since_created``...) are recomputed at the time;
* date properties become "days before the time", and a date after the cut-off is unknown at the cut-off;
* numbers (signed ``log1p``, standardised) with a missing indicator; booleans 0/1 with a missing indicator;
* text: one-hot of the most frequent categories in the training set (:data:`TOP_CATEGORIES`), rest all-zero,
  plus a missing indicator.

**Leakage limitation.** A CRM keeps only the current value of a count property (e-mail opens, page views):
the training rows see activity up to ``as_of``, after the cut-off, some of which may follow from the very
purchase being predicted. The measured AUC is then optimistic for such features. Prefer fit properties,
dates and deal aggregates, which are exact at the cut-off; never use properties that record the outcome
(``lifecyclestage``, ``hs_lead_status``: a diagnostics warning names them, as it flags an AUC above 0.99).

Model: L2-regularised logistic regression (``model = "logistic"``) or histogram gradient boosting, fitted on
``1 - holdout_fraction`` of the examples (at most :data:`MAX_EXAMPLES`, sampled with ``seed``); Platt-calibrated
on the stratified hold-out, on which AUC and the lift in the top decile are measured (both depend on the ranking
only, so calibrating on the same rows does not bias them). The model is refused, with a reason and no scores,
when the history is too small (``min_contacts``, ``min_positives``) or the hold-out AUC is below ``min_auc``.
Existing customers get no probability (NaN).

Explanations (``reasons``, the ``predictive_reasons`` field): per contact, the features that move its calibrated
log-odds most away from the average training contact (whose standardised features are all 0). A feature's effect
is the calibrated log-odds minus those with the feature's columns set to the average (for the logistic model
exactly ``slope * sum(coef * x)`` over its columns, for gradient boosting one extra prediction per feature), shown
as an odds multiplier (:func:`core.scoring.explain`): ``"x2.4 num_conversion_events; x0.5 days_since_created"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from core.aggregates import contact_derived, deal_aggregates
from core.columns import ContactColumns, DealColumns, FloatArray, IntArray
from core.config import PredictiveConfig
from core.criteria import DAY, factorize
from core.fields import CONTACT_DERIVED, DEAL_AGGREGATES
from core.models import FieldType
from core.scoring import explain

TOP_CATEGORIES = 20
MAX_EXAMPLES = 250_000
_CHUNK = 100_000
_OUTCOME_PROPERTIES = frozenset({"lifecyclestage", "hs_lead_status", "hs_lifecyclestage_customer_date"})


@dataclass(frozen=True)
class PredictiveResult:
    """Probabilities (None when disabled or refused) and the model's measured quality."""

    probability: FloatArray | None
    status: str
    reason: str | None = None
    model: str | None = None
    cutoff: float | None = None
    examples: int = 0
    positives: int = 0
    holdout: int = 0
    base_rate: float | None = None
    auc: float | None = None
    lift_top_decile: float | None = None
    brier: float | None = None
    calibration: tuple[tuple[float, float, int], ...] = ()
    """The hold-out in ten equal-count bins by calibrated probability: (mean probability, observed conversion
    rate, contacts). On the hold-out the Platt scaling was fitted on, so it shows the calibration's shape, not an
    independent test of it."""
    gains: tuple[tuple[float, float], ...] = ()
    """The lift chart as cumulative gains on the hold-out: (share of contacts, highest scores first; share of the
    conversions among them), at each tenth. A random ranking is the diagonal."""
    features: tuple[str, ...] = ()
    top_coefficients: tuple[tuple[str, float], ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)
    reasons: npt.NDArray[np.object_] | None = None
    """``predictive_reasons`` per contact (None without a probability), when asked for."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready diagnostics (without the per-contact arrays, which ``asdict`` would deep-copy first)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("probability", "reasons")}
        out["features"] = list(self.features)
        out["top_coefficients"] = [[name, value] for name, value in self.top_coefficients]
        out["warnings"] = list(self.warnings)
        return out


@dataclass
class _Encoder:
    """How each configured feature becomes matrix columns, learned on the training rows."""

    feature: str
    kind: FieldType
    categories: list[int] = field(default_factory=list)
    category_names: list[str] = field(default_factory=list)
    with_missing: bool = False
    names: list[str] = field(default_factory=list)


class _Source:
    """The raw feature columns as of one reference time."""

    def __init__(self, contacts: ContactColumns, deals: DealColumns, kinds: Mapping[str, FieldType], at: float,
                 codes: dict[str, tuple[IntArray, list[str]]], computed: dict[str, FloatArray] | None = None) -> None:
        self.contacts = contacts
        self.at = at
        self.kinds = kinds
        self.codes = codes
        self._computed = computed
        self._deals = deals

    def computed(self) -> dict[str, FloatArray]:
        if self._computed is None:
            self._computed = {**deal_aggregates(self._deals, self.contacts.created_at, self.at),
                              **contact_derived(self.contacts, self.at)}
        return self._computed

    def numbers(self, feature: str, rows: npt.NDArray[np.intp]) -> FloatArray:
        """The feature as floats for ``rows``; dates become days before the reference time."""
        kind = self.kinds[feature]
        if feature in DEAL_AGGREGATES or feature in CONTACT_DERIVED:
            values = self.computed()[feature][rows]
        else:
            column = self.contacts.properties.get(feature)
            values = (np.full(len(rows), np.nan) if column is None or column.dtype == object
                      else np.asarray(column[rows], dtype=np.float64))
        if kind is FieldType.DATETIME:
            values = np.where(values <= self.at, (self.at - values) / DAY, np.nan)
        return np.asarray(values, dtype=np.float64)


def predict_conversion(
    config: PredictiveConfig,
    contacts: ContactColumns,
    deals: DealColumns,
    property_types: Mapping[str, FieldType],
    as_of: float,
    first_purchase_at: FloatArray,
    computed_now: dict[str, FloatArray] | None = None,
    *,
    reasons: bool = False,
) -> PredictiveResult:
    """Train, check and apply the conversion model (see the module docstring).

    ``first_purchase_at`` is each contact's first won-deal close time as of ``as_of`` (NaN: never bought);
    ``computed_now`` optionally gives the deal aggregates and derived values as of ``as_of`` already computed
    (they are recomputed otherwise). ``reasons`` also explains each probability (see the module docstring).
    """
    if not config.enabled:
        return PredictiveResult(probability=None, status="disabled", reason="predictive.enabled is false")
    kinds = {**DEAL_AGGREGATES, **CONTACT_DERIVED, **property_types}
    unknown = [f for f in config.features if f not in kinds]
    if unknown:
        return _refused(f"unknown feature(s): {', '.join(unknown)}", config)
    warnings = [f"feature '{f}' records the outcome itself (leakage): remove it"
                for f in config.features if f in _OUTCOME_PROPERTIES]
    cutoff = as_of - config.horizon_days * DAY
    created = contacts.created_at
    eligible = np.flatnonzero(~(created > cutoff) & ~(first_purchase_at <= cutoff))
    labels_all = (first_purchase_at > cutoff) & (first_purchase_at <= as_of)
    n_examples = len(eligible)
    positives = int(labels_all[eligible].sum())
    base = {"cutoff": cutoff, "examples": n_examples, "positives": positives, "model": config.model}
    if n_examples < config.min_contacts:
        return _refused(f"only {n_examples} contact(s) were known and not yet customers at the cut-off "
                        f"(as_of - {config.horizon_days:g} days); at least {config.min_contacts} are needed",
                        config, **base)
    if positives < config.min_positives:
        return _refused(f"only {positives} of them became customers within {config.horizon_days:g} days; "
                        f"at least {config.min_positives} are needed", config, **base)
    if n_examples - positives < config.min_positives:
        return _refused(f"only {n_examples - positives} of them did not become customers; the model needs "
                        "both outcomes", config, **base)

    # Sample and split by contact id, not row position, so the same contacts train the same model whatever
    # order they arrive in (CRM paging order differs from the mirror's and from generated data's).
    eligible = eligible[np.argsort(contacts.ids[eligible].astype(str), kind="stable")]
    rng = np.random.default_rng(config.seed)
    if n_examples > MAX_EXAMPLES:
        eligible = eligible[np.sort(rng.choice(n_examples, MAX_EXAMPLES, replace=False))]
    labels = labels_all[eligible].astype(np.int64)
    train, holdout = _stratified_split(labels, config.holdout_fraction, rng)

    codes = {f: factorize(np.asarray(contacts.properties[f], dtype=object)) for f in config.features
             if kinds[f] in (FieldType.STRING, FieldType.ENUM) and f in contacts.properties}
    at_cutoff = _Source(contacts, deals, kinds, cutoff, codes)
    encoders = _fit_encoders(config.features, kinds, at_cutoff, eligible[train], codes)
    names = tuple(name for e in encoders for name in e.names)
    if not names:
        return _refused("the features have no known values in the history", config, **base)
    x_train, center, scale = _standardise(_design(encoders, at_cutoff, eligible[train]))
    x_holdout = _design(encoders, at_cutoff, eligible[holdout], center, scale)

    from sklearn.metrics import brier_score_loss, roc_auc_score

    model = _model(config)
    try:
        model.fit(x_train, labels[train])
        raw_holdout = _raw_score(model, x_holdout)
        calibrator, slope = _platt(raw_holdout, labels[holdout])
        p_holdout = calibrator(raw_holdout)
        auc = float(roc_auc_score(labels[holdout], raw_holdout))
        brier = float(brier_score_loss(labels[holdout], p_holdout))
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:
        # Degenerate data (one class in a split, singular features): no scores, and why.
        return _refused(f"the model could not be fitted: {error}", config, **base)
    lift = _lift_top_decile(raw_holdout, labels[holdout])
    quality: dict[str, Any] = {
        **base, "holdout": len(holdout), "base_rate": float(labels.mean()), "auc": auc, "lift_top_decile": lift,
        "brier": brier, "features": names, "top_coefficients": _top_coefficients(model, names),
        "calibration": _calibration_bins(p_holdout, labels[holdout]), "gains": _gains(raw_holdout, labels[holdout]),
    }
    if auc > 0.99:
        warnings.append(f"hold-out AUC {auc:.3f} is suspiciously high: check the features for outcome leakage")
    if auc < config.min_auc:
        return _refused(f"hold-out AUC {auc:.3f} is below predictive.min_auc = {config.min_auc:g}", config,
                        warnings=tuple(warnings), **quality)

    del x_train, x_holdout  # free the training matrices before scoring
    at_now = _Source(contacts, deals, kinds, as_of, codes, computed_now)
    probability = np.full(len(contacts), np.nan)
    targets = np.flatnonzero(np.isnan(first_purchase_at))
    explained = [e for e in encoders if e.names]
    effects = np.zeros((len(explained), len(targets))) if reasons else None
    for start in range(0, len(targets), _CHUNK):
        rows = targets[start:start + _CHUNK]
        x = _design(encoders, at_now, rows, center, scale)
        raw = _raw_score(model, x)
        probability[rows] = calibrator(raw)
        if effects is not None:
            effects[:, start:start + len(rows)] = slope * _effects(model, x, raw, [len(e.names) for e in explained])
    why = None
    if effects is not None:
        why = np.full(len(contacts), None, dtype=object)
        why[targets] = explain(effects, [e.feature for e in explained], config.reasons_top,
                               config.reasons_max_length, odds=True)
    return PredictiveResult(probability=probability, status="ok", warnings=tuple(warnings), reasons=why, **quality)


def _effects(model: Any, x: FloatArray, raw: FloatArray, widths: list[int]) -> FloatArray:
    """Each feature's effect on the raw log-odds of each row of ``x`` (features x rows): the score minus the score
    with the feature's columns at the training average (0 once standardised)."""
    out = np.empty((len(widths), len(x)))
    coef = getattr(model, "coef_", None)
    at = 0
    for index, width in enumerate(widths):
        columns = slice(at, at + width)
        if coef is not None:
            out[index] = x[:, columns] @ coef[0, columns]  # linear: exact, no extra prediction
        else:
            saved = x[:, columns].copy()
            x[:, columns] = 0.0
            out[index] = raw - _raw_score(model, x)
            x[:, columns] = saved
        at += width
    return out


def _refused(reason: str, config: PredictiveConfig, **quality: Any) -> PredictiveResult:
    quality.setdefault("model", config.model)
    return PredictiveResult(probability=None, status="refused", reason=reason, **quality)


def _stratified_split(labels: npt.NDArray[np.int64], holdout_fraction: float,
                      rng: np.random.Generator) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Row positions for training and hold-out, with the same share of positives in both."""
    train: list[npt.NDArray[np.intp]] = []
    holdout: list[npt.NDArray[np.intp]] = []
    for value in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == value))
        cut = max(1, round(len(rows) * holdout_fraction))
        holdout.append(rows[:cut])
        train.append(rows[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(holdout))


def _fit_encoders(features: list[str], kinds: Mapping[str, FieldType], source: _Source,
                  rows: npt.NDArray[np.intp], codes: dict[str, tuple[IntArray, list[str]]]) -> list[_Encoder]:
    encoders = []
    for feature in features:
        kind = kinds[feature]
        encoder = _Encoder(feature=feature, kind=kind)
        if kind in (FieldType.STRING, FieldType.ENUM):
            if feature in codes:
                row_codes, categories = codes[feature]
                counts = np.bincount(row_codes[rows][row_codes[rows] >= 0], minlength=len(categories))
                top = [int(c) for c in np.argsort(-counts, kind="stable")[:TOP_CATEGORIES] if counts[c] > 0]
                encoder.categories = top
                encoder.category_names = [categories[c] for c in top]
                # A missing indicator only when it varies: a constant column says nothing.
                encoder.with_missing = bool(top) and bool((row_codes[rows] < 0).any())
            encoder.names = [f"{feature}={name}" for name in encoder.category_names]
        else:
            missing = np.isnan(source.numbers(feature, rows))
            if missing.all():
                encoders.append(encoder)  # never known in the history: contributes no column
                continue
            encoder.with_missing = bool(missing.any())
            encoder.names = [feature]
        if encoder.with_missing:
            encoder.names.append(f"{feature} unknown")
        encoders.append(encoder)
    return encoders


def _design(encoders: list[_Encoder], source: _Source, rows: npt.NDArray[np.intp],
            center: FloatArray | None = None, scale: FloatArray | None = None) -> FloatArray:
    """The feature matrix of ``rows``, filled in place (one allocation), standardised when given the scale."""
    width = sum(len(e.names) for e in encoders)
    out = np.zeros((len(rows), width))
    at = 0
    for encoder in encoders:
        if not encoder.names:
            continue
        if encoder.kind in (FieldType.STRING, FieldType.ENUM):
            if encoder.feature in source.codes:
                row_codes = source.codes[encoder.feature][0][rows]
            else:
                row_codes = np.full(len(rows), -1, dtype=np.int64)
            if encoder.categories:
                # Code -> its one-hot column (or -1 when not a top category), then one scatter.
                column_of = np.full(max(max(encoder.categories), int(row_codes.max(initial=-1))) + 2, -1,
                                    dtype=np.int64)
                column_of[np.asarray(encoder.categories)] = np.arange(len(encoder.categories))
                target = column_of[row_codes]  # code -1 reads the last entry, -1
                hit = np.flatnonzero(target >= 0)
                out[hit, at + target[hit]] = 1.0
                at += len(encoder.categories)
            missing = row_codes < 0
        else:
            values = source.numbers(encoder.feature, rows)
            missing = np.isnan(values)
            out[:, at] = np.where(missing, 0.0, np.sign(values) * np.log1p(np.abs(values)))
            at += 1
        if encoder.with_missing:
            out[:, at] = missing
            at += 1
    if center is not None and scale is not None:
        out -= center
        out /= scale
    return out


def _standardise(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Centre and scale the columns of ``x`` in place; constant columns keep scale 1."""
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    x -= center
    x /= scale
    return x, center, scale


def _model(config: PredictiveConfig) -> Any:
    if config.model == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, early_stopping=False,
                                              random_state=config.seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=1000)


def _raw_score(model: Any, x: FloatArray) -> FloatArray:
    """A monotone score to calibrate: the log-odds the model gives."""
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(x), dtype=np.float64)
    p = np.clip(model.predict_proba(x)[:, 1], 1e-9, 1 - 1e-9)
    return np.asarray(np.log(p / (1 - p)), dtype=np.float64)


def _platt(score: FloatArray, labels: npt.NDArray[np.int64]) -> tuple[Any, float]:
    """Platt scaling: a one-feature logistic regression from the raw score to the observed outcome; the
    calibration and its slope (calibrated log-odds per raw log-odds)."""
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1e6, max_iter=1000)
    platt.fit(score[:, None], labels)
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])

    def calibrate(raw: FloatArray) -> FloatArray:
        return np.asarray(1.0 / (1.0 + np.exp(-(slope * raw + intercept))), dtype=np.float64)

    return calibrate, slope


def _calibration_bins(probability: FloatArray, labels: npt.NDArray[np.int64],
                      bins: int = 10) -> tuple[tuple[float, float, int], ...]:
    """Equal-count bins of the sorted probabilities: (mean probability, observed rate, size) each."""
    order = np.argsort(probability, kind="stable")
    return tuple((float(probability[rows].mean()), float(labels[rows].mean()), len(rows))
                 for rows in np.array_split(order, min(bins, len(order))) if len(rows))


def _gains(score: FloatArray, labels: npt.NDArray[np.int64], steps: int = 10) -> tuple[tuple[float, float], ...]:
    """Cumulative gains: the share of positives among the top k/steps of the scores, k = 0..steps."""
    total = int(labels.sum())
    if total == 0 or not len(labels):
        return ()
    captured = np.concatenate([[0], np.cumsum(labels[np.argsort(-score, kind="stable")])])
    cuts = [round(len(labels) * k / steps) for k in range(steps + 1)]
    return tuple((k / steps, float(captured[cut] / total)) for k, cut in enumerate(cuts))


def _lift_top_decile(score: FloatArray, labels: npt.NDArray[np.int64]) -> float | None:
    """Positive rate among the 10% highest scores over the overall positive rate."""
    base = float(labels.mean())
    if base == 0 or len(labels) < 10:
        return None
    top = np.argsort(-score, kind="stable")[: max(1, len(labels) // 10)]
    return float(labels[top].mean() / base)


def _top_coefficients(model: Any, names: tuple[str, ...], k: int = 8) -> tuple[tuple[str, float], ...]:
    """The largest standardised coefficients of a logistic model (empty for other models)."""
    coef = getattr(model, "coef_", None)
    if coef is None or len(names) != coef.shape[1]:
        return ()
    order = np.argsort(-np.abs(coef[0]))[:k]
    return tuple((names[i], round(float(coef[0, i]), 4)) for i in order)
