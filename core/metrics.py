"""The measurement step of the CLM loop: a snapshot of the base after each run, and before/after comparisons.

A :class:`Snapshot` is plain JSON-ready data (``to_dict``/``from_dict``): the sync stores it with the run and
the report renders and compares snapshots. Definitions:

* **funnel**: for adjacent progress stages k -> k+1, the share of contacts whose highest matching progress
  stage is at or beyond k+1 among those at or beyond k (a churned customer still counts as having reached
  ``customer``).
* **days_in_stage**: mean days since contacts entered their current stage (``as_of - stage_since``);
  **days_to_stage**: mean days from creation to entering it (``stage_since - created_at``); both per stage.
* **customers**: contacts with a won deal. ``churned`` are those in the churn stage (the decline stage named
  ``churned``, else the last decline stage), ``at_risk`` those in other decline stages, ``active`` the rest.
  **Retention over the period** (``period_days`` before ``as_of``): among customers who had bought before the
  period started (the cohort), the share not churned now (``retention_rate``), its complement
  (``churn_rate``), the share who bought again within the period (``repeat_rate``) and the model's view,
  the mean of 1 - P(alive) (``expected_churn_rate``).
  ``expected_churned`` is the model's count of dropped-out customers, the sum of 1 - P(alive).
* **repeat_share**: customers with at least two won deals over all customers.
* **clv**: totals, mean, percentiles over customers, and concentration: the share of total CLV held by the
  top 10% / 20% of customers.
* **scores**: lead-score histogram (10-point bins), conversion-probability histogram (0.1 bins) when the
  predictive score ran, grade counts; **actions**: contacts per next best action.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.columns import DealColumns, FloatArray, ObjArray, StatusCode
from core.config import StageConfig
from core.criteria import DAY, FieldTable
from core.stages import StageAssignment

SCORE_BINS = [float(b) for b in range(0, 101, 10)]
PROBABILITY_BINS = [round(b / 10, 1) for b in range(11)]


@dataclass(frozen=True)
class Snapshot:
    """Metrics of one run (see the module docstring); every value is a number, text, None, list or dict."""

    as_of: str = ""
    contacts: int = 0
    stages: list[str] = field(default_factory=list)
    stage_counts: dict[str, int] = field(default_factory=dict)
    stage_shares: dict[str, float | None] = field(default_factory=dict)
    funnel: dict[str, dict[str, Any]] = field(default_factory=dict)
    days_in_stage: dict[str, float | None] = field(default_factory=dict)
    days_to_stage: dict[str, float | None] = field(default_factory=dict)
    lifecycle: dict[str, float | None] = field(default_factory=dict)
    customers: dict[str, Any] = field(default_factory=dict)
    sales: dict[str, Any] = field(default_factory=dict)
    clv: dict[str, float | None] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (no NaN: unknown values are None)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """Rebuild a snapshot from :meth:`to_dict` output (unknown keys are ignored, missing ones default)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _num(value: float, digits: int = 4) -> float | None:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _mean(values: FloatArray, digits: int = 2) -> float | None:
    values = values[~np.isnan(values)]
    return _num(float(values.mean()), digits) if len(values) else None


def _median(values: FloatArray, digits: int = 2) -> float | None:
    values = values[~np.isnan(values)]
    return _num(float(np.median(values)), digits) if len(values) else None


def churn_stage(stages: Sequence[StageConfig]) -> str | None:
    """The stage that means "churned": the decline stage named ``churned``, else the last decline stage."""
    decline = [s.name for s in stages if s.kind == "decline"]
    if "churned" in decline:
        return "churned"
    return decline[-1] if decline else None


def snapshot(
    stages: Sequence[StageConfig],
    assignment: StageAssignment,
    table: FieldTable,
    actions: ObjArray,
    deals: DealColumns,
    period_days: float = 365.0,
) -> Snapshot:
    """Measure the base after a run. ``table`` holds the computed fields (deal aggregates, CLV values, scores)."""
    n = table.n
    as_of = table.as_of
    names = list(assignment.names)
    counts = np.bincount(assignment.index, minlength=len(names))
    stage_counts = {name: int(c) for name, c in zip(names, counts.tolist(), strict=True)}
    created = table.numbers("created_at")
    in_stage = (as_of - assignment.since) / DAY
    to_stage = (assignment.since - created) / DAY
    days_in: dict[str, float | None] = {}
    days_to: dict[str, float | None] = {}
    for i, name in enumerate(names):
        members = assignment.index == i
        days_in[name] = _mean(in_stage[members])
        days_to[name] = _mean(to_stage[members])

    return Snapshot(
        as_of=datetime.fromtimestamp(as_of, UTC).isoformat(),
        contacts=n,
        stages=names,
        stage_counts=stage_counts,
        stage_shares={name: _num(c / n) if n else None for name, c in stage_counts.items()},
        funnel=_funnel(stages, assignment),
        days_in_stage=days_in,
        days_to_stage=days_to,
        lifecycle=_lifecycle(table, created),
        customers=_customers(stages, assignment, table, period_days),
        sales=_sales(deals, table, period_days),
        clv=_clv(table),
        scores=_scores(table),
        actions=_value_counts(actions),
    )


