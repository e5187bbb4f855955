"""Every request is validated against HubSpot's OpenAPI specs: 400s as HubSpot sends them, the documented
exceptions, switching it off, and the whole-suite guard of ``tests/conftest.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.sandbox.hubspot import HubSpotEmulator
from connectors.sandbox.hubspot.spec import ENV_VAR, load_specs
from connectors.sandbox.server import Request
from tests.connectors.sandbox.hubspot.conftest import Box

REPO = Path(__file__).resolve().parents[4]
pytestmark = pytest.mark.skipif(not load_specs().enabled, reason=f"specs not usable: {load_specs().reason}")

#: A property create whose enumeration option lacks "hidden", which the spec's OptionInput requires.
OPTION_WITHOUT_HIDDEN = {"name": "clm_tier", "label": "Tier", "type": "enumeration", "fieldType": "select",
                         "groupName": "contactinformation", "options": [{"label": "Gold", "value": "gold"}]}


def _send(box: Box, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, box.server.url + path, json=body, headers={"Authorization": f"Bearer {box.hub.token}"})


@pytest.mark.invalid_hubspot_requests
def test_a_missing_required_field_is_answered_like_hubspot(box: Box) -> None:
    answer = _send(box, "POST", "/crm/v3/properties/contacts", OPTION_WITHOUT_HIDDEN)
    body = answer.json()
    assert answer.status_code == 400 and body["category"] == "VALIDATION_ERROR" and body["status"] == "error"
    assert body["message"] == "Some required fields were not set: [hidden]"
    assert body["errors"] == [{"message": "missing required hidden", "in": "options[0]"}]
    assert "clm_tier" not in [p["name"] for p in _send(box, "GET", "/crm/v3/properties/contacts").json()["results"]]
    assert box.hub.spec_violations == ["POST /crm/v3/properties/contacts: options[0]: missing required hidden"]
    fixed = {**OPTION_WITHOUT_HIDDEN, "options": [{"label": "Gold", "value": "gold", "hidden": False}]}
    assert _send(box, "POST", "/crm/v3/properties/contacts", fixed).status_code == 201


@pytest.mark.invalid_hubspot_requests
def test_a_wrong_type_names_the_field(box: Box) -> None:
    contact = box.contact_ids()[0]
    answer = _send(box, "POST", "/crm/v3/objects/contacts/batch/update",
                   {"inputs": [{"id": contact, "properties": {"engagement_score": 12}}]})
    assert answer.status_code == 400
    assert answer.json()["message"] == ("Invalid input JSON: inputs[0].properties.engagement_score: 12 is not of "
                                        "type 'string'")
    assert box.hub.total_writes() == 0


@pytest.mark.invalid_hubspot_requests
def test_deals_are_checked_against_the_deals_spec(box: Box) -> None:
    # The deals spec has its paths under /crm/v3/objects/0-3; the emulator maps /crm/v3/objects/deals onto them.
    answer = _send(box, "POST", "/crm/v3/objects/deals/batch/read", {"properties": ["amount"]})
    assert answer.status_code == 400 and "inputs" in answer.json()["message"]
    assert box.hub.spec_violations[0].startswith("POST /crm/v3/objects/deals/batch/read: ")


@pytest.mark.invalid_hubspot_requests
def test_query_parameters_are_checked(box: Box) -> None:
    answer = httpx.get(box.server.url + "/crm/v3/objects/contacts", params={"limit": "ten"},
                       headers={"Authorization": f"Bearer {box.hub.token}"})
    assert answer.status_code == 400 and "query.limit" in box.hub.spec_violations[0]


def test_search_as_hubspot_documents_it_is_accepted(box: Box) -> None:
    # Objects in sorts, and no after/limit/properties: the search guide's own requests.
    for request in ({}, {"filterGroups": [{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ",
                                                        "value": "lead"}]}],
                         "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}]},
                    {"sorts": ["-createdate"], "limit": 5}):
        assert _send(box, "POST", "/crm/v3/objects/contacts/search", request).status_code == 200, request
    assert box.hub.spec_violations == []


@pytest.mark.invalid_hubspot_requests
def test_the_exceptions_go_no_further_than_the_docs(box: Box) -> None:
    for request in ({"sorts": [{"propertyName": "createdate", "order": "DESC"}]},
                    {"sorts": [{"propertyName": "createdate", "direction": "down"}]},
                    {"after": None}):
        assert _send(box, "POST", "/crm/v3/objects/deals/search", request).status_code == 400, request
    assert len(box.hub.spec_violations) == 3


def test_validation_can_be_switched_off(plugin: Any) -> None:
    box: Box = plugin(validate_requests=False)
    assert not box.hub.validating and box.hub.specs is None
    assert _send(box, "POST", "/crm/v3/properties/contacts", OPTION_WITHOUT_HIDDEN).status_code == 201
    assert box.hub.spec_violations == [] and HubSpotEmulator.take_spec_violations() == []


def test_missing_specs_switch_validation_off_and_say_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = load_specs().root
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    hub = HubSpotEmulator()
    assert hub.specs is not None and not hub.validating
    assert f"no HubSpot specs at {(tmp_path / 'nowhere').resolve()}" in hub.specs.reason
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(real / "contacts-v3.json", partial)
    assert "deals-v3.json" in load_specs(partial).reason and not load_specs(partial).enabled


def test_specs_are_parsed_once_per_process() -> None:
    assert load_specs() is load_specs()
    started = time.perf_counter()
    HubSpotEmulator()
    assert time.perf_counter() - started < 0.2  # parsing all four takes ~0.6 s; a cached load is free


def test_a_full_batch_validates_in_reasonable_time() -> None:
    # Measured ~5-7 ms for 100 inputs (jsonschema walking every input); the bound catches a regression to
    # re-parsing the spec per request (~600 ms), not machine noise.
    specs = load_specs()
    body = json.dumps({"inputs": [{"id": str(i), "properties": {"clm_stage": "lead", "clm_lead_score": "41.5"}}
                                  for i in range(100)]}).encode()
    request = Request("POST", "/crm/v3/objects/contacts/batch/update", {}, {"content-type": "application/json"}, body)
    specs.request_problems(request.method, request.path, request.query, request.body, "application/json")
    started = time.perf_counter()
    for _ in range(10):
        assert specs.request_problems(request.method, request.path, request.query, request.body,
                                      "application/json") == []
    assert (time.perf_counter() - started) / 10 < 0.1


_INNER = '''
import httpx
import pytest

from connectors.sandbox.hubspot import RateLimits, start_hubspot_sandbox

OPTION_WITHOUT_HIDDEN = {option!r}


def _create(token_and_url):
    token, url = token_and_url
    return httpx.post(url + "/crm/v3/properties/contacts", json=OPTION_WITHOUT_HIDDEN,
                      headers={{"Authorization": "Bearer " + token}}).status_code


@pytest.fixture
def portal():
    server, hub = start_hubspot_sandbox(rate_limits=RateLimits.off())
    yield hub.token, server.url
    server.stop()


def test_sends_an_invalid_request(portal):
    assert _create(portal) == 400  # the test itself is happy: only the guard can fail it


@pytest.mark.invalid_hubspot_requests
def test_says_it_sends_one_on_purpose(portal):
    assert _create(portal) == 400
'''


def test_the_suite_guard_fails_a_test_that_sent_an_invalid_request(tmp_path: Path) -> None:
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(_INNER.format(option=OPTION_WITHOUT_HIDDEN))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                          str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout, run.stdout
    assert "FAILED test_inner.py::test_sends_an_invalid_request" in run.stdout
    assert "POST /crm/v3/properties/contacts: options[0]: missing required hidden" in run.stdout
