"""The state store's set-based paths: settling a batch, the columnar mirror read, our own writes re-pulled."""

from __future__ import annotations

import dataclasses
import math
import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sandbox.generator import generate
from core.config import ClmConfig
from core.engine import enrich
from core.fields import OUTPUT_FIELDS
from core.models import Contact
from sync import planner
from sync import state as state_module
from sync.planner import DesiredColumns, make_plan
from sync.runner import output_specs
from sync.state import SQLiteState, StateStore

T = datetime(2026, 1, 1, tzinfo=UTC)
OWNED = {"clm_stage": "stage", "clm_lead_score": "lead_score"}


def contact(i: str, updated: float = 0.0, **props: object) -> Contact:
    return Contact(id=i, created_at=T, updated_at=datetime.fromtimestamp(T.timestamp() + updated, tz=UTC),
                   properties=props)  # type: ignore[arg-type]


def test_settling_merges_each_records_values_in_one_row(make_store: Callable[..., StateStore]) -> None:
    state = make_store()
    state.apply_page([contact("1"), contact("2")], [], [], [], {}, OWNED)
    state.save_plan(1, [("1", {"stage": "lead", "lead_score": 40.0}), ("2", {"stage": "customer"})])
    written = {"1": {"stage": "lead", "lead_score": 40.0}, "2": {"stage": "customer"}}
    state.settle_batch(1, written, [], [])
    state.set_owned(written)
    state.save_plan(2, [("1", {"lead_score": 55.0, "computed_at": T})])
    # With now_current the checkpoint also records our values as the CRM's, in the same transaction.
    state.settle_batch(2, {"1": {"lead_score": 55.0, "computed_at": T}}, [], [], now_current=True)
    # Fields not in the later write keep what was written before; datetimes are stored as ISO text.
    assert state.written() == {"1": {"stage": "lead", "lead_score": 55.0, "computed_at": T.isoformat()},
                               "2": {"stage": "customer"}}
    assert state.owned_values() == {"1": {"stage": "lead", "lead_score": 55.0, "computed_at": T.isoformat()},
                                    "2": {"stage": "customer"}}
    assert state.in_flight() == {}
    table = "written_values" if isinstance(state, SQLiteState) else "clm.written_values"
    assert state.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 2  # type: ignore[attr-defined]


def test_a_version_1_state_file_keeps_what_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteState(path, "x").close()
    db = sqlite3.connect(path)
    # Version 1's layout: one row per record and field.
    db.executescript("""
        DROP TABLE written_values;
        CREATE TABLE written (record_id TEXT NOT NULL, field TEXT NOT NULL, value TEXT, run_id INTEGER NOT NULL,
                              PRIMARY KEY (record_id, field));
        INSERT INTO written VALUES ('1', 'stage', '"lead"', 3), ('1', 'lead_score', '40.5', 4),
                                   ('2', 'p_alive', 'null', 3);
        UPDATE meta SET value = '1' WHERE key = 'schema';
    """)
    db.commit()
    db.close()
    state = SQLiteState(path, "x")
    assert state.written() == {"1": {"stage": "lead", "lead_score": 40.5}, "2": {"p_alive": None}}
    assert state.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"


VALUE_POOL = {
    "stage": ["lead", "customer", None, ""],
    "lead_score": [40.0, 40.1, 55.0, "40", "40.0", "55.000001", None, "n/a"],
    "stage_since": [T, datetime(2026, 1, 2, tzinfo=UTC), T.isoformat(), str(int(T.timestamp() * 1000)),
                    "2026-01-01T00:00:00.400Z", None],
    "p_alive": [None, 0.5, "0.5", 0.9],
}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(*(st.sampled_from([*range(len(pool)), -1]) for pool in VALUE_POOL.values())),
                min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_the_column_prefilter_plans_exactly_what_the_record_by_record_diff_does(
        rows: list[tuple[int, ...]], rng: Any) -> None:
    """Desired, CRM and written values drawn from one pool (CRM formatting included); -1 leaves a field out."""
    def pick(index: int) -> dict[str, Any]:
        return {name: pool[(index + k * 3) % len(pool)] for k, (name, pool) in enumerate(VALUE_POOL.items())}

    desired: dict[str, dict[str, Any]] = {}
    current: dict[str, dict[str, Any]] = {}
    written: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(rows):
        rid = str(n)
        desired[rid] = {name: pool[i] for (name, pool), i in zip(VALUE_POOL.items(), row, strict=True) if i >= 0}
        desired[rid]["computed_at"] = T
        current[rid] = {k: v for k, v in pick(rng.randrange(20)).items() if rng.random() < 0.8}
        written[rid] = {k: v for k, v in (desired[rid] if rng.random() < 0.5 else pick(rng.randrange(20))).items()
                        if rng.random() < 0.8}
    specs = [s for s in OUTPUT_FIELDS if s.name in VALUE_POOL or s.name == "computed_at"]
    fast = make_plan(desired, current, written, specs)
    with patch.object(planner, "_settled_out", lambda d, *_: sorted(d)):
        slow = make_plan(desired, current, written, specs)
    assert fast.writes == slow.writes
    assert fast.conflicts == slow.conflicts
    assert fast.already_current == slow.already_current