def _value_counts(values: ObjArray) -> dict[str, int]:
    """Rows per distinct text, sorted by text (a Counter: no fixed-width string copy of a million rows)."""
    return {str(k): v for k, v in sorted(Counter(values.tolist()).items(), key=lambda kv: str(kv[0]))}


def _funnel(stages: Sequence[StageConfig], assignment: StageAssignment) -> dict[str, dict[str, Any]]:
    progress = [i for i, s in enumerate(stages) if s.kind == "progress"]
    level = assignment.progress_index
    out: dict[str, dict[str, Any]] = {}
    for here, there in itertools.pairwise(progress):
        reached_here = int((level >= here).sum())
        reached_there = int((level >= there).sum())
        out[f"{stages[here].name}->{stages[there].name}"] = {
            "reached_from": reached_here,
            "reached_to": reached_there,
            "rate": _num(reached_there / reached_here) if reached_here else None,
        }
    return out


def _lifecycle(table: FieldTable, created: FloatArray) -> dict[str, float | None]:
    age = (table.as_of - created) / DAY
    first = table.numbers("first_purchase_at")
    customer = ~np.isnan(first)
    return {
        "mean_contact_age_days": _mean(age),
        "median_contact_age_days": _median(age),
        "mean_days_to_first_purchase": _mean(((first - created) / DAY)[customer]),
        "median_days_to_first_purchase": _median(((first - created) / DAY)[customer]),
        "mean_customer_lifetime_days": _mean(((table.as_of - first) / DAY)[customer]),
    }


def _customers(stages: Sequence[StageConfig], assignment: StageAssignment, table: FieldTable,
               period_days: float) -> dict[str, Any]:
    won = np.nan_to_num(table.numbers("won_deals"))
    customer = won >= 1
    churn = churn_stage(stages)
    stage_of = {s.name: i for i, s in enumerate(stages)}
    churned = assignment.index == stage_of[churn] if churn is not None else np.zeros(table.n, dtype=bool)
    decline = np.isin(assignment.index, [i for i, s in enumerate(stages) if s.kind == "decline"])
    at_risk = decline & ~churned
    start = table.as_of - period_days * DAY
    first = table.numbers("first_purchase_at")
    last = table.numbers("last_purchase_at")
    cohort = customer & (first <= start)
    repeat_in_period = cohort & (last > start) & (won >= 2)
    p_alive = table.numbers("p_alive")[cohort]
    p_alive_all = table.numbers("p_alive")[customer]
    n_customers = int(customer.sum())
    n_cohort = int(cohort.sum())
    retained = int((cohort & ~churned).sum())
    return {
        "total": n_customers,
        "active": int((customer & ~decline).sum()),
        "at_risk": int((customer & at_risk).sum()),
        "churned": int((customer & churned).sum()),
        "churn_stage": churn,
        # The model's own count of customers who have dropped out, sum of 1 - P(alive): unlike the stage
        # counts it needs no threshold, and it is what BG/NBD estimates without bias.
        "expected_churned": _num(float(np.nansum(1.0 - p_alive_all)), 1),
        "repeat_share": _num((customer & (won >= 2)).sum() / n_customers) if n_customers else None,
        "retention": {
            "period_days": period_days,
            "cohort": n_cohort,
            "retained": retained,
            "retention_rate": _num(retained / n_cohort) if n_cohort else None,
            "churn_rate": _num(1 - retained / n_cohort) if n_cohort else None,
            "repeat_rate": _num(repeat_in_period.sum() / n_cohort) if n_cohort else None,
            "expected_churn_rate": _mean(1.0 - p_alive, 4),
        },
    }


def _sales(deals: DealColumns, table: FieldTable, period_days: float) -> dict[str, Any]:
    start = table.as_of - period_days * DAY
    won = (deals.contact_index >= 0) & (deals.status == StatusCode.WON) & (deals.closed_at > start) & (
        deals.closed_at <= table.as_of)
    first = table.numbers("first_purchase_at")
    return {
        "period_days": period_days,
        "won_deals": int(won.sum()),
        "won_amount": _num(float(np.nansum(deals.amount[won])), 2),
        "new_customers": int(((first > start) & (first <= table.as_of)).sum()),
        "open_deals": int(np.nan_to_num(table.numbers("open_deals")).sum()),
    }


