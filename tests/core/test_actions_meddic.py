"""Next best action mapping and MEDDIC completeness."""

from __future__ import annotations

import numpy as np

from core.actions import next_best_actions
from core.config import ActionRule, MeddicConfig, StageConfig
from core.defaults import default_stages, example_action_rules
from core.meddic import MEDDIC_ITEMS, meddic_table
from core.models import FieldType
from tests.core.builders import days_ago, deals, table

STAGES = [StageConfig(name="lead", action="nurture"), StageConfig(name="customer", action="onboard"),
          StageConfig(name="at_risk", kind="decline", action="win_back")]


def test_each_stage_gets_its_default_action() -> None:
    t = table(x=[0, 0, 0])
    assert next_best_actions(STAGES, [], np.array([0, 1, 2]), t).tolist() == ["nurture", "onboard", "win_back"]


def test_rules_override_in_order_and_respect_their_stages() -> None:
    rules = [
        ActionRule.model_validate({"action": "retention_call", "stages": ["at_risk"],
                                   "criteria": [{"field": "clv_percentile", "op": "gte", "value": 80}]}),
        ActionRule.model_validate({"action": "renewal_offer",
                                   "criteria": [{"field": "contract_end_date", "op": "within_next", "value": "60d"}]}),
    ]
    t = table(clv_percentile=[90, 90, 50, 90, None],
              contract_end_date=[days_ago(-30), None, days_ago(-30), days_ago(-90), days_ago(-10)])
    t.set("contract_end_date", t["contract_end_date"], FieldType.DATETIME)
    actions = next_best_actions(STAGES, rules, np.array([2, 2, 1, 1, 0]), t).tolist()
    # Row 0 matches both: the first rule wins. Row 3 is not at risk and its contract ends in 90 days.
    assert actions == ["retention_call", "retention_call", "renewal_offer", "onboard", "renewal_offer"]


def test_example_action_rules_name_known_stages() -> None:
    stage_names = {s.name for s in default_stages()}
    for rule in example_action_rules():
        assert set(rule.stages) <= stage_names


def test_meddic_completeness_and_missing_items() -> None:
    book = deals(
        [(0, "open", 1.0, 5, None), (1, "open", 1.0, 5, None), (0, "won", 1.0, 9, 1), (-1, "open", 1.0, 1, None)],
        meddic_metrics=["Save 20h", None, "x", "y"],
        meddic_economic_buyer=["CFO", "  ", "x", None],
        meddic_decision_criteria=["ROI", "", "x", None],
        meddic_decision_process=["Pilot", None, "x", None],
        meddic_identify_pain=["Manual work", "Churn", "x", None],
        meddic_champion=["RevOps", None, "x", None],
    )
    m = meddic_table(book, np.array(["c0", "c1"], dtype=object), MeddicConfig())
    assert m.deal_ids.tolist() == ["d0", "d1", "d3"]  # open deals only
    assert m.contact_ids.tolist() == ["c0", "c1", None]
    assert m.completeness.tolist() == [6, 1, 1]
    assert m.missing(0) == []
    assert m.missing(1) == ["metrics", "economic_buyer", "decision_criteria", "decision_process", "champion"]
    record = next(m.records())
    assert record == {"deal_id": "d0", "contact_id": "c0", "completeness": 6, "tracked": 6, "missing": []}
    assert m.summary()["missing_share"]["identify_pain"] == round(1 / 3, 4)


def test_meddic_untracked_items_and_absent_properties() -> None:
    book = deals([(0, "open", 1.0, 5, None)], meddic_metrics=["yes"])
    m = meddic_table(book, np.array(["c0"], dtype=object), MeddicConfig(champion=None))
    assert m.items == MEDDIC_ITEMS[:5]
    assert m.completeness.tolist() == [1]  # the other four properties are absent from the data: missing


def test_a_deal_attributed_to_several_contacts_is_scored_once() -> None:
    book = deals([(0, "open", 1.0, 5, None), (1, "open", 1.0, 5, None)], meddic_metrics=["a", "a"])
    book.ids[:] = ["d0", "d0"]
    m = meddic_table(book, np.array(["c0", "c1"], dtype=object), MeddicConfig())
    assert len(m) == 1 and m.contact_ids.tolist() == ["c0"]