def test_the_engines_columns_plan_exactly_what_a_dict_per_record_does() -> None:
    """The sync hands the planner the engine's columns (:class:`DesiredColumns`); the plan must be the one the
    same values as a dict per contact give, against CRM and written values in every form they arrive in."""
    data = generate(1_500, seed=8)
    config = ClmConfig()
    specs = output_specs(config)
    result = enrich(data.contact_records(), data.deal_records(), config, data.as_of)
    desired = {row["contact_id"]: {s.name: row[s.name] for s in specs} for row in result.rows()}
    rng = random.Random(3)
    current: dict[str, dict[str, Any]] = {}
    written: dict[str, dict[str, Any]] = {}
    for rid, values in desired.items():
        crm = dict(values)
        roll = rng.random()
        if roll < 0.2:  # as HubSpot returns them: numbers as text, datetimes as epoch milliseconds
            crm = {k: (str(v) if isinstance(v, float) else str(int(v.timestamp() * 1000))
                       if isinstance(v, datetime) else v) for k, v in crm.items()}
        elif roll < 0.3:  # a person's edit, an unreadable number, an emptied field
            crm.update(lead_score="n/a", stage="", clv=(values["clv"] or 0) * 1.5)
        elif roll < 0.4:
            crm = {}
        current[rid] = crm
        if rng.random() < 0.7:
            written[rid] = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()
                            if rng.random() < 0.9}
    columns = DesiredColumns(result, specs)
    # The column pre-filter leaves exactly the same records to the record-by-record diff (a looser one would
    # only cost time and still plan the same, so the plans alone would not show it).
    assert planner._settled_out(columns, current, written, specs, 0.005) == \
        planner._settled_out(desired, current, written, specs, 0.005)
    by_dicts = make_plan(desired, current, written, specs)
    by_columns = make_plan(columns, current, written, specs)
    assert by_dicts.writes and by_dicts.conflicts and by_dicts.already_current  # every branch is exercised
    assert by_columns.writes == by_dicts.writes
    assert by_columns.conflicts == by_dicts.conflicts
    assert by_columns.already_current == by_dicts.already_current


def test_a_record_whose_only_change_is_our_own_write_is_not_new_data(
        make_store: Callable[..., StateStore]) -> None:
    state = make_store()
    owned = {**OWNED, "clm_stage_since": "stage_since"}
    state.apply_page([contact("1", jobtitle="CEO"), contact("2", jobtitle="CTO")], [], [], [], {}, owned, {"jobtitle"})
    ours = {"stage": "lead", "lead_score": 40.5, "stage_since": T.isoformat()}
    state.set_owned({"1": ours, "2": ours})
    # Our write moved the modified time; the CRM formats our values its own way (numbers as text, epoch ms).
    echo = {"jobtitle": "CEO", "clm_stage": "lead", "clm_lead_score": "40.5",
            "clm_stage_since": str(int(T.timestamp() * 1000))}
    edited = {**echo, "jobtitle": "CTO", "clm_lead_score": "12"}  # a person changed one of our fields
    assert state.apply_page([contact("1", updated=60, **echo), contact("2", updated=60, **edited)], [], [], [],
                            {"contacts": "9"}, owned, {"jobtitle"}) == (1, 0)
    assert state.owned_values()["1"] == ours, "not stored again"
    assert state.owned_values()["2"]["lead_score"] == "12"
    table = "contacts" if isinstance(state, SQLiteState) else "clm.contacts"
    assert [r for r in state.db.execute(f"SELECT seen FROM {table} ORDER BY id")] == [(1,), (1,)]  # type: ignore[attr-defined]
    # A changed property is new data even when our fields are as we wrote them.
    assert state.apply_page([contact("1", updated=90, **{**echo, "jobtitle": "CFO"})], [], [], [], {}, owned,
                            {"jobtitle"}) == (1, 0)


def test_the_columnar_read_enriches_exactly_as_the_records_do(make_store: Callable[..., StateStore]) -> None:
    from connectors.sandbox.generator import generate
    from core.config import ClmConfig
    from core.engine import enrich

    data = generate(400, seed=5)
    config = ClmConfig()
    state = make_store()
    keep = set(config.data.contact_properties) | set(config.data.deal_properties)
    state.apply_page(data.contact_records(), data.deal_records(), [], [], {}, {}, keep)
    by_rows = enrich(state.contact_rows(config.data.contact_properties),
                     state.deal_rows(sorted(config.data.deal_properties)), config, data.as_of)
    by_records = enrich(state.contacts(), state.deals(), config, data.as_of)
    assert list(by_rows.rows()) == list(by_records.rows())
    assert by_rows.diagnostics_dict()["data"] == by_records.diagnostics_dict()["data"]


