"""When a finished run deserves a notification: the alert rules of ``[alerts]``, pure functions of the run's
summary and metrics (sending is :mod:`sync.alerts`).

A rule triggers on

* a run whose status is in ``on_status`` (by default ``failed``, ``partial`` and ``interrupted``: a scheduled job
  that stopped short needs a person or at least a look);
* a rejection rate above ``max_rejection_rate``: records the CRM refused over the records a run tried to write;
* more of our fields left unwritten than ``max_unwritten_fields`` (a missing property, a field of another type,
  no permission: see the run's ``unwritten_fields``);
* a metric of the run's snapshot (:mod:`core.metrics`) moving beyond a bound since the previous run that has a
  snapshot, e.g. ``churn_rate`` up by more than 0.05 (5 points), the before-vs-after of ``clm report --compare``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # core.config imports this module for the metric names
    from core.config import AlertsConfig, MetricBound

#: Short names of the snapshot metrics a bound may name, and where each is in the snapshot (the keys the
#: report's before-vs-after table uses). Any dotted key of the snapshot works too, e.g.
#: ``stage_counts.customer`` or ``stage_shares.churned``.
METRIC_ALIASES: dict[str, str] = {
    "contacts": "contacts",
    "customers": "customers.total",
    "repeat_share": "customers.repeat_share",
    "retention_rate": "customers.retention.retention_rate",
    "churn_rate": "customers.retention.churn_rate",
    "repeat_rate": "customers.retention.repeat_rate",
    "expected_churn_rate": "customers.retention.expected_churn_rate",
    "won_deals": "sales.won_deals",
    "sales_volume": "sales.won_amount",
    "won_amount": "sales.won_amount",
    "clv_total": "clv.total",
    "clv_mean": "clv.mean",
    "clv_top10_share": "clv.top10_share",
}

#: The snapshot's top-level keys under which a dotted metric name may point (core.metrics.Snapshot).
METRIC_SECTIONS = ("contacts", "stage_counts", "stage_shares", "days_in_stage", "days_to_stage", "lifecycle",
                   "customers", "sales", "clv", "scores", "actions")


@dataclass(frozen=True)
class Trigger:
    """One rule that fired: its name, a sentence for people, and the value against its bound."""

    rule: str
    """``status``, ``rejection_rate``, ``unwritten_fields`` or ``metric:<name>``."""
    message: str
    value: float | str | None = None
    threshold: float | str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the generic webhook's ``triggers``)."""
        return asdict(self)


def metric_key(name: str) -> str:
    """The snapshot key a metric name stands for (an alias, or the dotted key itself)."""
    return METRIC_ALIASES.get(name, name)


def metric_value(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    """The number at a metric's dotted key in a snapshot dict (None when absent, not a number, or unknown)."""
    value: Any = metrics
    for part in metric_key(name).split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def evaluate(config: AlertsConfig, summary: Mapping[str, Any], metrics: Mapping[str, Any] | None,
             previous_metrics: Mapping[str, Any] | None) -> list[Trigger]:
    """The rules a finished run triggers, in the order of the module docstring (empty: send nothing).

    ``summary`` is the run summary as a dict (:class:`sync.runner.RunSummary`), ``metrics`` its snapshot (None when
    the run stopped before computing) and ``previous_metrics`` the snapshot of the run to compare with.
    """
    triggers: list[Trigger] = []
    status = str(summary.get("status", ""))
    if status in config.on_status:
        detail = str(summary.get("message") or "").strip()
        triggers.append(Trigger("status", f"run {summary.get('run_id')} ended {status}" +
                                (f": {detail}" if detail else ""), status, ", ".join(config.on_status)))
    rejected = int(summary.get("rejected_count") or 0)
    attempted = rejected + int(summary.get("written_records") or 0)
    if config.max_rejection_rate is not None and attempted:
        rate = rejected / attempted
        if rate > config.max_rejection_rate:
            triggers.append(Trigger("rejection_rate", f"the CRM rejected {rejected:,} of {attempted:,} records "
                                    f"written ({rate:.1%}, above {config.max_rejection_rate:.1%})",
                                    round(rate, 6), config.max_rejection_rate))
    unwritten = list(summary.get("unwritten_fields") or [])
    if config.max_unwritten_fields is not None and len(unwritten) > config.max_unwritten_fields:
        triggers.append(Trigger("unwritten_fields", f"{len(unwritten)} of our fields were not written "
                                f"({', '.join(map(str, unwritten))}; at most {config.max_unwritten_fields} allowed)",
                                len(unwritten), config.max_unwritten_fields))
    if metrics is not None and previous_metrics is not None:
        for bound in config.metric:
            trigger = _metric_trigger(bound, previous_metrics, metrics)
            if trigger is not None:
                triggers.append(trigger)
    return triggers


def _metric_trigger(bound: MetricBound, before: Mapping[str, Any], after: Mapping[str, Any]) -> Trigger | None:
    old, new = metric_value(before, bound.name), metric_value(after, bound.name)
    if old is None or new is None:
        return None
    change = new - old
    if bound.max_change is not None:
        limit, measured, unit = bound.max_change, change, ""
    else:
        assert bound.max_relative_change is not None  # one of the two is required (core.config.MetricBound)
        if old == 0:
            return None  # no relative change from zero; an absolute bound covers that case
        limit, measured, unit = bound.max_relative_change, change / abs(old), " relative"
    beyond = {"up": measured > limit, "down": -measured > limit, "any": abs(measured) > limit}[bound.direction]
    if not beyond:
        return None
    rate = metric_key(bound.name).endswith(("_rate", "_share"))
    if unit:
        shown = f"{measured:+.1%}"
    elif rate:
        shown = f"{100 * change:+.1f} points ({old:.1%} → {new:.1%})"
    else:
        shown = f"{change:+,.6g} ({old:,.6g} → {new:,.6g})"
    return Trigger(f"metric:{bound.name}", f"{bound.name} moved {shown} since the previous run, beyond the bound of "
                   f"{limit:g}{unit}" + ("" if bound.direction == "any" else f" ({bound.direction})"),
                   round(measured, 6), limit)
