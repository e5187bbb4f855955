"""The engine's one entry point: :func:`enrich` computes every contact's stage, scores, CLV and next best action
from contacts, deals and the configuration, as of a time, plus the run's metrics snapshot and diagnostics.

Order of computation (each step may use the fields of the steps before it):

1. deal aggregates and contact-derived values (:mod:`core.aggregates`);
2. CLV values (:mod:`core.lifetime`, models from :mod:`core.clv`);
3. lead scores (:mod:`core.scoring`; scoring rules see contact properties, aggregates and derived values);
4. the predictive conversion probability (:mod:`core.predictive`);
5. history from the previous run (``previous_stage``, ``days_in_stage``, ``purchases_in_stage``);
6. stages (:mod:`core.stages`), next best actions (:mod:`core.actions`), MEDDIC (:mod:`core.meddic`) and
   the snapshot (:mod:`core.metrics`).

Pure computation: no I/O, no clock (``computed_at`` is ``as_of``), deterministic for the same input.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.actions import next_best_actions
from core.aggregates import DAY, contact_derived, deal_aggregates, purchases_since
from core.clv.selection import LABELS
from core.columns import (
    ContactColumns,
    ContactRows,
    DealColumns,
    DealRows,
    FloatArray,
    ObjArray,
    StatusCode,
    from_records,
    from_rows,
    property_column,
)
from core.config import ClmConfig
from core.criteria import FieldTable
from core.fields import (
    CLV_VALUES,
    CONTACT_DERIVED,
    DEAL_AGGREGATES,
    HISTORY_VALUES,
    OPTIONAL_OUTPUT_FIELDS,
    OUTPUT_FIELDS,
    SCORE_VALUES,
)
from core.lifetime import customer_value
from core.meddic import MeddicTable, meddic_table
from core.metrics import Snapshot, snapshot
from core.models import Contact, Deal, Enrichment, FieldType
from core.predictive import PredictiveResult, predict_conversion
from core.quality import QualityReport
from core.scoring import score
from core.stages import StageAssignment, assign_stages

#: Decimals kept per output number: below what anyone reads, above what the sync's tolerance compares.
ROUNDING: dict[str, int] = {
    "conversion_probability": 4, "clv": 2, "historical_value": 2, "expected_purchases": 4, "p_alive": 4,
}
OUTPUT_NAMES: tuple[str, ...] = tuple(spec.name for spec in OUTPUT_FIELDS)
#: Optional outputs, in ``columns`` (and ``rows()``) only when computed.
OPTIONAL_NAMES: tuple[str, ...] = tuple(spec.name for spec in OPTIONAL_OUTPUT_FIELDS)


@dataclass(frozen=True)
class PreviousState:
    """The previous run's stage and stage-entry time (epoch seconds) per contact id."""

    ids: ObjArray
    stage: ObjArray
    stage_since: FloatArray

    @classmethod
    def from_rows(cls, rows: Mapping[str, tuple[str, float]]) -> PreviousState:
        """From ``{contact_id: (stage, stage_since_epoch)}`` as the sync's state store keeps them."""
        ids = np.array(list(rows), dtype=object)
        stage = np.array([r[0] for r in rows.values()], dtype=object)
        since = np.array([r[1] for r in rows.values()], dtype=np.float64)
        return cls(ids=ids, stage=stage, stage_since=since)

    @classmethod
    def from_result(cls, result: EnrichResult) -> PreviousState:
        """The state a result leaves for the next run."""
        return cls(ids=result.ids, stage=result.columns["stage"], stage_since=result.columns["stage_since"])

    def aligned(self, ids: ObjArray) -> tuple[ObjArray, FloatArray]:
        """Previous stage (None) and stage_since (NaN) for each of ``ids``, in their order."""
        position = dict(zip(self.ids.tolist(), range(len(self.ids)), strict=True))
        rows = np.fromiter((position.get(i, -1) for i in ids.tolist()), dtype=np.int64, count=len(ids))
        found = rows >= 0
        stage = np.full(len(ids), None, dtype=object)
        since = np.full(len(ids), np.nan)
        stage[found] = self.stage[rows[found]]
        since[found] = self.stage_since[rows[found]]
        return stage, since


