"""The write plan: only what changed, conflicts per policy, tolerance, passengers, repeated rejections."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.fields import OUTPUT_FIELDS
from sync.planner import make_plan, normalise, same, values_hash
from sync.state import Rejection

SPECS = list(OUTPUT_FIELDS)
BY_NAME = {s.name: s for s in SPECS}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)


def want(**values: object) -> dict[str, object]:
    base: dict[str, object] = {"stage": "lead", "lead_score": 40.0, "computed_at": T1}
    base.update(values)
    return base


def test_first_write_includes_every_field_and_the_passenger() -> None:
    plan = make_plan({"1": want()}, {}, {}, SPECS)
    assert plan.writes == [("1", {"stage": "lead", "lead_score": 40.0, "computed_at": T1})]


def test_nothing_changes_nothing_written_even_though_computed_at_moved() -> None:
    crm = {"1": {"stage": "lead", "lead_score": "40", "computed_at": str(int(T0.timestamp() * 1000))}}
    written = {"1": {"stage": "lead", "lead_score": 40.0}}
    plan = make_plan({"1": want()}, crm, written, SPECS)
    assert plan.writes == [] and plan.conflicts == []


def test_numeric_noise_within_tolerance_is_not_written() -> None:
    crm = {"1": {"stage": "lead", "lead_score": "40"}}
    written = {"1": {"stage": "lead", "lead_score": 40.0}}
    assert make_plan({"1": want(lead_score=40.1)}, crm, written, SPECS, tolerance=0.005).writes == []
    assert make_plan({"1": want(lead_score=41.0)}, crm, written, SPECS, tolerance=0.005).writes[0][1] == {
        "lead_score": 41.0, "computed_at": T1}


@pytest.mark.parametrize(("policy", "writes"), [("overwrite", 1), ("skip", 0), ("report", 0)])
def test_a_value_edited_in_the_crm_follows_the_policy(policy: str, writes: int) -> None:
    crm = {"1": {"stage": "customer", "lead_score": "40"}}  # a person moved the stage
    written = {"1": {"stage": "lead", "lead_score": 40.0}}
    plan = make_plan({"1": want(stage="opportunity")}, crm, written, SPECS, on_conflict=policy)
    assert len(plan.writes) == writes
    assert [(c.field, c.current, c.written) for c in plan.conflicts] == [("stage", "customer", "lead")]


def test_values_sent_by_an_interrupted_run_are_recognised_as_ours() -> None:
    # Killed after HubSpot applied the batch but before we recorded it: the CRM shows our value.
    crm = {"1": {"stage": "opportunity", "lead_score": "55"}}
    written = {"1": {"stage": "lead", "lead_score": 40.0}}
    in_flight = {"1": {"stage": "opportunity", "lead_score": 55.0}}
    plan = make_plan({"1": want(stage="opportunity", lead_score=55.0)}, crm, written, SPECS, in_flight=in_flight)
    assert plan.writes == [] and plan.conflicts == []
    assert plan.already_current == {"1": {"stage": "opportunity", "lead_score": 55.0}}


def test_same_rejection_is_held_back_until_the_values_change() -> None:
    changes = {"stage": "lead", "lead_score": 40.0, "computed_at": T1}
    rejected = {"1": Rejection("1", "lead_score", "VALIDATION_ERROR", False, values_hash(changes), 1)}
    plan = make_plan({"1": want()}, {}, {}, SPECS, rejections=rejected)
    assert plan.writes == [] and [r.record_id for r in plan.held_back] == ["1"]
    plan = make_plan({"1": want(lead_score=60.0)}, {}, {}, SPECS, rejections=rejected)
    assert len(plan.writes) == 1
    transient = {"1": Rejection("1", None, "UNABLE_TO_LOCK_ROW", True, values_hash(changes), 3)}
    assert len(make_plan({"1": want()}, {}, {}, SPECS, rejections=transient).writes) == 1


def test_datetimes_compare_across_representations() -> None:
    spec = BY_NAME["stage_since"]
    ms = str(int(T0.timestamp() * 1000))
    assert same(spec, ms, T0, 0.0)
    assert same(spec, "2026-01-01T00:00:00Z", T0, 0.0)
    assert same(spec, T0.isoformat(), ms, 0.0)
    assert not same(spec, T1, T0, 0.0)
    assert normalise(spec, "") is None


def test_plan_is_sorted_and_counts_fields() -> None:
    plan = make_plan({"b": want(), "a": want(stage="customer")}, {}, {}, SPECS)
    assert [rid for rid, _ in plan.writes] == ["a", "b"]
    assert plan.field_counts() == {"stage": 2, "lead_score": 2}
