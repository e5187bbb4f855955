"""Faults: generic ones from the server's injector, and HubSpot-specific ones from the emulator."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import urllib3
from hubspot.crm.contacts.exceptions import ApiException

from connectors.sandbox.faults import FaultRule
from connectors.sandbox.hubspot import TEN_SECONDLY, rate_limit_burst
from tests.connectors.sandbox.hubspot.conftest import Box


def _update(box: Box, ids: list[str], **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = box.client().crm.contacts.batch_api.update(
        {"inputs": [{"id": i, "properties": {"jobtitle": "VP"}} for i in ids]}, _preload_content=False, **kwargs)
    return response.status, json.loads(response.data)


def test_latency(box: Box) -> None:
    box.faults.add(FaultRule(kind="latency", path_prefix="/crm/v3/objects/contacts", seconds=0.3, count=1))
    started = time.monotonic()
    box.client().crm.contacts.basic_api.get_page(limit=1)
    assert time.monotonic() - started >= 0.3


def test_429_burst_then_recovery(box: Box) -> None:
    rule = box.faults.add(rate_limit_burst(2))
    api = box.client().crm.contacts.basic_api
    for _ in range(2):
        with pytest.raises(ApiException) as throttled:
            api.get_page(limit=1)
        assert throttled.value.status == 429
        assert json.loads(throttled.value.body)["policyName"] == TEN_SECONDLY
    assert api.get_page(limit=1).results and rule.fired == 2


def test_server_error(box: Box) -> None:
    box.faults.add(FaultRule(kind="status", status=503, count=1, body={"message": "Service Unavailable"}))
    with pytest.raises(ApiException) as failed:
        box.client().crm.contacts.basic_api.get_page(limit=1)
    assert failed.value.status == 503


def test_timeout(box: Box) -> None:
    box.faults.add(FaultRule(kind="timeout", seconds=1.0, count=1))
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)) as timed_out:
        box.client().crm.contacts.basic_api.get_page(limit=1, _request_timeout=0.2)
    assert "Read timed out" in str(timed_out.value)


def test_dropped_connection(box: Box) -> None:
    box.faults.add(FaultRule(kind="drop", count=1))
    with pytest.raises((urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError)):
        box.client().crm.contacts.basic_api.get_page(limit=1)
    assert box.client().crm.contacts.basic_api.get_page(limit=1).results


def test_expired_token_then_oauth_refresh(box: Box) -> None:
    app = box.hub.oauth
    access = box.hub.tokens.grant({"grant_type": "refresh_token", "client_id": app.client_id,
                                   "client_secret": app.client_secret,
                                   "refresh_token": app.refresh_token})[1]["access_token"]
    box.hub.add_fault(FaultRule(kind="expired_token", count=1))
    with pytest.raises(ApiException) as expired:
        box.client(access).crm.contacts.basic_api.get_page(limit=1)
    body = json.loads(expired.value.body)
    assert expired.value.status == 401 and body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired")
    assert "expire time" in body["context"]
    with pytest.raises(ApiException):  # it stays expired
        box.client(access).crm.contacts.basic_api.get_page(limit=1)
    fresh = box.hub.tokens.grant({"grant_type": "refresh_token", "client_id": app.client_id,
                                  "client_secret": app.client_secret,
                                  "refresh_token": app.refresh_token})[1]["access_token"]
    assert box.client(fresh).crm.contacts.basic_api.get_page(limit=1).results


def test_access_tokens_expire_after_their_ttl(plugin: Any) -> None:
    now = [1_700_000_000.0]
    box: Box = plugin(clock=lambda: now[0], access_token_ttl=60)
    app = box.hub.oauth
    access = box.hub.tokens.grant({"grant_type": "refresh_token", "client_id": app.client_id,
                                   "client_secret": app.client_secret,
                                   "refresh_token": app.refresh_token})[1]["access_token"]
    assert box.client(access).crm.contacts.basic_api.get_page(limit=1).results
    now[0] += 75
    with pytest.raises(ApiException) as expired:
        box.client(access).crm.contacts.basic_api.get_page(limit=1)
    message = json.loads(expired.value.body)["message"]
    assert message == "The OAuth token used to make this call expired 15 second(s) ago."


def test_daily_limit_exhausted_fault(box: Box) -> None:
    box.hub.add_fault(FaultRule(kind="daily_limit", after=1, count=1))
    api = box.client().crm.contacts.basic_api
    assert api.get_page(limit=1).results
    for _ in range(2):  # once exhausted, the day stays exhausted
        with pytest.raises(ApiException) as exhausted:
            api.get_page(limit=1)
        assert json.loads(exhausted.value.body)["policyName"] == "DAILY"
    box.hub.reset_daily()
    assert api.get_page(limit=1).results


def test_partial_batch_failure(box: Box) -> None:
    ids = box.contact_ids()[:5]
    box.hub.add_fault(FaultRule(kind="partial_failure", path_prefix="/crm/v3/objects/contacts/batch/update",
                                after=1, count=2, body={"category": "LOCKED", "message": "Record is locked"}))
    status, body = _update(box, ids)
    assert status == 207 and body["numErrors"] == 2
    failed = [e["context"]["ids"][0] for e in body["errors"]]
    assert failed == ids[1:3] and {e["category"] for e in body["errors"]} == {"LOCKED"}
    assert sorted(r["id"] for r in body["results"]) == sorted(set(ids) - set(failed))
    assert [box.hub.writes_to("contacts", i) for i in ids] == [1, 0, 0, 1, 1]


def test_record_deleted_between_read_and_write(box: Box) -> None:
    ids = box.contact_ids()[:3]
    box.hub.add_fault(FaultRule(kind="deleted_before_write", after=1, count=1))
    status, body = _update(box, ids)
    assert status == 207 and body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"]["ids"] == [ids[1]]
    assert box.hub.writes_to("contacts", ids[1]) == 0
    assert ids[1] in box.hub.ids("contacts", archived=True)


def test_record_merged_between_read_and_write(box: Box) -> None:
    ids = box.contact_ids()[:2]
    box.hub.add_fault(FaultRule(kind="merged_before_write", count=1))
    status, body = _update(box, ids)
    assert status == 200
    survivor = body["results"][0]["id"]
    assert survivor != ids[0] and body["results"][1]["id"] == ids[1]
    # The old id now resolves to the new merged record, which lists it (and the duplicate's id) in
    # hs_merged_object_ids.
    merged = box.client().crm.contacts.basic_api.get_by_id(ids[0], properties=["hs_merged_object_ids", "jobtitle"])
    merged_ids = merged.properties["hs_merged_object_ids"].split(";")
    assert merged.id == survivor and ids[0] in merged_ids and len(merged_ids) == 2 and survivor not in merged_ids
    assert merged.properties["jobtitle"] == "VP"
    assert ids[0] not in box.hub.ids("contacts")


def test_unknown_fault_kinds_are_refused(box: Box) -> None:
    with pytest.raises(ValueError, match="FaultInjector"):
        box.hub.add_fault(FaultRule(kind="latency"))
