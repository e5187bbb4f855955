"""The measurement step of the CLM loop: a snapshot of the base after each run, and before/after comparisons.

A :class:`Snapshot` is plain JSON-ready data (``to_dict``/``from_dict``): the sync stores it with the run and
the report renders and compares snapshots. Definitions:

* **funnel**: for adjacent progress stages k -> k+1, the share of contacts whose highest matching progress
  stage is at or beyond k+1 among those at or beyond k (a churned customer still counts as having reached
  ``customer``).
* **funnel_stages**: the sales funnel, the progress stages up to the first one that needs a purchase
  (``customer``): per stage the contacts in it now, those who reached it (at or beyond it), the *step
  conversion* (reached it / reached the stage before) and the *cumulative conversion* (reached it / all
  contacts). **post_sale**: the stages after the first purchase (later progress, decline and reactivation
  stages), with their share of all customers.
* **days_in_stage**: mean days since contacts entered their current stage (``days_in_stage_median``: the
  median), where the entry is estimated from the data's own history and only refined by our runs: the
  earliest of ``stage_since`` and the dated event that qualifies for the stage (see :func:`stage_entry`);
  **days_to_stage**: mean days from creation (first touch) to that entry; both per stage.
* **lifecycle**: contact age, days from first touch to first purchase, from first to second purchase, the
  buying span (first to last purchase of repeat buyers), days since the last purchase by customer status,
  and the whole lifecycle: first touch to last purchase for churned customers (ended relationships) and
  first touch to ``as_of`` for the others (still running, a lower bound).
* **customers**: contacts with a won deal. ``churned`` are those in the churn stage (the decline stage named
  ``churned``, else the last decline stage), ``at_risk`` those in other decline stages, ``active`` the rest.
  **Retention over the period** (``period_days`` before ``as_of``): among customers who had bought before the
  period started (the cohort), the share not churned now (``retention_rate``), its complement
  (``churn_rate``), the share who bought again within the period (``repeat_rate``) and the model's view,
  the mean of 1 - P(alive) (``expected_churn_rate``).
  ``expected_churned`` is the model's count of dropped-out customers, the sum of 1 - P(alive).
* **repeat_share**: customers with at least two won deals over all customers. **sales**: won deals and
  their amount in the period (sales volume), buyers in the period and ``repeat_buyer_share``, the share of
  them who bought more than once in it (the method's "share buying more often").
* **clv**: totals, mean, percentiles over customers, and concentration: the share of total CLV held by the
  top 10% / 20% of customers.
* **scores**: lead-score histogram (10-point bins), conversion-probability histogram (0.1 bins) when the
  predictive score ran, grade counts, the MQL/SQL thresholds; **actions**: contacts per next best action.
* **stage flow** between two runs (:func:`net_moves`, :func:`transition_matrix`): contacts per (stage at the
  first run, stage at the second), from the stage moves each run records, with new and removed contacts.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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
    stage_kinds: dict[str, str] = field(default_factory=dict)
    funnel: dict[str, dict[str, Any]] = field(default_factory=dict)
    funnel_stages: list[dict[str, Any]] = field(default_factory=list)
    post_sale: list[dict[str, Any]] = field(default_factory=list)
    days_in_stage: dict[str, float | None] = field(default_factory=dict)
    days_in_stage_median: dict[str, float | None] = field(default_factory=dict)
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
    thresholds: Mapping[str, float] | None = None,
) -> Snapshot:
    """Measure the base after a run. ``table`` holds the computed fields (deal aggregates, CLV values, scores);
    ``thresholds`` the lead-score thresholds (``mql``, ``sql``) the report draws on the score histogram."""
    n = table.n
    as_of = table.as_of
    names = list(assignment.names)
    counts = np.bincount(assignment.index, minlength=len(names))
    stage_counts = {name: int(c) for name, c in zip(names, counts.tolist(), strict=True)}
    created = table.numbers("created_at")
    purchases = purchase_times(deals, table.n, as_of)
    entered = stage_entry(stages, assignment, table, *purchases)
    in_stage = (as_of - entered) / DAY
    to_stage = (entered - created) / DAY
    days_in: dict[str, float | None] = {}
    days_in_median: dict[str, float | None] = {}
    days_to: dict[str, float | None] = {}
    for i, name in enumerate(names):
        members = assignment.index == i
        days_in[name] = _mean(in_stage[members])
        days_in_median[name] = _median(in_stage[members])
        days_to[name] = _mean(to_stage[members])
    customers = _customers(stages, assignment, table, period_days)
    scores = _scores(table)
    if thresholds:
        scores["thresholds"] = {k: float(v) for k, v in thresholds.items()}
    return Snapshot(
        as_of=datetime.fromtimestamp(as_of, UTC).isoformat(),
        contacts=n,
        stages=names,
        stage_counts=stage_counts,
        stage_shares={name: _num(c / n) if n else None for name, c in stage_counts.items()},
        stage_kinds={s.name: s.kind for s in stages},
        funnel=_funnel(stages, assignment),
        funnel_stages=_funnel_stages(stages, assignment),
        post_sale=_post_sale(stages, stage_counts, customers["total"]),
        days_in_stage=days_in,
        days_in_stage_median=days_in_median,
        days_to_stage=days_to,
        lifecycle=_lifecycle(stages, assignment, table, created, purchases[1]),
        customers=customers,
        sales=_sales(deals, table, period_days),
        clv=_clv(table),
        scores=scores,
        actions=_value_counts(actions),
    )


#: Fields whose criteria mark a stage as needing a purchase (the funnel ends there) or an open deal.
_PURCHASE_FIELDS = frozenset({"won_deals", "first_purchase_at", "last_purchase_at", "total_won_amount"})
_OPEN_DEAL_FIELDS = frozenset({"open_deals"})


def _first_progress_using(stages: Sequence[StageConfig], names: frozenset[str]) -> int | None:
    """Index of the first progress stage whose criteria use one of ``names``."""
    for i, stage in enumerate(stages):
        used = {c.field for c in stage.criteria} | {c.field for group in stage.any_of for c in group}
        if stage.kind == "progress" and used & names:
            return i
    return None


def customer_stage(stages: Sequence[StageConfig]) -> int | None:
    """Index of the first progress stage that needs a purchase (criteria on won deals), else one named
    ``customer``: where the sales funnel ends and the post-sale states begin."""
    found = _first_progress_using(stages, _PURCHASE_FIELDS)
    if found is None:
        found = next((i for i, s in enumerate(stages) if s.name == "customer" and s.kind == "progress"), None)
    return found


def purchase_times(deals: DealColumns, n: int, as_of: float) -> tuple[FloatArray, FloatArray]:
    """Per contact, the creation of its earliest open deal (NaN: none) and its second purchase, the
    second-earliest won deal closed by ``as_of`` (NaN: fewer than two), both epoch seconds. Open, won and
    lost as of ``as_of`` as in :func:`core.aggregates.deal_aggregates`."""
    owner = deals.contact_index
    exists = (owner >= 0) & ~(deals.created_at > as_of)
    closed = ~(deals.closed_at > as_of)
    won = exists & (deals.status == StatusCode.WON) & closed
    open_ = exists & ~won & ~((deals.status == StatusCode.LOST) & closed)
    first_open = np.full(n, np.inf)
    np.minimum.at(first_open, owner[open_], np.nan_to_num(deals.created_at[open_], nan=np.inf))
    first_open[np.isinf(first_open)] = np.nan
    dated = won & ~np.isnan(deals.closed_at)
    who, when = owner[dated], deals.closed_at[dated]
    order = np.lexsort((when, who))
    who, when = who[order], when[order]
    owners, start, count = np.unique(who, return_index=True, return_counts=True)
    second = np.full(n, np.nan)
    twice = count >= 2
    second[owners[twice]] = when[start[twice] + 1]
    return first_open, second


def stage_entry(stages: Sequence[StageConfig], assignment: StageAssignment, table: FieldTable,
                first_open: FloatArray, second_purchase: FloatArray) -> FloatArray:
    """When each contact entered its current stage, from the data's own history, refined by our runs.

    The dated event that qualifies a contact for its stage: the second purchase for progress stages after the
    first purchase stage (repeat buyers), the first purchase for that stage, the earliest open deal's creation
    for the stages from the first open-deal stage on (``opportunity``), the contact's creation (first touch)
    before that — the data dates no score crossing, so that is the earliest the contact could be there —, and
    the last purchase for decline and reactivation stages (the last sign of life). The earliest of that event
    and ``stage_since`` (the first run that saw the contact in the stage) is kept: both bound the entry from
    above, and either may be unknown.
    """
    created = table.numbers("created_at")
    first = table.numbers("first_purchase_at")
    last = table.numbers("last_purchase_at")
    kinds = np.array([s.kind for s in stages], dtype=object)[assignment.index] if len(stages) else np.array([])
    buying = customer_stage(stages)
    dealing = _first_progress_using(stages, _OPEN_DEAL_FIELDS)
    index = assignment.index
    event = created.copy()
    if dealing is not None:
        event = np.where((index >= dealing) & ~np.isnan(first_open), first_open, event)
    if buying is not None:
        event = np.where((index == buying) & ~np.isnan(first), first, event)
        repeat = (index > buying) & (kinds == "progress")
        event = np.where(repeat, np.where(~np.isnan(second_purchase), second_purchase,
                                          np.where(~np.isnan(first), first, event)), event)
    later = (kinds == "decline") | (kinds == "reactivation")
    event = np.where(later & ~np.isnan(last), last, event)
    event = np.where(event > table.as_of, np.nan, event)
    return np.asarray(np.fmin(event, assignment.since), dtype=np.float64)


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


def _funnel_stages(stages: Sequence[StageConfig], assignment: StageAssignment) -> list[dict[str, Any]]:
    """The sales funnel (progress stages up to the first purchase stage) with step and cumulative rates."""
    end = customer_stage(stages)
    progress = [i for i, s in enumerate(stages) if s.kind == "progress" and (end is None or i <= end)]
    level = assignment.progress_index
    total = len(level)
    counts = np.bincount(assignment.index, minlength=len(stages))
    out: list[dict[str, Any]] = []
    previous: int | None = None
    for i in progress:
        reached = int((level >= i).sum())
        out.append({
            "stage": stages[i].name,
            "in_stage": int(counts[i]),
            "reached": reached,
            "step_rate": _num(reached / previous) if previous else None,
            "cumulative_rate": _num(reached / total) if total else None,
        })
        previous = reached
    return out


def _post_sale(stages: Sequence[StageConfig], counts: Mapping[str, int], customers: int) -> list[dict[str, Any]]:
    """The states of customers: the first purchase stage and the progress stages after it, then the decline and
    reactivation stages, each with its share of all customers."""
    end = customer_stage(stages)
    out = []
    for i, stage in enumerate(stages):
        if stage.kind == "progress" and (end is None or i < end):
            continue
        n = counts.get(stage.name, 0)
        out.append({"stage": stage.name, "kind": stage.kind, "contacts": n,
                    "share_of_customers": _num(n / customers) if customers else None})
    return out


def _lifecycle(stages: Sequence[StageConfig], assignment: StageAssignment, table: FieldTable, created: FloatArray,
               second: FloatArray) -> dict[str, float | None]:
    as_of = table.as_of
    age = (as_of - created) / DAY
    first = table.numbers("first_purchase_at")
    last = table.numbers("last_purchase_at")
    customer = ~np.isnan(first)
    repeat = customer & ~np.isnan(second)
    churn = churn_stage(stages)
    stage_of = {s.name: i for i, s in enumerate(stages)}
    churned = customer & (assignment.index == stage_of[churn]) if churn is not None else np.zeros(table.n, bool)
    decline = customer & np.isin(assignment.index, [i for i, s in enumerate(stages) if s.kind == "decline"])
    active = customer & ~decline
    at_risk = decline & ~churned
    silent = (as_of - last) / DAY
    return {
        "mean_contact_age_days": _mean(age),
        "median_contact_age_days": _median(age),
        "mean_days_to_first_purchase": _mean(((first - created) / DAY)[customer]),
        "median_days_to_first_purchase": _median(((first - created) / DAY)[customer]),
        "mean_days_first_to_second_purchase": _mean(((second - first) / DAY)[repeat]),
        "median_days_first_to_second_purchase": _median(((second - first) / DAY)[repeat]),
        "median_buying_span_days": _median(((last - first) / DAY)[repeat]),
        "median_days_since_last_purchase_active": _median(silent[active]),
        "median_days_since_last_purchase_at_risk": _median(silent[at_risk]),
        "median_days_since_last_purchase_churned": _median(silent[churned]),
        "mean_customer_lifetime_days": _mean(((as_of - first) / DAY)[customer]),
        # Ended relationships: first touch to the last purchase; running ones so far (a lower bound).
        "median_lifecycle_days_ended": _median(((last - created) / DAY)[churned]),
        "mean_lifecycle_days_ended": _mean(((last - created) / DAY)[churned]),
        "median_lifecycle_days_running": _median(age[customer & ~churned]),
        "customers_ended": float(churned.sum()),
        "customers_running": float((customer & ~churned).sum()),
        "repeat_buyers": float(repeat.sum()),
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
    per_buyer = np.bincount(deals.contact_index[won], minlength=table.n)
    buyers = int((per_buyer >= 1).sum())
    repeat_buyers = int((per_buyer >= 2).sum())
    return {
        "period_days": period_days,
        "won_deals": int(won.sum()),
        "won_amount": _num(float(np.nansum(deals.amount[won])), 2),
        "buyers": buyers,
        "repeat_buyers": repeat_buyers,
        "repeat_buyer_share": _num(repeat_buyers / buyers) if buyers else None,
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


#: The row of new contacts and the column of removed ones in a transition matrix.
NEW, GONE = "(new)", "(removed)"


def run_moves(previous_ids: ObjArray, previous_stages: ObjArray, ids: ObjArray, stages: ObjArray
              ) -> list[tuple[str, str | None, str | None]]:
    """The stage moves of one run against the previous computation, ``(contact, before, after)``: contacts
    whose stage changed, new contacts (before None) and contacts no longer there (after None)."""
    position = dict(zip(previous_ids.tolist(), range(len(previous_ids)), strict=True))
    rows = np.fromiter((position.get(i, -1) for i in ids.tolist()), dtype=np.int64, count=len(ids))
    found = rows >= 0
    before = np.full(len(ids), None, dtype=object)
    before[found] = previous_stages[rows[found]]
    moved = np.flatnonzero(before != stages)
    out: list[tuple[str, str | None, str | None]] = list(
        zip(ids[moved].tolist(), before[moved].tolist(), stages[moved].tolist(), strict=True))
    if int(found.sum()) < len(previous_ids):
        kept = np.zeros(len(previous_ids), dtype=bool)
        kept[rows[found]] = True
        out.extend((str(c), str(s), None) for c, s in zip(previous_ids[~kept].tolist(),
                                                          previous_stages[~kept].tolist(), strict=True))
    return out


def net_moves(rows: Iterable[tuple[str, str | None, str | None]]) -> dict[str, tuple[str | None, str | None]]:
    """Compose stage moves recorded run after run (``(contact, before, after)`` in run order; None before: a
    new contact, None after: a removed one) into each contact's move over the whole span: its stage before
    the first recorded move and after the last. Contacts back where they started are left out."""
    span: dict[str, tuple[str | None, str | None]] = {}
    for contact, before, after in rows:
        start = span[contact][0] if contact in span else before
        span[contact] = (start, after)
    return {c: move for c, move in span.items() if move[0] != move[1]}


def transition_matrix(stages: Sequence[str], counts_after: Mapping[str, int],
                      moves: Mapping[str, tuple[str | None, str | None]]) -> dict[str, dict[str, int]]:
    """Contacts per (stage at the first run, stage at the second): ``matrix[from][to]``, with the row
    :data:`NEW` for contacts only in the second run and the column :data:`GONE` for contacts only in the first.

    Off the diagonal the counts are the net ``moves``; a stage's diagonal is the contacts in it at the second
    run (``counts_after``) that did not move into it. Every row and column is present, zeros included.
    """
    rows = [*stages, NEW]
    matrix = {r: {c: 0 for c in [*stages, GONE]} for r in rows}
    arrived = Counter(after for before, after in moves.values() if after is not None)
    for before, after in moves.values():
        # A stage no longer configured keeps its own row or column rather than being dropped.
        row = matrix.setdefault(before if before is not None else NEW, {c: 0 for c in [*stages, GONE]})
        target = after if after is not None else GONE
        row[target] = row.get(target, 0) + 1
    for stage in stages:
        matrix[stage][stage] = max(int(counts_after.get(stage, 0)) - arrived.get(stage, 0), 0)
    return matrix


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
