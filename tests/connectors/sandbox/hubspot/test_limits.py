"""HubSpot's limits: page and batch sizes, the search cap, the 10-second window, the daily limit, search rate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hubspot.crm.contacts.exceptions import ApiException

from connectors.sandbox.hubspot import DAILY, SEARCH_SECONDLY, TEN_SECONDLY, RateLimits
from tests.connectors.sandbox.hubspot.conftest import Box, FakeClock

RATE_HEADERS = ("X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining",
                "X-HubSpot-RateLimit-Interval-Milliseconds", "X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining",
                "X-HubSpot-RateLimit-Secondly", "X-HubSpot-RateLimit-Secondly-Remaining")


def _error(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(excinfo.value.body)
    return body


def test_list_page_size_is_capped_at_100(box: Box) -> None:
    api = box.client().crm.contacts.basic_api
    assert len(api.get_page(limit=100).results) == 40
    with pytest.raises(ApiException) as too_big:
        api.get_page(limit=101)
    assert too_big.value.status == 400 and _error(too_big)["category"] == "VALIDATION_ERROR"


def test_batches_take_at_most_100_inputs(box: Box) -> None:
    api = box.client().crm.contacts.batch_api
    inputs = [{"id": str(i), "properties": {"jobtitle": "x"}} for i in range(101)]
    with pytest.raises(ApiException) as too_many:
        api.update({"inputs": inputs})
    assert too_many.value.status == 400 and "more than 100 inputs" in _error(too_many)["message"]
    assert box.hub.total_writes() == 0


def test_search_page_size_is_capped_at_200(box: Box) -> None:
    api = box.client().crm.contacts.search_api
    assert len(api.do_search(public_object_search_request={"limit": 200}).results) == 40
    with pytest.raises(ApiException) as too_big:
        api.do_search(public_object_search_request={"limit": 201})
    assert too_big.value.status == 400


def test_search_cannot_page_beyond_10000_results(plugin: Any) -> None:
    box: Box = plugin(contacts=10_050, deals=0)
    api = box.client().crm.contacts.search_api
    request = {"filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "GTE", "value": "0"}]}],
               "limit": 200, "properties": ["email"]}
    page = api.do_search(public_object_search_request={**request, "after": "9800"})
    assert page.total == 10_050 and len(page.results) == 200
    assert page.paging.next.after == "10000"  # HubSpot offers the next page, then refuses it
    with pytest.raises(ApiException) as capped:
        api.do_search(public_object_search_request={**request, "after": page.paging.next.after})
    assert capped.value.status == 400 and _error(capped)["category"] == "VALIDATION_ERROR"
    assert "10000" in _error(capped)["message"]


def test_ten_second_window_answers_429_with_hubspots_body_and_headers(plugin: Any) -> None:
    clock = FakeClock()
    box: Box = plugin(rate_limits=RateLimits(per_window=5, daily=1000, search_per_second=None), monotonic=clock)
    api = box.client().crm.contacts.basic_api
    for n in range(5):
        response = api.get_page(limit=1, _preload_content=False)
        headers = response.headers
        assert set(RATE_HEADERS) <= set(headers)
        assert headers["X-HubSpot-RateLimit-Remaining"] == str(4 - n)
        assert headers["X-HubSpot-RateLimit-Max"] == "5"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == str(999 - n)
    with pytest.raises(ApiException) as throttled:
        api.get_page(limit=1)
    body = _error(throttled)
    assert throttled.value.status == 429
    assert body["policyName"] == TEN_SECONDLY and body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert throttled.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    clock.advance(9.9)
    with pytest.raises(ApiException):
        api.get_page(limit=1)
    clock.advance(0.2)  # the window rolls: the first requests are more than 10 s old now
    assert len(api.get_page(limit=1).results) == 1
    assert box.hub.throttled[TEN_SECONDLY] == 2


def test_daily_limit_answers_429_daily_until_midnight(plugin: Any) -> None:
    box: Box = plugin(rate_limits=RateLimits(per_window=None, daily=3, search_per_second=None))
    api = box.client().crm.contacts.basic_api
    remaining = [api.get_page(limit=1, _preload_content=False).headers["X-HubSpot-RateLimit-Daily-Remaining"]
                 for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    with pytest.raises(ApiException) as exhausted:
        api.get_page(limit=1)
    body = _error(exhausted)
    assert exhausted.value.status == 429 and body["policyName"] == DAILY
    assert body["message"] == "You have reached your daily limit."
    box.hub.reset_daily()
    assert api.get_page(limit=1).results


def test_oauth_tokens_have_no_daily_limit_or_daily_headers(plugin: Any) -> None:
    box: Box = plugin(rate_limits=RateLimits(per_window=100, daily=1, search_per_second=None))
    box.client().crm.contacts.basic_api.get_page(limit=1)  # uses the private app's one request of the day
    access = box.hub.tokens.grant({"grant_type": "refresh_token", "client_id": box.hub.oauth.client_id,
                                   "client_secret": box.hub.oauth.client_secret,
                                   "refresh_token": box.hub.oauth.refresh_token})[1]["access_token"]
    response = box.client(access).crm.contacts.basic_api.get_page(limit=1, _preload_content=False)
    assert response.status == 200
    assert "X-HubSpot-RateLimit-Daily" not in response.headers and "X-HubSpot-RateLimit-Max" in response.headers


def test_search_has_its_own_per_second_limit_and_no_rate_headers(plugin: Any) -> None:
    clock = FakeClock()
    box: Box = plugin(rate_limits=RateLimits(per_window=3, daily=None, search_per_second=2), monotonic=clock)
    api = box.client().crm.contacts.search_api
    for _ in range(2):
        response = api.do_search(public_object_search_request={"limit": 1}, _preload_content=False)
        assert not [h for h in response.headers if h.lower().startswith("x-hubspot-ratelimit")]
    with pytest.raises(ApiException) as throttled:
        api.do_search(public_object_search_request={"limit": 1})
    body = _error(throttled)
    assert throttled.value.status == 429 and body["policyName"] == SEARCH_SECONDLY
    assert body["message"] == "You have reached your secondly limit."
    # Searches do not use the 10-second window: the three list requests it allows are all still there.
    for _ in range(3):
        box.client().crm.contacts.basic_api.get_page(limit=1)
    clock.advance(1.0)
    assert api.do_search(public_object_search_request={"limit": 1}).total == 40