@dataclass(frozen=True)
class Diagnostics:
    """How the run went: CLV model fit or fallback, predictive quality or refusal, scoring scale, data notes
    and seconds per step. Everything JSON-ready."""

    clv: dict[str, Any]
    predictive: dict[str, Any]
    scoring: dict[str, Any]
    meddic: dict[str, Any]
    data: list[str]
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """All diagnostics as one JSON-ready dict."""
        return {"clv": self.clv, "predictive": self.predictive, "scoring": self.scoring, "meddic": self.meddic,
                "data": self.data, "seconds": self.seconds}

    def lines(self) -> list[str]:
        """One human-readable line per topic, for the CLI."""
        out = [_clv_line(self.clv), _predictive_line(self.predictive)]
        out.extend(f"data: {note}" for note in self.data)
        out.append(f"engine: {self.seconds.get('total', 0):.2f}s")
        return out


def _clv_line(clv: Mapping[str, Any]) -> str:
    model = clv.get("purchase_model", clv.get("model"))
    fit = clv.get(model) if model in LABELS else None  # diagnostics keep each fitted model under its name
    named = ("r", "alpha", "a", "b", "s", "beta")
    params = " ".join(f"{k}={v:.3g}" for k, v in fit.items() if k in named) if fit else ""
    head = f"CLV: {LABELS[model]} {params}" if fit else f"CLV: {model} purchases"
    notes = "; ".join(clv.get("notes", []))
    return f"{head}, spend {clv.get('spend_model', '-')}" + (f" ({notes})" if notes else "")


def _predictive_line(predictive: Mapping[str, Any]) -> str:
    if predictive.get("status") == "ok":
        return (f"predictive: AUC {predictive['auc']:.3f}, top-decile lift {predictive['lift_top_decile']:.2f} "
                f"on {predictive['holdout']} held-out contacts")
    return f"predictive: {predictive.get('status')} — {predictive.get('reason')}"


