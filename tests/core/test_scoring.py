"""Lead scoring: points, per, caps, decay, negative points, normalisation, grades and MQL/SQL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import Condition, GradeThresholds, ScoringConfig, ScoringRule
from core.criteria import FieldTable
from core.defaults import example_scoring_rules
from core.models import FieldType
from core.scoring import IMPLICIT_PER_LIMIT, grades, rule_bound, rule_points, score
from tests.core.builders import AS_OF, days_ago, table


def rule(**kwargs: Any) -> ScoringRule:
    kwargs.setdefault("name", "r")
    kwargs.setdefault("kind", "fit")
    return ScoringRule.model_validate(kwargs)


def cond(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def test_points_per_field_and_cap() -> None:
    t = table(clicks=[0, 2, 10, None], title=["CEO", "Engineer", "ceo", None])
    assert rule_points(rule(points=25, criteria=[cond("title", "eq", "ceo")]), t).tolist() == [25, 0, 25, 0]
    assert rule_points(rule(points=3, per="clicks"), t).tolist() == [0, 6, 30, 0]  # unknown count gives 0
    assert rule_points(rule(points=3, per="clicks", cap=20), t).tolist() == [0, 6, 20, 0]
    # Without a cap a per rule counts at most IMPLICIT_PER_LIMIT occurrences.
    t.set("clicks", np.array([0.0, 2.0, 100.0, np.nan]))
    assert rule_points(rule(points=3, per="clicks"), t)[2] == 3 * IMPLICIT_PER_LIMIT
    assert rule_bound(rule(points=25, cap=10)) == 10


def test_negative_points_are_bounded_by_the_cap_too() -> None:
    t = table(bounces=[0, 1, 5])
    assert rule_points(rule(points=-5, per="bounces", cap=10), t).tolist() == [0, -5, -10]


def test_decay_halves_points_every_half_life() -> None:
    t = table(last=[days_ago(0), days_ago(30), days_ago(60), days_ago(-5), None], n=[1, 1, 1, 1, 1])
    t.set("last", t["last"], FieldType.DATETIME)
    points = rule_points(rule(kind="engagement", points=8, per="n", decay_half_life_days=30, decay_field="last"), t)
    # A future date counts as age 0; an unknown date means no decay.
    assert points.tolist() == pytest.approx([8, 4, 2, 8, 8])


def test_unsubscribed_soon_after_joining_costs_twenty_points() -> None:
    unsub = next(r for r in example_scoring_rules() if r.points == -20)
    t = table(days_to_unsubscribe=[3, 7, 8, None])
    assert rule_points(unsub, t).tolist() == [-20, -20, 0, 0]


def test_scores_are_relative_to_the_maximum_and_clipped() -> None:
    config = ScoringConfig(rules=[
        rule(points=30, criteria=[cond("senior", "eq", 1)]),
        rule(points=10, criteria=[cond("big", "eq", 1)]),
        rule(points=-50, criteria=[cond("student", "eq", 1)]),
        rule(kind="engagement", points=5, per="clicks", cap=60),
    ], mql_threshold=40, sql_threshold=70)
    t = table(senior=[1, 1, 0, 0], big=[1, 0, 0, 0], student=[0, 0, 1, 0], clicks=[12, 0, 2, 6])
    s = score(config, t)
    assert s.max_fit_points == 40 and s.max_engagement_points == 60
    assert s.fit_score.tolist() == [100, 75, 0, 0]  # negative fit reads as 0
    assert s.engagement_score.tolist() == [100, 0, pytest.approx(16.7), 50]
    assert s.lead_score.tolist() == [100, 30, 0, 30]
    assert s.is_mql.tolist() == [True, False, False, False]
    assert s.is_sql.tolist() == [True, False, False, False]


def test_grade_boundaries_belong_to_the_higher_grade() -> None:
    thresholds = GradeThresholds(A=75, B=50, C=25)
    lead = np.array([100, 75, 74.9, 50, 49.9, 25, 24.9, 0])
    assert grades(lead, thresholds).tolist() == ["A", "A", "B", "B", "C", "C", "D", "D"]


def test_no_rules_scores_zero() -> None:
    s = score(ScoringConfig(), table(x=[1, 2]))
    assert s.lead_score.tolist() == [0, 0] and s.grade.tolist() == ["D", "D"]


# --- properties ------------------------------------------------------------------------------------------

_rules = st.lists(
    st.builds(
        lambda kind, points, per, cap, decay: rule(
            kind=kind, points=points, per="count" if per else None, cap=cap,
            criteria=[cond("flag", "eq", 1)],
            **({"decay_half_life_days": 30.0, "decay_field": "when"} if decay and kind == "engagement" else {}),
        ),
        st.sampled_from(["fit", "engagement"]),
        st.floats(-50, 50, allow_nan=False).filter(lambda p: p != 0),
        st.booleans(),
        st.one_of(st.none(), st.floats(1, 100)),
        st.booleans(),
    ),
    min_size=1, max_size=6,
)
_rows = st.lists(st.tuples(st.sampled_from([0.0, 1.0, np.nan]), st.floats(0, 1000) | st.just(np.nan),
                           st.floats(-100, 1000)), min_size=1, max_size=30)


def _table(rows: list[tuple[float, float, float]]) -> FieldTable:
    t = FieldTable(len(rows), AS_OF)
    t.set("flag", np.array([r[0] for r in rows]))
    t.set("count", np.array([r[1] for r in rows]))
    t.set("when", np.array([days_ago(r[2]) for r in rows]), FieldType.DATETIME)
    return t


@settings(max_examples=60, deadline=None)
@given(_rules, _rows)
def test_scores_stay_within_0_and_100(rules: list[ScoringRule], rows: list[tuple[float, float, float]]) -> None:
    s = score(ScoringConfig(rules=rules), _table(rows))
    for values in (s.lead_score, s.fit_score, s.engagement_score):
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= 100).all()


@settings(max_examples=60, deadline=None)
@given(_rules, _rows, st.floats(0.5, 40), st.sampled_from(["fit", "engagement"]), st.data())
def test_a_new_positive_signal_never_lowers_the_score(rules: list[ScoringRule], rows: list[tuple[float, float, float]],
                                                     points: float, kind: str, data: st.DataObject) -> None:
    """A contact who starts to match a positive rule (its signal flips from unknown/0 to 1) scores no lower."""
    rules = [*rules, rule(kind=kind, points=points, criteria=[cond("signal", "eq", 1)])]
    signal = np.array(data.draw(st.lists(st.sampled_from([0.0, np.nan]), min_size=len(rows), max_size=len(rows))))
    row = data.draw(st.integers(0, len(rows) - 1))
    before_table = _table(rows)
    before_table.set("signal", signal)
    after_table = _table(rows)
    after_signal = signal.copy()
    after_signal[row] = 1.0
    after_table.set("signal", after_signal)
    before = score(ScoringConfig(rules=rules), before_table)
    after = score(ScoringConfig(rules=rules), after_table)
    assert after.lead_score[row] >= before.lead_score[row]
    assert (after.lead_score >= before.lead_score).all()


def test_condition_values_from_the_config_reach_the_rules() -> None:
    r = ScoringRule(name="big", kind="fit", points=10, criteria=[Condition(field="n", op="gte", value=50.0)])
    assert rule_points(r, table(n=[49, 50])).tolist() == [0, 10]


def test_config_accepts_the_computed_fields_in_rules_and_stages() -> None:
    from core.config import parse_config

    config = parse_config({
        "data": {"contact_properties": {"unsubscribed_at": "datetime"}},
        "scoring": {"rules": [{"name": "Unsubscribed within 7 days of joining", "kind": "engagement", "points": -20,
                               "criteria": [{"field": "days_to_unsubscribe", "op": "lte", "value": 7}]}]},
        "stages": [{"name": "prospect"},
                   {"name": "mql", "criteria": [{"field": "is_mql", "op": "eq", "value": True}]},
                   {"name": "back", "kind": "reactivation",
                    "criteria": [{"field": "purchases_in_stage", "op": "gte", "value": 1}]}],
    })
    assert config.scoring.rules[0].points == -20
