"""Stage precedence, stage_since carry-over, row-order independence, and HubSpot's lifecyclestage mapping."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import StageConfig
from core.criteria import FieldTable
from core.defaults import default_stages
from core.stages import (
    HUBSPOT_LIFECYCLE_ORDER,
    assign_stages,
    forward_moves,
    hubspot_lifecyclestages,
    is_forward_move,
)
from tests.core.builders import AS_OF, days_ago, table


def stage(name: str, kind: str = "progress", **criteria: Any) -> StageConfig:
    conditions = [{"field": f, "op": "gte", "value": v} for f, v in criteria.items()]
    return StageConfig.model_validate({"name": name, "kind": kind, "criteria": conditions})


MODEL = [
    stage("prospect"),
    stage("engaged", engaged=1),
    stage("customer", won=1),
    stage("repeat", won=2),
    stage("at_risk", "decline", risk=1),
    stage("churned", "decline", risk=2),
    stage("reactivated", "reactivation", back=1),
]


def names(t: FieldTable, model: list[StageConfig] = MODEL) -> list[str]:
    return assign_stages(model, t).stage.tolist()


def test_highest_matching_progress_stage_wins() -> None:
    t = table(engaged=[0, 1, 1, 0], won=[0, 0, 1, 2], risk=[0, 0, 0, 0], back=[0, 0, 0, 0])
    assert names(t) == ["prospect", "engaged", "customer", "repeat"]


def test_decline_overrides_progress_and_the_later_decline_wins() -> None:
    t = table(engaged=[1, 1, 1], won=[2, 2, 0], risk=[1, 2, 1], back=[0, 0, 0])
    assert names(t) == ["at_risk", "churned", "at_risk"]
    assert assign_stages(MODEL, t).progress_index.tolist() == [3, 3, 1]  # the funnel still sees "repeat"


def test_reactivation_overrides_everything() -> None:
    t = table(engaged=[1, 0], won=[2, 0], risk=[2, 0], back=[1, 1])
    assert names(t) == ["reactivated", "reactivated"]


def test_a_contact_matching_no_progress_stage_gets_the_first() -> None:
    model = [stage("lead", engaged=1), stage("customer", won=1)]
    assert names(table(engaged=[0, 1], won=[0, 0]), model) == ["lead", "lead"]


def test_stage_since_is_carried_when_the_stage_did_not_change() -> None:
    t = table(engaged=[1, 1, 0, 1, 1], won=[0, 1, 0, 0, 0], risk=[0] * 5, back=[0] * 5)
    previous = np.array(["engaged", "engaged", "prospect", None, "gone_stage"], dtype=object)
    since = np.array([days_ago(10), days_ago(20), days_ago(30), np.nan, days_ago(40)])
    result = assign_stages(MODEL, t, previous, since)
    assert result.stage.tolist() == ["engaged", "customer", "prospect", "engaged", "engaged"]
    assert result.since.tolist() == [days_ago(10), AS_OF, days_ago(30), AS_OF, AS_OF]
    assert result.changed.tolist() == [False, True, False, True, True]


def test_default_model_uses_the_mql_and_sql_flags() -> None:
    stages = {s.name: s for s in default_stages()}
    assert stages["marketing_qualified"].criteria[0].field == "is_mql"
    assert stages["sales_qualified"].criteria[0].field == "is_sql"
    t = table(engagement_score=[50, 50, 50], is_mql=[0, 1, 1], is_sql=[0, 0, 1], open_deals=[0, 0, 0],
              won_deals=[0, 0, 0])
    assert names(t, default_stages()) == ["lead", "marketing_qualified", "sales_qualified"]


_rows = st.lists(st.tuples(*[st.sampled_from([0.0, 1.0, 2.0, np.nan])] * 4), min_size=1, max_size=40)


@settings(max_examples=80, deadline=None)
@given(_rows, st.randoms(use_true_random=False))
def test_stage_assignment_does_not_depend_on_row_order(rows: list[tuple[float, ...]], rnd: Any) -> None:
    order = list(range(len(rows)))
    rnd.shuffle(order)

    def build(ordered: list[tuple[float, ...]]) -> FieldTable:
        t = FieldTable(len(ordered), AS_OF)
        for j, name in enumerate(("engaged", "won", "risk", "back")):
            t.set(name, np.array([r[j] for r in ordered]))
        return t

    straight = names(build(rows))
    shuffled = names(build([rows[i] for i in order]))
    assert shuffled == [straight[i] for i in order]


def test_hubspot_mapping_and_forward_only_rule() -> None:
    model = default_stages()
    index = np.array([0, 2, 5, 9])
    assert hubspot_lifecyclestages(model, index).tolist() == ["subscriber", "marketingqualifiedlead", "customer",
                                                              "customer"]
    assert HUBSPOT_LIFECYCLE_ORDER[0] == "subscriber" and HUBSPOT_LIFECYCLE_ORDER[-1] == "other"
    assert is_forward_move("lead", "customer")
    assert not is_forward_move("customer", "lead")
    assert not is_forward_move("customer", "customer")
    assert is_forward_move(None, "subscriber") and is_forward_move("", "lead")
    assert not is_forward_move("my_custom_stage", "customer")
    assert not is_forward_move("lead", None)
    current = np.array(["lead", "customer", None, "", "weird", "opportunity"], dtype=object)
    proposed = np.array(["customer", "lead", "lead", "other", "customer", None], dtype=object)
    assert forward_moves(current, proposed).tolist() == [
        is_forward_move(c, p) for c, p in zip(current.tolist(), proposed.tolist(), strict=True)]