@dataclass(frozen=True)
class EnrichResult:
    """The enrichment table (``ids`` + one array per output field), the snapshot, diagnostics and MEDDIC.

    ``columns`` has every name of :data:`core.fields.OUTPUT_FIELDS`: text fields as object arrays, times as
    epoch seconds, numbers as float64. Only ``conversion_probability`` (disabled, refused, or already a
    customer) and ``p_alive`` (never bought) may be NaN, which :meth:`records` turns into None. The optional
    fields (:data:`core.fields.OPTIONAL_OUTPUT_FIELDS`) are there only when computed (the CLV bounds NaN for
    non-customers, the reasons None where there is nothing to explain).
    ``table`` holds every computed field (aggregates, CLV values, scores, history) for inspection.
    """

    ids: ObjArray
    columns: dict[str, np.ndarray]
    metrics: Snapshot
    diagnostics: Diagnostics
    meddic: MeddicTable
    stages: StageAssignment
    predictive: PredictiveResult
    table: FieldTable
    as_of: float
    quality: QualityReport = field(default_factory=QualityReport)
    """Values excluded as not fitting their type or impossible, per field with example record ids
    (:mod:`core.quality`); the diagnostics' ``data`` has one line per field."""

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, indices: np.ndarray | None = None) -> Iterator[dict[str, Any]]:
        """One plain dict per contact, in row order (or for the rows ``indices``, in their order): ``contact_id``
        plus every output field, with times as aware datetimes and unknown numbers as None (the values of
        :class:`core.models.Enrichment`, several times faster to produce than the models themselves)."""
        cols = self.columns if indices is None else {name: values[indices] for name, values in self.columns.items()}
        ids = self.ids if indices is None else self.ids[indices]
        times: dict[float, datetime] = {}

        def when(values: np.ndarray) -> list[datetime]:
            out = []
            for value in values.tolist():
                moment = times.get(value)
                if moment is None:
                    moment = times[value] = datetime.fromtimestamp(value, UTC)
                out.append(moment)
            return out

        def optional(values: np.ndarray) -> list[float | None]:
            return [None if v != v else v for v in values.tolist()]

        lists: dict[str, list[Any]] = {"contact_id": ids.tolist()}
        for name in (*OUTPUT_NAMES, *OPTIONAL_NAMES):
            values = cols.get(name, np.full(len(ids), np.nan))  # an optional field not computed: unknown
            if name in ("stage_since", "computed_at"):
                lists[name] = when(values)
            elif name in ("conversion_probability", "p_alive", *OPTIONAL_NAMES):
                lists[name] = optional(values)  # text fields hold None (or a string) and pass unchanged
            else:
                lists[name] = values.tolist()
        keys = list(lists)
        for row in zip(*lists.values(), strict=True):
            yield dict(zip(keys, row, strict=True))

    def row(self, index: int) -> dict[str, Any]:
        """The values of the contact at row ``index``, as :meth:`rows` gives them."""
        return next(self.rows(np.array([index], dtype=np.intp)))

    def records(self) -> Iterator[Enrichment]:
        """One :class:`core.models.Enrichment` per contact, in row order.

        Built with ``model_construct``: the values come from the engine, already of the model's types.
        """
        for row in self.rows():
            yield Enrichment.model_construct(**row)

    def diagnostics_dict(self) -> dict[str, Any]:
        """The diagnostics as a JSON-ready dict (what the sync stores with the run)."""
        return self.diagnostics.to_dict()

    def previous_state(self) -> PreviousState:
        """What the next run needs from this one."""
        return PreviousState.from_result(self)


