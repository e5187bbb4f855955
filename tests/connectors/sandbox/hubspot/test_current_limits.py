"""HubSpot's current limits: search filter counts, per-tier rate limits, and the daily reset at the account's
midnight as the private-app usage endpoint reports it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hubspot.crm.contacts.exceptions import ApiException

from connectors.sandbox.hubspot import RateLimits
from tests.connectors.sandbox.hubspot.conftest import Box, FakeClock

USAGE = "/account-info/v3/api-usage/daily/private-apps"


def _filters(n: int) -> list[dict[str, Any]]:
    return [{"propertyName": "lifecyclestage", "operator": "NEQ", "value": f"x{i}"} for i in range(n)]


def test_search_takes_five_groups_ten_filters_each_and_25_in_all(box: Box) -> None:
    api = box.client().crm.contacts.search_api
    full = {"filterGroups": [{"filters": _filters(10)}, {"filters": _filters(10)}, {"filters": _filters(5)}]}
    assert api.do_search(public_object_search_request=full).total == 40
    five = {"filterGroups": [{"filters": _filters(1)} for _ in range(5)]}
    assert api.do_search(public_object_search_request=five).total == 40
    for too_many, why in (({"filterGroups": [{"filters": _filters(11)}]}, "Too many filters in a group: 11"),
                          ({"filterGroups": [{"filters": _filters(9)} for _ in range(3)]}, "Too many filters: 27"),
                          ({"filterGroups": [{"filters": _filters(1)} for _ in range(6)]}, "Too many filter groups")):
        with pytest.raises(ApiException) as refused:
            api.do_search(public_object_search_request=too_many)
        assert refused.value.status == 400 and why in str(refused.value.body)


def test_tier_presets() -> None:
    assert (RateLimits().per_window, RateLimits().daily) == (100, 250_000) == (RateLimits.free().per_window,
                                                                              RateLimits.free().daily)
    assert (RateLimits.professional().per_window, RateLimits.professional().daily) == (190, 625_000)
    assert (RateLimits.enterprise().per_window, RateLimits.enterprise().daily) == (190, 1_000_000)
    two = RateLimits.professional().with_limit_increase(2)
    assert (two.per_window, two.daily) == (250, 2_625_000)
    with pytest.raises(ValueError, match="1 to 2"):
        RateLimits.enterprise().with_limit_increase(3)


def _usage(box: Box) -> dict[str, Any]:
    answer = httpx.get(box.server.url + USAGE, headers={"Authorization": f"Bearer {box.hub.token}"})
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()["results"][0]
    return result


def test_the_daily_limit_resets_at_midnight_in_the_accounts_time_zone(plugin: Any) -> None:
    # 2024-01-15 23:58 in New York is 04:58 UTC: the UTC day changes at 00:00Z without a reset, New York's at 05:00Z.
    clock = FakeClock(datetime(2024, 1, 15, 23, 0, tzinfo=UTC).timestamp())
    box: Box = plugin(rate_limits=RateLimits(per_window=None, daily=3, search_per_second=None), clock=clock)
    api = box.client().crm.contacts.basic_api
    for _ in range(2):
        api.get_page(limit=1)
    usage = _usage(box)  # the third call of the day, counted itself
    assert usage["currentUsage"] == 3 and usage["usageLimit"] == 3
    assert usage["resetsAt"] == "2024-01-16T05:00:00Z" and usage["name"] == "private-apps-api-calls-daily"
    with pytest.raises(ApiException) as spent:
        api.get_page(limit=1)
    assert spent.value.status == 429
    clock.advance(3600 * 2)  # 01:00Z: a new UTC day, still the 15th in New York
    with pytest.raises(ApiException):
        api.get_page(limit=1)
    clock.advance(3600 * 4)  # 05:00Z: midnight in New York
    assert len(api.get_page(limit=1).results) == 1
    assert _usage(box)["resetsAt"] == "2024-01-17T05:00:00Z"


def test_the_time_zone_is_the_accounts_setting(plugin: Any) -> None:
    clock = FakeClock(datetime(2024, 7, 1, 12, 0, tzinfo=UTC).timestamp())
    box: Box = plugin(clock=clock, time_zone="Europe/Berlin")
    assert _usage(box)["resetsAt"] == "2024-07-01T22:00:00Z"  # midnight CEST (UTC+2)
