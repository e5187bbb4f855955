"""Criteria: every operator on every column type, unknown values, and AND/OR group logic."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import Condition, Criteria, parse_config
from core.criteria import FieldTable, evaluate, factorize
from core.models import FieldType
from tests.core.builders import AS_OF, days_ago, table


def mask(t: FieldTable, field: str, op: str, value: Any = None) -> list[bool]:
    return evaluate(Criteria(criteria=[Condition(field=field, op=op, value=value)]), t).tolist()


NUMBERS = table(x=[1, 5, 10, None])


@pytest.mark.parametrize(("op", "value", "expected"), [
    ("eq", 5, [False, True, False, False]),
    ("neq", 5, [True, False, True, True]),  # unknown matches "is not equal to", as in a CRM list
    ("lt", 5, [True, False, False, False]),
    ("lte", 5, [True, True, False, False]),
    ("gt", 5, [False, False, True, False]),
    ("gte", 5, [False, True, True, False]),
    ("between", [2, 10], [False, True, True, False]),
    ("between", [5, 5], [False, True, False, False]),
    ("in", [1, 10], [True, False, True, False]),
    ("not_in", [1, 10], [False, True, False, True]),
    ("is_known", None, [True, True, True, False]),
    ("is_unknown", None, [False, False, False, True]),
])
def test_number_operators(op: str, value: Any, expected: list[bool]) -> None:
    assert mask(NUMBERS, "x", op, value) == expected


TEXT = table(title=["VP Sales", "vp marketing", "Engineer", None, "  ", "CEO"])


@pytest.mark.parametrize(("op", "value", "expected"), [
    ("eq", "vp sales", [True, False, False, False, False, False]),  # case-insensitive, whole value
    ("eq", "VP", [False, False, False, False, False, False]),
    ("neq", "engineer", [True, True, False, True, True, True]),  # unknown and blank match
    ("in", ["CEO", "Engineer"], [False, False, True, False, False, True]),
    ("not_in", ["CEO", "Engineer"], [True, True, False, True, True, False]),
    ("contains", "vp", [True, True, False, False, False, False]),  # case-insensitive substring
    ("contains", "MARK", [False, True, False, False, False, False]),
    ("is_known", None, [True, True, True, False, False, True]),  # blank text is unknown
    ("is_unknown", None, [False, False, False, True, True, False]),
])
def test_text_operators(op: str, value: Any, expected: list[bool]) -> None:
    assert mask(TEXT, "title", op, value) == expected


def test_numbers_stored_as_text_compare_like_a_crm_shows_them() -> None:
    t = FieldTable(3, AS_OF)
    t.set("code", np.array([50.0, "50", None], dtype=object), FieldType.STRING)
    assert mask(t, "code", "eq", 50) == [True, True, False]


BOOLS = table(flag=[1, 0, None])


@pytest.mark.parametrize(("op", "value", "expected"), [
    ("eq", True, [True, False, False]),
    ("eq", False, [False, True, False]),
    ("neq", True, [False, True, True]),
    ("is_known", None, [True, True, False]),
    ("is_unknown", None, [False, False, True]),
])
def test_bool_operators(op: str, value: Any, expected: list[bool]) -> None:
    BOOLS.set("flag", BOOLS["flag"], FieldType.BOOL)
    assert mask(BOOLS, "flag", op, value) == expected


DATES = table(when=[days_ago(400), days_ago(30), days_ago(29.5), days_ago(0), days_ago(-10), days_ago(-61), None])


@pytest.mark.parametrize(("op", "value", "expected"), [
    ("within_last", "30d", [False, True, True, True, False, False, False]),  # inclusive at 30 days
    ("not_within_last", "30d", [True, False, False, False, False, False, False]),  # unknown never matches
    ("within_last", "1y", [False, True, True, True, False, False, False]),
    ("within_next", "60d", [False, False, False, True, True, False, False]),
    ("within_next", "9w", [False, False, False, True, True, True, False]),
    ("lt", "2025-12-01", [True, False, False, False, False, False, False]),
    ("gte", "2025-12-02T00:00:00Z", [False, True, True, True, True, True, False]),
    ("between", ["2025-12-01", "2026-01-01"], [False, True, True, True, False, False, False]),
    ("is_unknown", None, [False, False, False, False, False, False, True]),
])
def test_date_operators(op: str, value: Any, expected: list[bool]) -> None:
    DATES.set("when", DATES["when"], FieldType.DATETIME)
    assert mask(DATES, "when", op, value) == expected


def test_a_field_missing_from_the_data_is_all_unknown() -> None:
    t = table(x=[1, 2])
    assert mask(t, "absent", "eq", 1) == [False, False]
    assert mask(t, "absent", "neq", 1) == [True, True]
    assert mask(t, "absent", "not_in", [1]) == [True, True]
    assert mask(t, "absent", "is_unknown") == [True, True]
    assert mask(t, "absent", "is_known") == [False, False]


def test_conditions_are_anded_and_groups_ored() -> None:
    t = table(a=[1, 1, 1, 0, 0], b=[1, 0, 0, 1, 0], c=[0, 1, 0, 1, 0])

    def c(field: str, value: float) -> Condition:
        return Condition(field=field, op="eq", value=value)

    both = Criteria(criteria=[c("a", 1), c("b", 1)])
    assert evaluate(both, t).tolist() == [True, False, False, False, False]
    either = Criteria(any_of=[[c("b", 1)], [c("c", 1)]])
    assert evaluate(either, t).tolist() == [True, True, False, True, False]
    mixed = Criteria(criteria=[c("a", 1)], any_of=either.any_of)
    assert evaluate(mixed, t).tolist() == [True, True, False, False, False]
    group_of_two = Criteria(any_of=[[c("a", 1), c("c", 1)], [c("b", 1), c("a", 0)]])
    assert evaluate(group_of_two, t).tolist() == [False, True, False, True, False]
    assert evaluate(Criteria(), t).tolist() == [True] * 5


def test_within_next_is_a_validated_operator_for_dates_only() -> None:
    config = parse_config({
        "data": {"contact_properties": {"contract_end_date": "datetime", "numemployees": "number"}},
        "actions": [{"action": "renewal_offer", "criteria": [
            {"field": "contract_end_date", "op": "within_next", "value": "60d"}]}],
    })
    assert config.actions[0].criteria[0].op == "within_next"
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="within_next"):
        parse_config({"data": {"contact_properties": {"numemployees": "number"}}, "actions": [
            {"action": "x", "criteria": [{"field": "numemployees", "op": "within_next", "value": "60d"}]}]})


def test_factorize_folds_case_and_marks_unknowns() -> None:
    codes, categories = factorize(np.array(["A", "a", None, "", "b", float("nan")], dtype=object))
    assert categories == ["a", "b"]
    assert codes.tolist() == [0, 0, -1, -1, 1, -1]


@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=40),
       st.floats(-1e6, 1e6, allow_nan=False))
def test_eq_and_neq_partition_every_row(values: list[float | None], target: float) -> None:
    t = table(x=values)
    eq = np.array(mask(t, "x", "eq", target))
    neq = np.array(mask(t, "x", "neq", target))
    assert (eq ^ neq).all()
    known = np.array(mask(t, "x", "is_known"))
    lt, gte = np.array(mask(t, "x", "lt", target)), np.array(mask(t, "x", "gte", target))
    assert ((lt | gte) == known).all() and not (lt & gte).any()
