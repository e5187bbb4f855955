"""The configuration: every example loads; mistakes are all reported with their key paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import duration_days, load_config, parse_config, secret
from core.errors import AuthError, ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.stages, "a config always has a stage model"


def test_examples_exist_for_both_crms() -> None:
    kinds = {load_config(p).crm.kind for p in EXAMPLES}
    assert {"hubspot", "salesforce"} <= kinds


def test_empty_config_gets_the_default_stage_model() -> None:
    config = parse_config({})
    assert [s.name for s in config.stages][:3] == ["subscriber", "lead", "marketing_qualified"]
    assert {s.kind for s in config.stages} == {"progress", "decline", "reactivation"}


FIVE_MISTAKES = {
    "crm": {"kind": "hubspot", "knd": "x"},  # 1 unknown key
    "data": {"contact_properties": {"jobtitle": "string", "numemployees": "number"}},
    "stages": [
        {"name": "a"},
        {"name": "b"},
        {"name": "c"},
        {"name": "d", "criteria": [{"field": "won_deals", "op": "gte_", "value": 1}]},  # 2 bad operator
        {"name": "e", "criteria": [{"field": "jobtitel", "op": "eq", "value": "CEO"}]},  # 3 unknown field
        {"name": "f", "criteria": [{"field": "numemployees", "op": "gt", "value": "ten"}]},  # 4 wrong value type
    ],
    "clv": {"horizon": -1},  # 5 out of range
}


def test_five_mistakes_are_all_reported_with_paths() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(FIVE_MISTAKES)
    paths = {p.path: p.message for p in info.value.problems}
    assert set(paths) == {
        "crm.knd",
        "stages[3].criteria[0].op",
        "stages[4].criteria[0].field",
        "stages[5].criteria[0].value",
        "clv.horizon",
    }
    assert "did you mean 'kind'" in paths["crm.knd"]
    assert "unknown operator 'gte_'" in paths["stages[3].criteria[0].op"] and "gte" in paths["stages[3].criteria[0].op"]
    assert "did you mean 'jobtitle'" in paths["stages[4].criteria[0].field"]
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ({"field": "won_deals", "op": "contains", "value": "x"}, "does not apply to number"),
        ({"field": "won_deals", "op": "between", "value": [5, 1]}, "low ≤ high"),
        ({"field": "won_deals", "op": "in", "value": []}, "non-empty list"),
        ({"field": "won_deals", "op": "is_known", "value": 1}, "takes no value"),
        ({"field": "last_purchase_at", "op": "within_last", "value": "30 days"}, "not a duration"),
        ({"field": "last_purchase_at", "op": "gt", "value": "yesterday"}, "not a date"),
        ({"field": "won_deals", "op": "gt"}, "needs a value"),
    ],
)
def test_condition_type_errors_are_caught_at_load_time(condition: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"stages": [{"name": "s", "criteria": [condition]}]})
    assert any(fragment in p.message for p in info.value.problems), info.value.problems


def test_secrets_in_the_file_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"hubspot": {"token": "pat-na1-123"}})
    [problem] = info.value.problems
    assert problem.path == "hubspot.token" and "environment variable" in problem.message
    assert "pat-na1-123" not in str(info.value), "a secret must never be echoed back"


def test_scoring_rules_cannot_use_computed_scores() -> None:
    raw = {"scoring": {"rules": [{"name": "r", "kind": "fit", "points": 1,
                                  "criteria": [{"field": "lead_score", "op": "gt", "value": 1}]}]}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert [p.path for p in info.value.problems] == ["scoring.rules[0].criteria[0].field"]


def test_salesforce_password_auth_needs_its_env_names() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"crm": {"kind": "salesforce"}, "salesforce": {"auth": "password"}})
    assert "username_env" in str(info.value)


def test_secret_reads_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    assert secret("MY_TOKEN", "hubspot.token_env") == "s3cret"
    monkeypatch.delenv("MY_TOKEN")
    with pytest.raises(AuthError, match="MY_TOKEN is not set"):
        secret("MY_TOKEN", "hubspot.token_env")


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "clm.toml"
    path.write_text("[crm]\nkind = \n")
    with pytest.raises(ConfigError, match="line 2"):
        load_config(path)


@pytest.mark.parametrize(("text", "days"), [("30d", 30), ("2w", 14), ("48h", 2), ("1y", 365.25)])
def test_durations(text: str, days: float) -> None:
    assert duration_days(text) == pytest.approx(days)
