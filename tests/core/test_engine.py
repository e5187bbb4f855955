"""The entry point: records and columns give the same result, outputs are complete and finite, model failures
fall back with a reason, and history flows from one run to the next."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
from core.config import ClmConfig, ClvConfig, DataConfig, ScoringConfig, StageConfig
from core.defaults import default_stages, example_action_rules, example_scoring_rules
from core.engine import OUTPUT_NAMES, EnrichResult, enrich
from core.errors import FitError
from core.fields import OUTPUT_FIELDS
from core.models import Enrichment
from tests.core.builders import AS_OF, DAY, contacts, deals

NULLABLE = {"conversion_probability", "p_alive"}


def generated_config() -> ClmConfig:
    return ClmConfig(
        data=DataConfig(contact_properties=dict(PROPERTY_TYPES), deal_properties=dict(DEAL_PROPERTY_TYPES)),
        scoring=ScoringConfig(rules=example_scoring_rules()),
        actions=example_action_rules(),
    )


@pytest.fixture(scope="module")
def small_world() -> tuple[EnrichResult, EnrichResult]:
    data = generate(400, seed=11)
    config = generated_config()
    from_columns = enrich(data.contacts, data.deals, config, data.as_of)
    from_records = enrich(data.contact_records(), data.deal_records(), config, data.as_of)
    return from_columns, from_records


def test_records_and_columns_give_the_same_enrichment(small_world: tuple[EnrichResult, EnrichResult]) -> None:
    columns, records = small_world
    assert columns.ids.tolist() == records.ids.tolist()
    for name in OUTPUT_NAMES:
        a, b = columns.columns[name], records.columns[name]
        if a.dtype == object:
            assert a.tolist() == b.tolist(), name
        else:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)
    assert columns.meddic.completeness.tolist() == records.meddic.completeness.tolist()


def test_every_output_field_is_present_and_finite(small_world: tuple[EnrichResult, EnrichResult]) -> None:
    result = small_world[0]
    assert tuple(result.columns) == tuple(spec.name for spec in OUTPUT_FIELDS)
    for name, values in result.columns.items():
        assert len(values) == len(result)
        if values.dtype != object and name not in NULLABLE:
            assert np.isfinite(values).all(), name
        if values.dtype == object:
            assert all(isinstance(v, str) for v in values.tolist()), name
    records = list(result.records())
    assert len(records) == len(result)
    # Built without validation for speed: they must still be valid.
    for record in records[:50]:
        assert Enrichment.model_validate(record.model_dump()) == record
    assert {r.p_alive is None for r in records} == {True, False}
    assert [r.model_dump() for r in records] == list(result.rows())


def test_diagnostics_are_json_and_readable(small_world: tuple[EnrichResult, EnrichResult]) -> None:
    import json

    result = small_world[0]
    text = json.dumps(result.diagnostics_dict(), allow_nan=False)
    assert set(json.loads(text)) == {"clv", "predictive", "scoring", "meddic", "data", "seconds"}
    lines = result.diagnostics.lines()
    assert lines[0].startswith("CLV:") and lines[1].startswith("predictive: disabled")


def test_few_customers_fall_back_to_empirical_values_and_say_so() -> None:
    people = contacts([300, 300, 300])
    book = deals([(0, "won", 100.0, 200, 190), (0, "won", 80.0, 100, 90), (1, "won", 40.0, 50, 45)])
    result = enrich(people, book, ClmConfig(), AS_OF)
    notes = " ".join(result.diagnostics.clv["notes"])
    assert "empirical fallback" in notes
    assert result.diagnostics.clv["fallback"] is True
    assert result.diagnostics.clv["purchase_model"] == "empirical"
    assert np.isfinite(result.columns["clv"]).all() and result.columns["clv"][2] == 0
    assert result.columns["historical_value"].tolist() == [180.0, 40.0, 0.0]
    assert any("CLV" in line for line in result.diagnostics.lines())


def test_a_failing_clv_model_never_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise FitError("optimizer diverged")

    monkeypatch.setattr("core.lifetime.fit_and_score", broken)
    people = contacts([300, 300])
    result = enrich(people, deals([(0, "won", 100.0, 200, 190)]), ClmConfig(), AS_OF)
    assert result.columns["clv"].tolist() == [100.0, 0.0]
    assert result.diagnostics.clv["fallback"] is True and np.isnan(result.columns["p_alive"]).all()
    assert "optimizer diverged" in " ".join(result.diagnostics.clv["notes"])


def test_historical_model_uses_no_fit() -> None:
    data = generate(300, seed=2)
    result = enrich(data.contacts, data.deals, ClmConfig(clv=ClvConfig(model="historical")), data.as_of)
    assert result.diagnostics.clv["purchase_model"] == "empirical"
    assert "historical" in " ".join(result.diagnostics.clv["notes"])


def test_declared_properties_missing_from_the_data_are_reported() -> None:
    config = ClmConfig(data=DataConfig(contact_properties={"jobtitle": "string"}))  # type: ignore[dict-item]
    result = enrich(contacts([10]), deals([]), config, AS_OF)
    assert "jobtitle" in result.diagnostics.data[0]


def test_as_of_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        enrich(contacts([1]), deals([]), ClmConfig(), datetime(2026, 1, 1))
    assert enrich(contacts([1]), deals([]), ClmConfig(), datetime(2026, 1, 1, tzinfo=UTC)).as_of == AS_OF


def test_empty_base() -> None:
    result = enrich(contacts([]), deals([]), ClmConfig(), AS_OF)
    assert len(result) == 0 and list(result.records()) == []
    assert result.metrics.contacts == 0


def test_a_customer_who_buys_after_declining_is_reactivated() -> None:
    stages = [
        StageConfig(name="prospect"),
        StageConfig.model_validate({"name": "customer", "criteria": [{"field": "won_deals", "op": "gte", "value": 1}]}),
        StageConfig.model_validate({"name": "at_risk", "kind": "decline", "criteria": [
            {"field": "days_since_last_purchase", "op": "gt", "value": 60}]}),
        default_stages()[-1],
    ]
    config = ClmConfig(stages=stages)
    people = contacts([400, 400])
    book = deals([(0, "won", 10.0, 210, 200), (0, "won", 10.0, 15, 10), (1, "won", 10.0, 210, 200)])
    first = enrich(people, book, config, AS_OF - 30 * DAY)
    assert first.columns["stage"].tolist() == ["at_risk", "at_risk"]  # the purchase 10 days ago is in the future
    second = enrich(people, book, config, AS_OF, previous=first.previous_state())
    assert second.columns["stage"].tolist() == ["reactivated", "at_risk"]
    assert second.columns["stage_since"].tolist() == [AS_OF, AS_OF - 30 * DAY]
    assert second.table["purchases_in_stage"].tolist() == [1, 0]
    assert second.table["days_in_stage"].tolist() == [30, 30]
    third = enrich(people, book, config, AS_OF + 30 * DAY, previous=second.previous_state())
    assert third.columns["stage"].tolist() == ["reactivated", "at_risk"]  # stays while the purchase is recent
    assert third.columns["stage_since"][0] == AS_OF


def test_deals_pointing_past_the_contacts_are_ignored_with_a_note() -> None:
    book = deals([(0, "won", 10.0, 20, 10), (7, "won", 10.0, 20, 10)])
    result = enrich(contacts([100]), book, ClmConfig(), AS_OF)
    assert result.columns["historical_value"].tolist() == [10.0]
    assert any("without a known contact" in note for note in result.diagnostics.data)