def _clv(table: FieldTable) -> dict[str, float | None]:
    won = np.nan_to_num(table.numbers("won_deals"))
    customer = won >= 1
    clv = np.nan_to_num(table.numbers("clv"))[customer]
    historical = np.nan_to_num(table.numbers("historical_value"))[customer]
    expected = np.nan_to_num(table.numbers("expected_purchases"))[customer]
    out: dict[str, float | None] = {
        "customers": float(customer.sum()),
        "total": _num(clv.sum(), 2),
        "mean": _mean(clv),
        "median": _median(clv),
        "historical_total": _num(historical.sum(), 2),
        "historical_mean": _mean(historical),
        "expected_purchases_total": _num(expected.sum(), 2),
    }
    for q in (50, 90, 99):
        out[f"p{q}"] = _num(float(np.percentile(clv, q)), 2) if len(clv) else None
    ordered = np.sort(clv)[::-1]
    total = float(ordered.sum())
    for share in (10, 20):
        k = max(1, math.ceil(len(ordered) * share / 100)) if len(ordered) else 0
        out[f"top{share}_share"] = _num(float(ordered[:k].sum()) / total) if total > 0 else None
    return out


def _scores(table: FieldTable) -> dict[str, Any]:
    lead = table.numbers("lead_score")
    probability = table.numbers("conversion_probability")
    known = probability[~np.isnan(probability)]
    grade = table.get("grade")
    grades = _value_counts(np.asarray(grade, dtype=object)) if grade is not None and grade.dtype == object else {}
    return {
        "lead_score_bins": SCORE_BINS,
        "lead_score_histogram": np.histogram(np.nan_to_num(lead), bins=SCORE_BINS)[0].tolist(),
        "lead_score_mean": _mean(lead),
        "conversion_probability_bins": PROBABILITY_BINS,
        "conversion_probability_histogram": np.histogram(known, bins=PROBABILITY_BINS)[0].tolist()
        if len(known) else None,
        "conversion_probability_mean": _mean(probability, 4),
        "grade_counts": grades,
    }


# --- before vs after ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One metric before and after: absolute and relative change (relative is None when ``before`` is 0)."""

    before: float | None
    after: float | None
    absolute: float | None
    relative: float | None


@dataclass(frozen=True)
class Comparison:
    """Two snapshots compared metric by metric (dotted keys such as ``stage_counts.customer``), plus stage
    movements (``from -> to -> contacts``) when both runs' stages were given."""

    before_as_of: str
    after_as_of: str
    changes: dict[str, Change]
    stage_movements: dict[str, dict[str, int]] | None = None
    new_contacts: int | None = None
    removed_contacts: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)


def compare(
    before: Snapshot,
    after: Snapshot,
    before_stages: tuple[ObjArray, ObjArray] | None = None,
    after_stages: tuple[ObjArray, ObjArray] | None = None,
) -> Comparison:
    """Compare two snapshots; ``*_stages`` are ``(contact ids, stage names)`` of each run, for movements."""
    # Bin edges are labels, not measurements.
    old = {k: v for k, v in _flatten(before.to_dict()).items() if "_bins[" not in k}
    new = {k: v for k, v in _flatten(after.to_dict()).items() if "_bins[" not in k}
    changes: dict[str, Change] = {}
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key), new.get(key)
        absolute = _num(b - a, 6) if a is not None and b is not None else None
        relative = _num((b - a) / abs(a), 6) if a is not None and b is not None and a != 0 else None
        changes[key] = Change(before=a, after=b, absolute=absolute, relative=relative)
    movements = new_contacts = removed = None
    if before_stages is not None and after_stages is not None:
        movements, new_contacts, removed = stage_movements(before_stages, after_stages)
    return Comparison(before_as_of=before.as_of, after_as_of=after.as_of, changes=changes,
                      stage_movements=movements, new_contacts=new_contacts, removed_contacts=removed)


def stage_movements(before: tuple[ObjArray, ObjArray], after: tuple[ObjArray, ObjArray]
                    ) -> tuple[dict[str, dict[str, int]], int, int]:
    """Contacts per (stage before, stage after) among contacts in both runs; and how many are only in one."""
    earlier = dict(zip(before[0].tolist(), before[1].tolist(), strict=True))
    later_ids = after[0].tolist()
    moves: dict[str, dict[str, int]] = {}
    both = 0
    for contact, stage in zip(later_ids, after[1].tolist(), strict=True):
        previous = earlier.get(contact)
        if previous is None:
            continue
        both += 1
        row = moves.setdefault(str(previous), {})
        row[str(stage)] = row.get(str(stage), 0) + 1
    return moves, len(later_ids) - both, len(earlier) - both


def _flatten(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts/lists as ``a.b[2]`` keys (text and None are left out)."""
    out: dict[str, float] = {}
    if isinstance(data, bool):
        return out
    if isinstance(data, int | float):
        if math.isfinite(data):
            out[prefix] = float(data)
    elif isinstance(data, Mapping):
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.update(_flatten(value, f"{prefix}[{i}]"))
    return out