def _general_same_value(ours: Any, pulled: Any) -> bool:
    """The comparison without its fast paths."""
    a, b = state_module._comparable(ours), state_module._comparable(pulled)
    if isinstance(a, float) and isinstance(b, float):
        if a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-9 * max(abs(a), abs(b))):
            return True
        return (b > 1e11 > abs(a) and abs(b / 1000 - a) < 1e-3) or (a > 1e11 > abs(b) and abs(a / 1000 - b) < 1e-3)
    return a == b


NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([40.0, 40.5, 1e12, 1767225600.0])
CRM_TEXT = (NUMBERS.map(str) | NUMBERS.map(repr) | st.text(max_size=6)
            | st.sampled_from(["40", "40.0", "4e1", " 40 ", "nan", "inf", "", "1767225600000", "2026-01-01T00:00:00Z"]))


@settings(max_examples=400, deadline=None)
@given(NUMBERS | CRM_TEXT | st.none(), CRM_TEXT | NUMBERS | st.none())
def test_the_fast_paths_of_the_re_pull_comparison_agree_with_the_general_one(ours: Any, pulled: Any) -> None:
    fast = state_module._same_value(ours, pulled)
    if fast != _general_same_value(ours, pulled):
        # Only where the two are the very same text, which the general parse reads as NaN ("nan" != "nan").
        assert fast and isinstance(ours, str) and ours == pulled, (ours, pulled)


def test_an_infinite_crm_value_is_not_our_number() -> None:
    # A relative tolerance times infinity is infinite: 5 and "inf" used to compare equal, so an edit to "inf"
    # read as our own write (not re-stored) and as needing no write.
    assert not state_module._same_value(5.0, "inf") and not state_module._same_value(float("inf"), "5")
    assert state_module._same_value(float("inf"), "inf")
    lead_score = next(s for s in OUTPUT_FIELDS if s.name == "lead_score")
    assert not planner.same(lead_score, 5.0, "inf", 0.005) and planner.same(lead_score, "inf", float("inf"), 0.005)
    plan = make_plan({"1": {"lead_score": 5.0}}, {"1": {"lead_score": "inf"}}, {"1": {"lead_score": 5.0}},
                     [lead_score], on_conflict="overwrite")
    assert plan.writes == [("1", {"lead_score": 5.0})]


def _engine_result(n: int, config: ClmConfig | None = None) -> tuple[Any, list[Any]]:
    config = config or ClmConfig()
    data = generate(n, seed=8)
    return enrich(data.contact_records(), data.deal_records(), config, data.as_of), output_specs(config)


def test_a_datetime_a_second_from_the_crms_is_written_whichever_way_it_rounds() -> None:
    """The engine's epoch seconds and the CRM's epoch milliseconds round to the millisecond differently (numpy
    and Python disagree on ties such as .2945): the pre-filter must not settle what ``same`` would write."""
    result, specs = _engine_result(50)
    since = result.columns["stage_since"].copy()
    since[0] = 1702508822.2945
    result = dataclasses.replace(result, columns={**result.columns, "stage_since": since})
    desired = {r["contact_id"]: {s.name: r[s.name] for s in specs} for r in result.rows()}
    rid = result.ids[0]
    current = {k: dict(v) for k, v in desired.items()}
    written = {k: dict(v) for k, v in desired.items()}
    current[rid]["stage_since"] = "1702508821295"  # HubSpot's epoch milliseconds, a second (and a rounding) before
    written[rid]["stage_since"] = 1702508821.295
    plan = make_plan(DesiredColumns(result, specs), current, written, specs)
    assert [r for r, values in plan.writes if "stage_since" in values] == [rid]
    assert plan.writes == make_plan(desired, current, written, specs).writes


def test_a_text_field_the_engine_did_not_compute_settles_in_the_pre_filter() -> None:
    config = ClmConfig.model_validate({"sync": {"write_fields": ["stage", "score_reasons", "predictive_reasons"]},
                                       "predictive": {"enabled": False}})
    result, specs = _engine_result(300, config)
    assert "predictive_reasons" in {s.name for s in specs} and "predictive_reasons" not in result.columns
    desired = {r["contact_id"]: {s.name: r[s.name] for s in specs} for r in result.rows()}
    stored = {k: {n: v.isoformat() if isinstance(v, datetime) else v for n, v in values.items()}
              for k, values in desired.items()}
    # Nothing changed: no record is left to the record-by-record diff.
    assert planner._settled_out(DesiredColumns(result, specs), stored, stored, specs, 0.005) == []