def enrich(
    contacts: ContactColumns | ContactRows | Sequence[Contact],
    deals: DealColumns | DealRows | Sequence[Deal],
    config: ClmConfig,
    as_of: datetime | float,
    previous: PreviousState | None = None,
    *,
    period_days: float = 365.0,
) -> EnrichResult:
    """Compute the enrichment of every contact as of ``as_of`` (aware datetime or epoch seconds).

    ``contacts``/``deals`` are columns, or records (or a store's per-field rows) converted once with the
    configuration's property types (:func:`core.columns.from_records`, :func:`core.columns.from_rows`).
    ``previous`` is the last run's stages (for ``stage_since`` and the history fields).
    ``period_days`` is the window of the snapshot's retention and sales metrics.
    Never raises for the data's sake: model failures fall back and are reported in the diagnostics, and values
    that do not fit their type or are impossible are excluded and reported per field (:mod:`core.quality`).
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    started = clock

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = round(now - clock, 4)
        clock = now

    moment = _epoch(as_of)
    notes: list[str] = []
    quality = QualityReport()
    contact_cols, deal_cols = _columns(contacts, deals, config, quality)
    n = len(contact_cols)
    kinds = dict(config.data.contact_properties)
    table = FieldTable(n, moment)
    for name, column in contact_cols.properties.items():
        kind = kinds.get(name)
        typed = _typed(column, kind)
        if kind is not None:
            # Columns given directly were never checked; records were (in from_records), and then this finds nothing.
            typed = quality.check_property(f"contact.{name}", contact_cols.ids, column.tolist(), typed, kind)
        table.set(name, typed, kind)
    missing = [name for name in kinds if name not in contact_cols.properties]
    for name in missing:
        table.set(name, _unknown(n, kinds[name]), kinds[name])
    if missing:
        notes.append(f"declared contact properties absent from the data (treated as unknown): {', '.join(missing)}")
    outside = (deal_cols.contact_index >= n) | (deal_cols.contact_index < -1)
    if outside.any():
        # Columns built by hand can point past the contacts: such deals have no known contact.
        deal_cols = replace(deal_cols, contact_index=np.where(outside, -1, deal_cols.contact_index))
    keep = quality.check_deals(deal_cols.ids, deal_cols.amount, deal_cols.status != StatusCode.OPEN,
                               deal_cols.created_at, deal_cols.closed_at, moment)
    if not keep.all():
        deal_cols = _subset(deal_cols, keep)
    unattributed = int((deal_cols.contact_index < 0).sum())
    if unattributed:
        notes.append(f"{unattributed} deal(s) without a known contact were ignored")
    duplicates = n - len(set(contact_cols.ids.tolist()))
    if duplicates:
        notes.append(f"{duplicates} duplicate contact id(s): each row is enriched on its own")
    lap("columns")

    aggregates = deal_aggregates(deal_cols, contact_cols.created_at, moment)
    derived = contact_derived(contact_cols, moment)
    table.update(aggregates, DEAL_AGGREGATES)
    table.update(derived, CONTACT_DERIVED)
    lap("aggregates")

    written = set(config.sync.write_fields or ())
    clv = customer_value(deal_cols, n, moment, config.clv,
                         intervals=any(spec.name in written and spec.type is FieldType.NUMBER
                                       for spec in OPTIONAL_OUTPUT_FIELDS))
    table.update(clv.columns, CLV_VALUES)
    lap("clv")

    scores = score(config.scoring, table, reasons="score_reasons" in written)
    table.update({"lead_score": scores.lead_score, "fit_score": scores.fit_score,
                  "engagement_score": scores.engagement_score, "grade": scores.grade,
                  "is_mql": scores.is_mql, "is_sql": scores.is_sql}, SCORE_VALUES)
    lap("scoring")

    predictive = predict_conversion(config.predictive, contact_cols, deal_cols, kinds, moment,
                                    aggregates["first_purchase_at"], {**aggregates, **derived},
                                    reasons="predictive_reasons" in written)
    probability = predictive.probability if predictive.probability is not None else np.full(n, np.nan)
    table.set("conversion_probability", probability, FieldType.NUMBER)
    lap("predictive")

    if previous is not None:
        previous_stage, previous_since = previous.aligned(contact_cols.ids)
        future = previous_since > moment
        if future.any():
            # A run with an as-of ahead of this one left stage entries in the future (issue 14); carrying them
            # forward would write a future stage_since, so they count as entered now.
            notes.append(f"{int(future.sum())} previous stage entry time(s) after the as-of were set to the as-of")
            previous_since = np.where(future, moment, previous_since)
    else:
        previous_stage, previous_since = np.full(n, None, dtype=object), np.full(n, np.nan)
    table.update({
        "previous_stage": previous_stage,
        "days_in_stage": (moment - previous_since) / DAY,
        "purchases_in_stage": purchases_since(deal_cols, previous_since, moment),
    }, HISTORY_VALUES)
    assignment = assign_stages(config.stages, table, previous_stage, previous_since)
    table.set("stage", assignment.stage, FieldType.ENUM)
    lap("stages")

    actions = next_best_actions(config.stages, config.actions, assignment.index, table)
    lap("actions")
    meddic = meddic_table(deal_cols, contact_cols.ids, config.meddic)
    lap("meddic")
    metrics = snapshot(config.stages, assignment, table, actions, deal_cols, period_days,
                       thresholds={"mql": config.scoring.mql_threshold, "sql": config.scoring.sql_threshold})
    lap("metrics")

    columns: dict[str, np.ndarray] = {
        "stage": assignment.stage,
        "stage_since": assignment.since,
        "lead_score": scores.lead_score,
        "fit_score": scores.fit_score,
        "engagement_score": scores.engagement_score,
        "grade": scores.grade,
        "conversion_probability": probability,
        "clv": clv.columns["clv"],
        "historical_value": clv.columns["historical_value"],
        "expected_purchases": clv.columns["expected_purchases"],
        "p_alive": clv.columns["p_alive"],
        "next_best_action": actions,
        "computed_at": np.full(n, moment),
    }
    # Each bound rounded like its value (clv_low like clv...), so it never sits a rounding step outside it.
    columns.update({name: np.round(clv.columns[name], ROUNDING[name.rsplit("_", 1)[0]])
                    for name in OPTIONAL_NAMES if name in clv.columns})
    for name, digits in ROUNDING.items():
        columns[name] = np.round(columns[name], digits)
    if scores.reasons is not None:
        columns["score_reasons"] = scores.reasons
    if predictive.reasons is not None:
        columns["predictive_reasons"] = predictive.reasons
    seconds["total"] = round(time.perf_counter() - started, 4)
    diagnostics = Diagnostics(
        clv=clv.diagnostics,
        predictive=predictive.to_dict(),
        scoring=scores.describe(),
        meddic=meddic.summary(),
        data=notes + quality.lines(),
        seconds=seconds,
    )
    return EnrichResult(ids=contact_cols.ids, columns=columns, metrics=metrics, diagnostics=diagnostics,
                        meddic=meddic, stages=assignment, predictive=predictive, table=table, as_of=moment,
                        quality=quality)


def _epoch(as_of: datetime | float) -> float:
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware (e.g. datetime.now(UTC))")
        return as_of.timestamp()
    return float(as_of)


def _columns(contacts: ContactColumns | ContactRows | Sequence[Contact], deals: DealColumns | DealRows | Sequence[Deal],
             config: ClmConfig, quality: QualityReport) -> tuple[ContactColumns, DealColumns]:
    """Columns as given, or converted once from records or rows with the configured property types."""
    if isinstance(contacts, ContactColumns) and isinstance(deals, DealColumns):
        return contacts, deals
    rows = isinstance(contacts, ContactRows) and isinstance(deals, DealRows)
    if not rows and (isinstance(contacts, ContactColumns | ContactRows) or isinstance(deals, DealColumns | DealRows)):
        raise TypeError("give contacts and deals both as columns, both as rows or both as records")
    deal_types = dict(config.data.deal_properties)
    # MEDDIC reads these whether or not they were declared.
    for prop in config.meddic.model_dump().values():
        if prop:
            deal_types.setdefault(prop, FieldType.STRING)
    convert = from_rows if rows else from_records
    return convert(contacts, deals, dict(config.data.contact_properties), deal_types,  # type: ignore[arg-type]
                   attribution=config.data.attribution, quality=quality, currency=config.currency.base,
                   rates=config.currency.rates)


def _subset(deals: DealColumns, keep: np.ndarray) -> DealColumns:
    """The deals of ``keep`` (a boolean mask), every column alike."""
    return DealColumns(ids=deals.ids[keep], contact_index=deals.contact_index[keep], amount=deals.amount[keep],
                       status=deals.status[keep], created_at=deals.created_at[keep],
                       closed_at=deals.closed_at[keep],
                       properties={name: column[keep] for name, column in deals.properties.items()})


def _typed(column: np.ndarray, kind: FieldType | None) -> np.ndarray:
    """A column converted to the declared type when it arrived as another (text <-> number)."""
    if kind is None:
        return column
    text = kind in (FieldType.STRING, FieldType.ENUM)
    if text and column.dtype != object:
        return property_column([None if v != v else v for v in column.tolist()], kind)
    if not text and column.dtype == object:
        return property_column(column.tolist(), kind)
    return column


def _unknown(n: int, kind: FieldType) -> np.ndarray:
    if kind in (FieldType.STRING, FieldType.ENUM):
        return np.full(n, None, dtype=object)
    return np.full(n, np.nan)
