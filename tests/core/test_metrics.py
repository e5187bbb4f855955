"""The metrics snapshot: definitions on a small hand-made base, JSON round trip, and before/after comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.config import ClmConfig
from core.engine import PreviousState, enrich
from core.metrics import Snapshot, churn_stage, compare, stage_movements
from tests.core.builders import AS_OF, DAY, contacts, days_ago, deals


@pytest.fixture(scope="module")
def small() -> Snapshot:
    people = contacts([800, 700, 600, 50, 30])
    book = deals([
        (0, "won", 100.0, 700, 690), (0, "won", 300.0, 100, 90),  # repeat buyer, bought before the period too
        (1, "won", 50.0, 500, 480),  # one purchase, long ago
        (2, "won", 20.0, 20, 10),  # new customer this period
        (3, "open", 5.0, 3, None),
    ])
    return enrich(people, book, ClmConfig(), AS_OF).metrics


def test_counts_shares_and_funnel(small: Snapshot) -> None:
    assert small.contacts == 5
    assert sum(small.stage_counts.values()) == 5
    assert small.stage_counts["opportunity"] == 1
    assert small.stage_counts["subscriber"] == 1
    funnel = small.funnel["opportunity->customer"]
    # 4 contacts reached opportunity or beyond (3 customers + 1 open deal), 3 of them became customers.
    assert funnel["reached_from"] == 4 and funnel["reached_to"] == 3 and funnel["rate"] == 0.75


def test_customers_retention_sales_and_clv(small: Snapshot) -> None:
    customers = small.customers
    assert customers["total"] == 3
    assert customers["repeat_share"] == round(1 / 3, 4)
    assert customers["active"] + customers["at_risk"] + customers["churned"] == 3
    retention = customers["retention"]
    assert retention["cohort"] == 2  # customers 0 and 1 bought before the 365-day period began
    assert retention["repeat_rate"] == 0.5
    assert small.sales["won_deals"] == 2 and small.sales["won_amount"] == 320.0
    assert small.sales["new_customers"] == 1
    assert small.clv["historical_total"] == 470.0
    assert small.clv["top10_share"] is not None and 0 < small.clv["top10_share"] <= 1
    assert small.lifecycle["mean_days_to_first_purchase"] == pytest.approx((110 + 220 + 590) / 3, abs=0.01)
    assert sum(small.scores["lead_score_histogram"]) == 5
    assert small.scores["grade_counts"] == {"D": 5}
    assert sum(small.actions.values()) == 5


def test_snapshot_is_json_and_round_trips(small: Snapshot) -> None:
    text = json.dumps(small.to_dict(), allow_nan=False)
    again = Snapshot.from_dict(json.loads(text))
    assert again == small
    assert Snapshot.from_dict({"contacts": 3, "unknown_future_key": 1}).contacts == 3


def test_days_in_stage_come_from_the_data_history_not_only_our_runs() -> None:
    # Issue 16: days in stage were as_of - stage_since, all zeros until our runs had been going for a while.
    people = contacts([100, 100])
    book = deals([(0, "won", 10.0, 50, 40)])
    first = enrich(people, book, ClmConfig(), AS_OF - 10 * DAY)
    second = enrich(people, book, ClmConfig(), AS_OF, previous=first.previous_state())
    assert second.columns["stage_since"].tolist() == [AS_OF - 10 * DAY] * 2  # the field we write is unchanged
    days = second.metrics.days_in_stage
    assert days["customer"] == 40.0, "a customer since its first purchase, 40 days ago"
    assert days["subscriber"] == 100.0, "a subscriber since its first touch (creation), 100 days ago"
    alone = enrich(people, book, ClmConfig(), AS_OF).metrics.days_in_stage
    assert alone["customer"] == 40.0 and alone["subscriber"] == 100.0, "even on the very first run"


def test_comparison_reports_absolute_and_relative_changes() -> None:
    before = Snapshot(as_of="a", contacts=100, stage_counts={"lead": 40, "customer": 0},
                      customers={"retention": {"retention_rate": 0.5}}, scores={"lead_score_bins": [0, 10]})
    after = Snapshot(as_of="b", contacts=120, stage_counts={"lead": 30, "customer": 5},
                     customers={"retention": {"retention_rate": 0.6}}, scores={"lead_score_bins": [0, 10]})
    result = compare(before, after)
    assert result.changes["contacts"].absolute == 20 and result.changes["contacts"].relative == 0.2
    assert result.changes["stage_counts.lead"].relative == -0.25
    assert result.changes["stage_counts.customer"].relative is None  # from zero
    assert result.changes["customers.retention.retention_rate"].absolute == pytest.approx(0.1)
    assert not any("_bins" in key for key in result.changes)
    json.dumps(result.to_dict(), allow_nan=False)


def test_stage_movements_between_runs() -> None:
    ids_before = np.array(["a", "b", "c", "gone"], dtype=object)
    ids_after = np.array(["a", "b", "c", "new"], dtype=object)
    before = np.array(["lead", "customer", "customer", "lead"], dtype=object)
    after = np.array(["customer", "churned", "customer", "lead"], dtype=object)
    moves, new, removed = stage_movements((ids_before, before), (ids_after, after))
    assert moves == {"lead": {"customer": 1}, "customer": {"churned": 1, "customer": 1}}
    assert (new, removed) == (1, 1)
    full = compare(Snapshot(), Snapshot(), (ids_before, before), (ids_after, after))
    assert full.stage_movements == moves


def test_churn_stage_is_named_churned_or_the_last_decline() -> None:
    config = ClmConfig()
    assert churn_stage(config.stages) == "churned"
    assert churn_stage(config.stages[:9]) == "at_risk"
    assert churn_stage(config.stages[:3]) is None


def test_previous_state_from_stored_rows() -> None:
    state = PreviousState.from_rows({"c1": ("lead", days_ago(5)), "c0": ("customer", days_ago(9))})
    stage, since = state.aligned(np.array(["c0", "c1", "c9"], dtype=object))
    assert stage.tolist() == ["customer", "lead", None]
    assert since[:2].tolist() == [days_ago(9), days_ago(5)] and np.isnan(since[2])
