"""Hostile configurations (issue 14): everything that cannot work is refused before anything runs, each problem
with its key path and a hint, and no secret-looking value is ever echoed — by the loader, `clm config check`
or `clm check`, as text or JSON.

Named regressions reproduce the reported instances; hypothesis strategies generate more of each class. Every
case is counted (tried / held) in the test summary through the ``hostile`` fixture of tests/conftest.py.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any, Protocol

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import wiring
from cli.main import cli
from core.config import MissingSecret, looks_like_secret, parse_config, secret
from core.config import load_config as load
from core.errors import ConfigError
from core.fields import OPTIONAL_OUTPUT_FIELDS, OUTPUT_FIELDS
from core.stages import HUBSPOT_LIFECYCLE_ORDER

SUITE = "bad configurations"
TOKEN = "pat-na1-5d2c6e1a-93b4-4c7f-8e21-0a9b8c7d6e5f"  # the shape of a HubSpot private app token
PASSWORD = "hunter2-Secret9"
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Counter(Protocol):
    def tried(self, suite: str) -> None: ...
    def held(self, suite: str) -> None: ...


def _stages(*extra: dict[str, Any]) -> dict[str, Any]:
    """A stage model: a catch-all first progress stage, then ``extra``."""
    return {"stages": [{"name": "subscriber"}, *extra]}


def _criteria(*conditions: dict[str, Any]) -> dict[str, Any]:
    return _stages({"name": "target", "criteria": list(conditions)})


def _c(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, **({} if value is None else {"value": value})}


def _sf(**keys: Any) -> dict[str, Any]:
    return {"crm": {"kind": "salesforce"}, "salesforce": keys}


def assert_refused(hostile: Counter, raw: dict[str, Any], path: str, fragment: str = "",
                   hidden: tuple[str, ...] = ()) -> ConfigError:
    """``raw`` is refused with a problem at ``path`` (containing ``fragment``) and never echoes ``hidden``."""
    hostile.tried(SUITE)
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    problems = {p.path: p.message for p in info.value.problems}
    assert path in problems, problems
    assert fragment in problems[path], problems[path]
    assert info.value.exit_code == 2
    for text in hidden:
        assert text not in str(info.value), f"{text!r} echoed"
    hostile.held(SUITE)
    return info.value


# --- named regressions: each reported instance and its neighbours -------------------------------------------

REGRESSIONS: list[tuple[str, dict[str, Any], str, str]] = [
    # stage models that cannot work
    ("decline-only stage model",
     {"stages": [{"name": "at_risk", "kind": "decline", "criteria": [_c("p_alive", "lt", 0.5)]}]},
     "stages", "no progress stage"),
    ("reactivation-only stage model",
     {"stages": [{"name": "back", "kind": "reactivation", "criteria": [_c("won_deals", "gte", 1)]}]},
     "stages", "no progress stage"),
    ("decline stage without criteria", _stages({"name": "at_risk", "kind": "decline"}),
     "stages[1].criteria", "matches every contact"),
    ("later catch-all progress stage", _stages({"name": "lead"}), "stages[1].criteria", "'subscriber'"),
    ("duplicate stage names", _stages({"name": "subscriber", "criteria": [_c("won_deals", "gte", 1)]}),
     "stages[1].name", "already the name of stages[0]"),
    # criteria that can never match
    ("gt above lt", _criteria(_c("won_deals", "gt", 5), _c("won_deals", "lt", 3)), "stages[1].criteria",
     "won_deals gt 5.0 and won_deals lt 3.0"),
    ("gte above lte", _criteria(_c("lead_score", "gte", 60), _c("lead_score", "lte", 59.5)), "stages[1].criteria",
     "never"),
    ("open bounds meet", _criteria(_c("lead_score", "gt", 50), _c("lead_score", "lt", 50)), "stages[1].criteria",
     "never"),
    ("no whole number between", _criteria(_c("won_deals", "gt", 1), _c("won_deals", "lt", 2)),
     "stages[1].criteria", "never"),
    ("fractional count", _criteria(_c("won_deals", "eq", 1.5)), "stages[1].criteria", "never"),
    ("negative count", _criteria(_c("open_deals", "lt", 0)), "stages[1].criteria", "never"),
    ("probability above one", _criteria(_c("p_alive", "gt", 1)), "stages[1].criteria", "never"),
    ("score above 100", _criteria(_c("lead_score", "gte", 101)), "stages[1].criteria", "never"),
    ("two different equals", _criteria(_c("won_deals", "eq", 1), _c("won_deals", "eq", 2)), "stages[1].criteria",
     "never"),
    ("eq outside between", _criteria(_c("won_deals", "eq", 9), _c("won_deals", "between", [1, 3])),
     "stages[1].criteria", "never"),
    ("eq and neq the same", _criteria(_c("won_deals", "eq", 2), _c("won_deals", "neq", 2)), "stages[1].criteria",
     "never"),
    ("in wholly excluded", _criteria(_c("won_deals", "in", [1, 2]), _c("won_deals", "not_in", [1, 2])),
     "stages[1].criteria", "never"),
    ("known and unknown", _criteria(_c("clv", "is_known"), _c("clv", "is_unknown")), "stages[1].criteria",
     "never"),
    ("unknown but compared", _criteria(_c("clv", "is_unknown"), _c("clv", "gt", 10)), "stages[1].criteria",
     "never"),
    ("true and false", _criteria(_c("is_mql", "eq", True), _c("is_mql", "eq", False)), "stages[1].criteria",
     "never"),
    ("grade that does not exist", _criteria(_c("grade", "eq", "E")), "stages[1].criteria", "grade eq 'E'"),
    ("previous stage that does not exist",
     _stages({"name": "back", "kind": "reactivation", "criteria": [_c("previous_stage", "in", ["churnd"])]}),
     "stages[1].criteria", "never"),
    ("empty text equals", {"data": {"contact_properties": {"jobtitle": "string"}},
                           **_criteria(_c("jobtitle", "eq", "  "))}, "stages[1].criteria", "never"),
    ("two texts equal", {"data": {"contact_properties": {"jobtitle": "string"}},
                         **_criteria(_c("jobtitle", "eq", "CEO"), _c("jobtitle", "eq", "CTO"))},
     "stages[1].criteria", "never"),
    ("recent and not recent", _criteria(_c("last_purchase_at", "within_last", "30d"),
                                        _c("last_purchase_at", "not_within_last", "60d")),
     "stages[1].criteria", "never"),
    ("absolute dates crossed", _criteria(_c("created_at", "gt", "2025-06-01"), _c("created_at", "lt", "2025-01-01")),
     "stages[1].criteria", "never"),
    ("dead any_of group", _stages({"name": "target", "any_of": [[_c("won_deals", "gt", 3), _c("won_deals", "lt", 1)],
                                                                [_c("won_deals", "gte", 1)]]}),
     "stages[1].any_of[0]", "dead"),
    ("every any_of group dead", _stages({"name": "target", "any_of": [[_c("p_alive", "gt", 2)],
                                                                      [_c("p_alive", "lt", -1)]]}),
     "stages[1].any_of[1]", "never be assigned"),
    ("action rule never applies", {"actions": [{"action": "call", "criteria": [_c("won_deals", "lt", 0)]}]},
     "actions[0].criteria", "never apply"),
    ("scoring rule never scores", {"scoring": {"rules": [{"name": "r", "kind": "fit", "points": 5,
                                                          "criteria": [_c("won_deals", "gt", 2),
                                                                       _c("won_deals", "lt", 1)]}]}},
     "scoring.rules[0].criteria", "never give points"),
    ("infinite condition value", _criteria(_c("won_deals", "gt", math.inf)), "stages[1].criteria[0].value",
     "finite"),
    # native stage values
    ("native stage 'wizard'", _stages({"name": "w", "hubspot_lifecyclestage": "wizard",
                                       "criteria": [_c("won_deals", "gte", 1)]}),
     "stages[1].hubspot_lifecyclestage", "not a HubSpot lifecycle stage"),
    ("native stage as a label", {"stages": [{"name": "s", "hubspot_lifecyclestage": "Marketing Qualified Lead"}]},
     "stages[0].hubspot_lifecyclestage", "did you mean 'marketingqualifiedlead'"),
    # out-of-range tolerances and thresholds
    ("numeric_tolerance 1e308", {"sync": {"numeric_tolerance": 1e308}}, "sync.numeric_tolerance", "0.5"),
    ("numeric_tolerance NaN", {"sync": {"numeric_tolerance": math.nan}}, "sync.numeric_tolerance", "finite"),
    ("negative tolerance", {"sync": {"numeric_tolerance": -0.01}}, "sync.numeric_tolerance", "greater"),
    ("infinite horizon", {"clv": {"horizon": math.inf}}, "clv.horizon", "finite"),
    ("horizon of a million weeks", {"clv": {"horizon": 1e6}}, "clv.horizon", "century"),
    ("horizon in days beyond a century", {"clv": {"horizon": 40_000, "time_unit": "days"}}, "clv.horizon",
     "century"),
    ("predictive horizon", {"predictive": {"horizon_days": 1e9}}, "predictive.horizon_days", "less"),
    ("NaN points", {"scoring": {"rules": [{"name": "r", "kind": "fit", "points": math.nan}]}},
     "scoring.rules[0].points", "finite"),
    ("MQL above 100", {"scoring": {"mql_threshold": 150}}, "scoring.mql_threshold", "less"),
    ("grade thresholds reversed", {"scoring": {"grades": {"A": 20, "B": 50, "C": 10}}}, "scoring.grades",
     "fall from A to C"),
    ("Salesforce API version", _sf(api_version="60"), "salesforce.api_version", "pattern"),
    # write_fields and field_map
    ("write_fields typo", {"sync": {"write_fields": ["stagee"]}}, "sync.write_fields", "did you mean 'stage'"),
    ("write_fields empty", {"sync": {"write_fields": []}}, "sync.write_fields", "every field"),
    ("write_fields repeated", {"sync": {"write_fields": ["clv", "clv"]}}, "sync.write_fields", "more than once"),
    ("field_map is gone", {"sync": {"field_map": {"stage": "lifecyclestage"}}}, "sync.field_map", "write_fields"),
    # URLs
    ("base_url not a url", {"hubspot": {"base_url": "not a url"}}, "hubspot.base_url", "https://api.hubapi.com"),
    ("base_url without scheme", {"hubspot": {"base_url": "api.hubapi.com"}}, "hubspot.base_url", "http(s)"),
    ("base_url ftp", {"hubspot": {"base_url": "ftp://api.hubapi.com"}}, "hubspot.base_url", "http(s)"),
    ("base_url plain http remote", {"hubspot": {"base_url": "http://api.hubapi.com"}}, "hubspot.base_url",
     "unencrypted"),
    ("base_url with a query", {"hubspot": {"base_url": "https://api.hubapi.com/?hapikey=1"}}, "hubspot.base_url",
     "query"),
    ("base_url bad port", {"hubspot": {"base_url": "https://api.hubapi.com:99999"}}, "hubspot.base_url",
     "not a URL"),
]

SECRET_REGRESSIONS: list[tuple[str, dict[str, Any], str, str]] = [
    ("token pasted as token_env", {"hubspot": {"token_env": TOKEN}}, "hubspot.token_env", TOKEN),
    ("password in base_url", {"hubspot": {"base_url": f"https://me:{PASSWORD}@api.hubapi.com"}},
     "hubspot.base_url", PASSWORD),
    ("legacy API key as client_secret_env",
     {"hubspot": {"client_secret_env": "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"}}, "hubspot.client_secret_env",
     "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"),
    ("Salesforce session id as access_token_env", _sf(access_token_env="00D5g000004ABCD!AQ4AQFakeSessionId"),
     "salesforce.access_token_env", "00D5g000004ABCD!AQ4AQFakeSessionId"),
    ("JWT as refresh_token_env", {"hubspot": {"refresh_token_env": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}},
     "hubspot.refresh_token_env", "eyJhbGciOiJIUzI1NiJ9"),
    ("token in a list", {"hubspot": {"token_env": [TOKEN]}}, "hubspot.token_env", TOKEN),
    ("token as a key", {"hubspot": {TOKEN: "x"}}, "hubspot.(a key that looks like a secret)", TOKEN),
    ("token in the file", {"salesforce": {"password": PASSWORD}, "crm": {"kind": "salesforce"}},
     "salesforce.password", PASSWORD),
]


@pytest.mark.parametrize(("raw", "path", "fragment"), [case[1:] for case in REGRESSIONS],
                         ids=[case[0] for case in REGRESSIONS])
def test_configuration_that_cannot_work_is_refused_with_its_key_path(hostile: Counter, raw: dict[str, Any],
                                                                     path: str, fragment: str) -> None:
    assert_refused(hostile, raw, path, fragment)


@pytest.mark.parametrize(("raw", "path", "value"), [case[1:] for case in SECRET_REGRESSIONS],
                         ids=[case[0] for case in SECRET_REGRESSIONS])
def test_secret_looking_values_are_refused_and_never_echoed(hostile: Counter, raw: dict[str, Any], path: str,
                                                           value: str) -> None:
    assert_refused(hostile, raw, path, hidden=(value,))


def test_the_shipped_defaults_and_a_careful_model_pass_every_check() -> None:
    """The checks must not refuse what works: the defaults, loopback http (the sandbox) and satisfiable rules."""
    parse_config({})
    parse_config({"hubspot": {"base_url": "http://127.0.0.1:8080"}, "sync": {"numeric_tolerance": 0.5,
                                                                            "write_fields": ["stage", "clv"]}})
    parse_config(_criteria(_c("won_deals", "gte", 1), _c("won_deals", "lt", 2), _c("last_purchase_at",
                                                                                   "within_last", "60d"),
                           _c("last_purchase_at", "not_within_last", "30d"), _c("grade", "in", ["a", "B"])))


# --- generated cases ------------------------------------------------------------------------------------------

_WORDS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_"), min_size=1, max_size=12)
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
SECRETS = st.one_of(
    st.uuids().map(lambda u: f"pat-na1-{u}"),
    st.uuids().map(str),
    st.text(st.sampled_from(_ALNUM), min_size=21, max_size=60).map(lambda t: f"Ab1{t}"),  # 24+ mixed
    st.text(st.sampled_from(_ALNUM + "-_"), min_size=10, max_size=40).map(lambda t: f"eyJ{t}.eyJ{t}.x"),
)
ENV_KEYS = st.sampled_from([("hubspot", "token_env"), ("hubspot", "client_id_env"), ("hubspot", "client_secret_env"),
                            ("hubspot", "refresh_token_env"), ("salesforce", "access_token_env"),
                            ("salesforce", "instance_url_env"), ("salesforce", "username_env")])


@FAST
@given(key=ENV_KEYS, token=SECRETS)
def test_generated_secrets_in_env_keys_are_refused_unechoed(hostile: Counter, key: tuple[str, str],
                                                            token: str) -> None:
    section, name = key
    raw = _sf(**{name: token}) if section == "salesforce" else {section: {name: token}}
    assert_refused(hostile, raw, f"{section}.{name}", "not shown", hidden=(token,))


@FAST
@given(name=st.text(st.sampled_from(_ALNUM + " -.$/"), min_size=1, max_size=20).filter(
    lambda t: not t[0].isdigit() and any(c in " -.$/" for c in t)))
def test_generated_invalid_env_names_are_refused(hostile: Counter, name: str) -> None:
    assert_refused(hostile, {"hubspot": {"token_env": name}}, "hubspot.token_env", "environment variable")


BOUNDED: list[tuple[str, str, list[float]]] = [
    ("sync", "numeric_tolerance", [-1e-9, 0.500001, 1e308, math.inf, math.nan]),
    ("clv", "horizon", [0.0, -1.0, 5219.0, math.inf]),
    ("clv", "annual_discount_rate", [-0.01, 1.0, math.nan]),
    ("clv", "margin", [0.0, 1.01]),
    ("scoring", "mql_threshold", [-1.0, 100.5, math.inf]),
    ("predictive", "min_auc", [0.49, 1.01]),
    ("predictive", "holdout_fraction", [0.0, 0.9]),
    ("predictive", "horizon_days", [0.0, 36_526.0, math.inf]),
    ("hubspot", "requests_per_10s", [0, 1001]),
    ("hubspot", "batch_size", [0, 101]),
    ("hubspot", "search_page_size", [201]),
    ("hubspot", "search_lookback_seconds", [-1, 86_401]),
    ("hubspot", "max_concurrency", [0, 33]),
]


@FAST
@given(case=st.sampled_from([(s, k, v) for s, k, values in BOUNDED for v in values]))
def test_generated_out_of_range_numbers_are_refused(hostile: Counter, case: tuple[str, str, float]) -> None:
    section, key, value = case
    assert_refused(hostile, {section: {key: value}}, f"{section}.{key}")


NUMBER_FIELDS = st.sampled_from(["won_deals", "open_deals", "lead_score", "p_alive", "clv", "numemployees"])


@FAST
@given(field=NUMBER_FIELDS, low=st.floats(-1e6, 1e6), gap=st.floats(0, 1e6))
def test_generated_crossed_bounds_never_match(hostile: Counter, field: str, low: float, gap: float) -> None:
    raw = {"data": {"contact_properties": {"numemployees": "number"}},
           **_criteria(_c(field, "gt", low + gap), _c(field, "lt", low))}
    assert_refused(hostile, raw, "stages[1].criteria", f"no value of {field}")


@FAST
@given(value=st.text(min_size=1, max_size=30).filter(lambda t: t not in HUBSPOT_LIFECYCLE_ORDER))
def test_generated_native_stage_values_are_refused(hostile: Counter, value: str) -> None:
    assert_refused(hostile, {"stages": [{"name": "s", "hubspot_lifecyclestage": value}]},
                   "stages[0].hubspot_lifecyclestage", "HubSpot lifecycle stage")


@FAST
@given(names=st.lists(_WORDS, min_size=1, max_size=4).filter(
    lambda ns: any(n not in {f.name for f in (*OUTPUT_FIELDS, *OPTIONAL_OUTPUT_FIELDS)} for n in ns)))
def test_generated_write_fields_names_are_refused(hostile: Counter, names: list[str]) -> None:
    assert_refused(hostile, {"sync": {"write_fields": names}}, "sync.write_fields", "not one of our fields")


BAD_URLS = st.one_of(
    _WORDS,
    _WORDS.map(lambda w: f"https://{w}:{PASSWORD}@api.hubapi.com"),
    _WORDS.map(lambda w: f"https://{w}@api.hubapi.com"),
    _WORDS.map(lambda w: f"http://{w}.example.com"),
    _WORDS.map(lambda w: f"{w}://api.hubapi.com"),
    _WORDS.map(lambda w: f"https://api.hubapi.com/?{w}=1"),
    _WORDS.map(lambda w: f"https://api.hubapi.com/#{w}"),
    _WORDS.map(lambda w: f"https:// {w}.com"),
)


@FAST
@given(url=BAD_URLS.filter(lambda u: u != "https://api.hubapi.com"))  # the one word that makes a good URL
def test_generated_bad_urls_are_refused_without_credentials(hostile: Counter, url: str) -> None:
    assert_refused(hostile, {"hubspot": {"base_url": url}}, "hubspot.base_url", hidden=(PASSWORD,))


SECTIONS = st.sampled_from(["crm", "hubspot", "data", "clv", "scoring", "predictive", "meddic", "sync"])


@FAST
# A key shaped like a credential ("eyj…", "sk_…", "akia…") is refused too, but withheld from the message: never
# named, so not what this test checks (it once drew "eyj" and failed at random).
@given(section=SECTIONS, key=_WORDS.filter(lambda word: not looks_like_secret(f"{word}_zz")))
def test_generated_unknown_keys_are_refused(hostile: Counter, section: str, key: str) -> None:
    key = f"{key}_zz"  # never a known key, nor one of the secret keys refused with their own message
    assert_refused(hostile, {section: {key: 1}}, f"{section}.{key}", "unknown key")


# --- files: what load_config reads --------------------------------------------------------------------------


def test_a_config_file_that_is_not_utf8_is_a_config_error(hostile: Counter, tmp_path: Path) -> None:
    hostile.tried(SUITE)
    path = tmp_path / "clm.toml"
    path.write_bytes(b'[crm]\nkind = "hub\xffspot"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(path)
    hostile.held(SUITE)


def test_a_config_path_that_is_a_folder_is_a_config_error(hostile: Counter, tmp_path: Path) -> None:
    hostile.tried(SUITE)
    with pytest.raises(ConfigError, match="is a folder, not a configuration file"):
        load(tmp_path)
    hostile.held(SUITE)


def test_a_state_path_that_is_a_folder_is_named_and_fixable(hostile: Counter, tmp_path: Path) -> None:
    hostile.tried(SUITE)
    (tmp_path / "state").mkdir()
    path = tmp_path / "clm.toml"
    path.write_text('[sync]\nstate_path = "state"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    [problem] = info.value.problems
    assert problem.path == "sync.state_path" and "is a folder, not a state file" in problem.message
    assert "state.db" in problem.message  # the fix names a file inside it
    hostile.held(SUITE)


def test_a_state_path_below_a_file_is_refused(hostile: Counter, tmp_path: Path) -> None:
    hostile.tried(SUITE)
    (tmp_path / "afile").write_text("x")
    path = tmp_path / "clm.toml"
    path.write_text('[sync]\nstate_path = "afile/deeper/state.db"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert [p.path for p in info.value.problems] == ["sync.state_path"]
    assert "cannot be created" in info.value.problems[0].message
    hostile.held(SUITE)


def test_a_missing_env_var_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLM_TEST_NOT_SET", raising=False)
    with pytest.raises(MissingSecret) as info:
        secret("CLM_TEST_NOT_SET", "hubspot.token_env")
    assert info.value.exit_code == 2


def test_secret_never_echoes_a_name_that_is_a_token() -> None:
    with pytest.raises(ConfigError) as info:
        secret(TOKEN, "hubspot.token_env")
    assert TOKEN not in str(info.value) and info.value.problems[0].path == "hubspot.token_env"


def test_the_connection_id_never_holds_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_INSTANCE_URL", f"https://me:{PASSWORD}@acme.my.salesforce.com/?sid=1")
    config = parse_config(_sf())
    assert wiring.connection_id(config) == "salesforce:https://acme.my.salesforce.com/"
    monkeypatch.setenv("SF_INSTANCE_URL", f"me:{PASSWORD}@acme")
    assert PASSWORD not in wiring.connection_id(config)
    hubspot = parse_config({"hubspot": {"base_url": "http://127.0.0.1:8080"}})
    assert wiring.connection_id(hubspot) == "hubspot:http://127.0.0.1:8080"


def test_looks_like_secret_spares_ordinary_names() -> None:
    for name in ("HUBSPOT_TOKEN", "SF_ACCESS_TOKEN", "MY_APP_2_CLIENT_SECRET", "hubspot_token", "clm_", "state"):
        assert not looks_like_secret(name), name
    assert looks_like_secret(TOKEN)


# --- the CLI: exit 2, the message, no traceback, no secret --------------------------------------------------

HOSTILE_FILES: list[tuple[str, str, str, str]] = [
    ("token as token_env", f'[hubspot]\ntoken_env = "{TOKEN}"\n', "hubspot.token_env", TOKEN),
    ("password in base_url", f'[hubspot]\nbase_url = "https://me:{PASSWORD}@api.hubapi.com"\n', "hubspot.base_url",
     PASSWORD),
    ("not a url", '[hubspot]\nbase_url = "not a url"\n', "hubspot.base_url", TOKEN),
    ("decline-only", '[[stages]]\nname = "at_risk"\nkind = "decline"\n'
                     'criteria = [{ field = "p_alive", op = "lt", value = 0.5 }]\n', "stages", TOKEN),
    ("field_map", '[sync.field_map]\nstage = "lifecyclestage"\n', "sync.field_map", TOKEN),
    ("tolerance", "[sync]\nnumeric_tolerance = 1e308\n", "sync.numeric_tolerance", TOKEN),
    ("infinite horizon", "[clv]\nhorizon = inf\n", "clv.horizon", TOKEN),
]


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args)


def _no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("text", "path", "hidden"), [case[1:] for case in HOSTILE_FILES],
                         ids=[case[0] for case in HOSTILE_FILES])
@pytest.mark.parametrize("command", [["config", "check"], ["check"]], ids=["config check", "check"])
def test_cli_refuses_a_hostile_file_with_exit_2(hostile: Counter, tmp_path: Path, command: list[str], text: str,
                                               path: str, hidden: str) -> None:
    hostile.tried(SUITE)
    config = tmp_path / "clm.toml"
    config.write_text(text)
    where = [str(config)] if command == ["config", "check"] else ["--config", str(config)]
    for as_json in ([], ["--json"]):
        result = _invoke([*command, *where, *as_json])
        assert result.exit_code == 2, result.output
        _no_traceback(result)
        assert path in result.output and hidden not in result.output
        if as_json:
            json.loads(result.stdout)
    hostile.held(SUITE)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", None], ids=["not UTF-8", "a folder"])
@pytest.mark.parametrize("command", [["config", "check"], ["check", "--config"]], ids=["config check", "check"])
def test_cli_on_an_unreadable_config_file_exits_2(hostile: Counter, tmp_path: Path, command: list[str],
                                                  content: bytes | None) -> None:
    hostile.tried(SUITE)
    path = tmp_path / "clm.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = _invoke([*command, str(path)])
    assert result.exit_code == 2, result.output
    _no_traceback(result)
    assert ("not UTF-8" if content else "is a folder") in result.output
    hostile.held(SUITE)


@pytest.mark.parametrize("command", [["check"], ["sync", "--dry-run"], ["pull"]])
def test_a_missing_env_var_exits_2_from_every_command(hostile: Counter, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    hostile.tried(SUITE)
    monkeypatch.delenv("CLM_HOSTILE_UNSET", raising=False)
    config = tmp_path / "clm.toml"
    config.write_text('[hubspot]\ntoken_env = "CLM_HOSTILE_UNSET"\n')
    result = _invoke([*command, "--config", str(config)])
    assert result.exit_code == 2, result.output
    _no_traceback(result)
    assert "CLM_HOSTILE_UNSET is not set" in result.output
    hostile.held(SUITE)


@settings(max_examples=15, deadline=None)
@given(token=SECRETS, key=st.sampled_from(["token_env", "client_id_env", "refresh_token_env"]))
def test_generated_tokens_are_never_echoed_by_the_cli(hostile: Counter, token: str, key: str) -> None:
    hostile.tried(SUITE)
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "clm.toml"
        config.write_text(f'[hubspot]\n{key} = "{token}"\n')
        for args in (["config", "check", str(config)], ["check", "--config", str(config)],
                     ["check", "--json", "--config", str(config)]):
            result = _invoke(args)
            assert result.exit_code == 2, result.output
            _no_traceback(result)
            assert token not in result.output and f"hubspot.{key}" in result.output
    hostile.held(SUITE)


def test_a_token_inside_a_wrong_shaped_value_is_not_echoed(hostile: Counter) -> None:
    assert_refused(hostile, {"stages": [{"name": "s", "criteria": {"note": TOKEN}}]}, "stages[0].criteria",
                   hidden=(TOKEN,))
    # An ordinary wrong value is still shown, so the user sees what to fix.
    error = assert_refused(hostile, {"clv": {"margin": 2}}, "clv.margin")
    assert "(got 2)" in str(error)
