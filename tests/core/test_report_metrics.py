"""The report's lifecycle baseline and stage flow, on hand-made data with hand-computed values (issue 16):
time in stage from the data's own history, the funnel with step and cumulative rates apart from the
post-sale states, the period's repeat buyers, and the transition matrix between two runs."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import ClmConfig
from core.defaults import default_stages
from core.engine import enrich
from core.metrics import (
    GONE,
    NEW,
    Snapshot,
    net_moves,
    purchase_times,
    run_moves,
    stage_entry,
    transition_matrix,
)
from core.stages import StageAssignment
from tests.core.builders import AS_OF, DAY, contacts, days_ago, deals, table


@pytest.fixture(scope="module")
def base() -> Snapshot:
    people = contacts([800, 700, 600, 50, 30])
    book = deals([
        (0, "won", 100.0, 700, 690), (0, "won", 300.0, 100, 90),  # repeat buyer: purchases 690 and 90 days ago
        (1, "won", 50.0, 500, 480),  # one purchase, 480 days ago
        (2, "won", 20.0, 20, 10),  # first purchase 10 days ago
        (3, "open", 5.0, 3, None),  # an open deal created 3 days ago
    ])
    return enrich(people, book, ClmConfig(), AS_OF).metrics


def test_days_in_stage_from_the_qualifying_event(base: Snapshot) -> None:
    days = base.days_in_stage
    assert days["subscriber"] == 30.0  # c4: first touch 30 days ago
    assert days["opportunity"] == 3.0  # c3: its open deal was created 3 days ago
    assert days["customer"] == (480 + 10) / 2  # c1, c2: since their first purchase
    assert days["repeat_customer"] == 90.0  # c0: since its second purchase
    assert base.days_in_stage_median["customer"] == 245.0
    assert base.days_to_stage["customer"] == ((700 - 480) + (600 - 10)) / 2  # first touch to first purchase


def test_lifecycle_lengths_from_first_touch_and_purchases(base: Snapshot) -> None:
    life = base.lifecycle
    assert life["median_days_to_first_purchase"] == 220.0  # 110, 220, 590
    assert life["median_days_first_to_second_purchase"] == 600.0  # c0: 690 -> 90
    assert life["median_buying_span_days"] == 600.0
    assert life["median_days_since_last_purchase_active"] == 90.0  # 90, 480, 10
    assert life["median_lifecycle_days_running"] == 700.0  # ages 800, 700, 600 of the three customers
    assert life["customers_ended"] == 0 and life["median_lifecycle_days_ended"] is None


def test_funnel_rates_are_labelled_step_and_cumulative(base: Snapshot) -> None:
    funnel = {row["stage"]: row for row in base.funnel_stages}
    assert list(funnel)[-1] == "customer", "the funnel ends at the first purchase"
    assert funnel["subscriber"]["reached"] == 5 and funnel["subscriber"]["step_rate"] is None
    assert funnel["lead"]["reached"] == 4 and funnel["lead"]["step_rate"] == 0.8
    # 4 reached opportunity or beyond, 3 of them bought: step 3/4, cumulative 3/5 of all contacts.
    assert funnel["customer"]["step_rate"] == 0.75 and funnel["customer"]["cumulative_rate"] == 0.6
    assert funnel["sales_qualified"]["in_stage"] == 0 and funnel["sales_qualified"]["reached"] == 4
    post = {row["stage"]: row for row in base.post_sale}
    assert list(post) == ["customer", "repeat_customer", "loyal", "at_risk", "churned", "reactivated"]
    assert post["customer"]["contacts"] == 2 and post["customer"]["share_of_customers"] == round(2 / 3, 4)
    assert post["churned"]["kind"] == "decline"


def test_period_buyers_and_the_share_buying_more_than_once() -> None:
    people = contacts([500, 500, 500])
    book = deals([(0, "won", 10.0, 200, 100), (0, "won", 10.0, 60, 50), (1, "won", 5.0, 40, 30),
                  (2, "won", 7.0, 700, 600)])  # c2 bought before the 365-day period only
    sales = enrich(people, book, ClmConfig(), AS_OF).metrics.sales
    assert (sales["won_deals"], sales["buyers"], sales["repeat_buyers"]) == (3, 2, 1)
    assert sales["repeat_buyer_share"] == 0.5 and sales["won_amount"] == 25.0


def test_purchase_times_second_purchase_and_first_open_deal() -> None:
    book = deals([(0, "won", 1.0, 30, 20), (0, "won", 1.0, 90, 80), (0, "won", 1.0, 12, 5),
                  (1, "won", 1.0, 9, 8), (1, "open", 1.0, 4, None), (1, "open", 1.0, 7, None),
                  (2, "lost", 1.0, 50, 40), (2, "won", 1.0, 1, -3)])  # c2's win closes after as-of: still open
    first_open, second = purchase_times(book, 4, AS_OF)
    assert second[0] == days_ago(20)  # purchases 80, 20 and 5 days ago
    assert np.isnan(second[1:]).all()
    assert first_open[1] == days_ago(7) and first_open[2] == days_ago(1)
    assert np.isnan(first_open[0]) and np.isnan(first_open[3])


def test_stage_entry_takes_the_earliest_of_the_event_and_our_runs() -> None:
    stages = default_stages()
    names = tuple(s.name for s in stages)
    at = {name: i for i, name in enumerate(names)}
    rows = ["churned", "customer", "lead", "customer"]
    fields = table(created_at=[days_ago(400), days_ago(300), days_ago(200), None],
                   first_purchase_at=[days_ago(350), days_ago(100), None, days_ago(60)],
                   last_purchase_at=[days_ago(250), days_ago(100), None, days_ago(60)])
    index = np.array([at[r] for r in rows])
    # Our runs saw contact 3 as a customer 80 days ago, before its first purchase was known (a late import).
    since = np.array([AS_OF, AS_OF, AS_OF, days_ago(80)])
    assignment = StageAssignment(names=names, index=index, progress_index=index, since=since,
                                 changed=np.zeros(4, dtype=bool))
    entered = stage_entry(stages, assignment, fields, np.full(4, np.nan), np.full(4, np.nan))
    assert ((AS_OF - entered) / DAY).tolist() == [250.0, 100.0, 200.0, 80.0]


def test_run_moves_against_the_previous_computation() -> None:
    obj = lambda *v: np.array(v, dtype=object)  # noqa: E731
    moves = run_moves(obj("a", "b", "gone"), obj("lead", "customer", "lead"),
                      obj("b", "a", "new"), obj("customer", "marketing_qualified", "lead"))
    assert sorted(moves, key=str) == sorted([("a", "lead", "marketing_qualified"), ("new", None, "lead"),
                                             ("gone", "lead", None)], key=str)


def test_net_moves_compose_runs_and_drop_round_trips() -> None:
    recorded = [("a", "lead", "marketing_qualified"), ("b", "customer", "at_risk"), ("c", None, "lead"),
                ("a", "marketing_qualified", "sales_qualified"), ("b", "at_risk", "customer"),
                ("d", "lead", None)]
    assert net_moves(recorded) == {"a": ("lead", "sales_qualified"), "c": (None, "lead"), "d": ("lead", None)}


def test_transition_matrix_counts_by_hand() -> None:
    stages = ["lead", "customer", "churned"]
    # Run A: 5 leads, 3 customers. Run B: 3 leads, 4 customers, 1 churned, plus 2 new leads (5 leads in all).
    moves = {"l1": ("lead", "customer"), "l2": ("lead", "customer"), "c1": ("customer", "churned"),
             "n1": (None, "lead"), "n2": (None, "lead"), "l3": ("lead", None)}
    matrix = transition_matrix(stages, {"lead": 4, "customer": 4, "churned": 1}, moves)
    assert matrix["lead"] == {"lead": 2, "customer": 2, "churned": 0, GONE: 1}
    assert matrix["customer"] == {"lead": 0, "customer": 2, "churned": 1, GONE: 0}
    assert matrix["churned"] == {"lead": 0, "customer": 0, "churned": 0, GONE: 0}
    assert matrix[NEW] == {"lead": 2, "customer": 0, "churned": 0, GONE: 0}
    # Row sums are run A's counts; column sums are run B's.
    assert sum(matrix["lead"].values()) == 5 and sum(matrix["customer"].values()) == 3
    assert [sum(matrix[r][c] for r in matrix) for c in stages] == [4, 4, 1]
