"""Seeding, value validation, search operators, people's edits/deletes/merges, counters and persistence."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.contacts.exceptions import ApiException
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits
from connectors.sandbox.server import Request
from tests.connectors.sandbox.hubspot.conftest import Box, make_contacts
from tests.scaling import assert_linear


def _search(box: Box, filters: list[dict[str, Any]], object_type: str = "contacts", **extra: Any) -> list[str]:
    api = box.client().crm.contacts.search_api if object_type == "contacts" else box.client().crm.deals.search_api
    page = api.do_search(public_object_search_request={"filterGroups": [{"filters": filters}], "limit": 200, **extra})
    return [r.id for r in page.results]


def test_seed_maps_our_records_as_hubspot_holds_them(box: Box) -> None:
    hub, seeded = box.hub, box.seeded
    won, lost, open_ = (hub.record("deals", seeded.deal_ids[d]) for d in ("5000", "5001", "5002"))
    assert won and lost and open_
    assert won["properties"]["dealstage"] == "closedwon" and won["properties"]["hs_is_closed_won"] == "true"
    assert lost["properties"]["dealstage"] == "closedlost" and lost["properties"]["hs_is_closed"] == "true"
    assert open_["properties"]["dealstage"] == "contractsent" and open_["properties"]["hs_is_closed"] == "false"
    assert open_["properties"]["pipeline"] == "default" and won["properties"]["deal_currency_code"] == "USD"
    contact = hub.record("contacts", seeded.contact_ids["1003"])
    assert contact is not None
    props = contact["properties"]
    assert props["engagement_score"] == "0.75" and props["newsletter"] == "false"
    assert props["createdate"] == "2024-01-01T03:00:00.000Z" and props["lastmodifieddate"] == "2024-01-01T03:30:00.000Z"
    assert props["hs_object_id"] == contact["id"] == "1003"
    types = {p.name: p.type for p in box.client().crm.properties.core_api.get_all("contacts").results}
    assert types["engagement_score"] == "number" and types["newsletter"] == "bool" and types["company"] == "string"


def test_seeding_generated_data_grows_linearly() -> None:
    data = generate(20_000, seed=3)
    contacts, deals = data.contact_records(), data.deal_records()
    hub = HubSpotEmulator(rate_limits=RateLimits.off())
    started = time.perf_counter()
    seeded = hub.seed(contacts, deals)
    elapsed = time.perf_counter() - started
    assert hub.count("contacts") == 20_000 and len(seeded.deal_ids) == len(deals)
    first = {c.id for c in contacts[:2_000]}
    few = [d for d in deals if set(d.contact_ids) <= first]
    assert_linear(lambda: HubSpotEmulator(rate_limits=RateLimits.off()).seed(contacts[:2_000], few), elapsed, 10)


@pytest.mark.parametrize(("prop", "value", "code"), [
    ("engagement_score", "twelve", "INVALID_DOUBLE"),
    ("engagement_score", " 12", "INVALID_DOUBLE"),  # whitespace around non-string values: refused since 2025
    ("lifecyclestage", "fan", "INVALID_OPTION"),
    ("hs_email_last_open_date", "x", "READ_ONLY_VALUE"),
    ("nonexistent", "1", "PROPERTY_DOESNT_EXIST"),
])
def test_one_bad_value_rejects_the_whole_batch(box: Box, prop: str, value: str, code: str) -> None:
    ids = box.contact_ids()[:3]
    inputs = [{"id": i, "properties": {"jobtitle": "ok"}} for i in ids]
    inputs[1]["properties"][prop] = value
    with pytest.raises(ApiException) as rejected:
        box.client().crm.contacts.batch_api.update({"inputs": inputs})
    body = json.loads(rejected.value.body)
    assert rejected.value.status == 400 and body["category"] == "VALIDATION_ERROR" and body["status"] == "error"
    assert body["message"].startswith("Property values were not valid: ")
    assert json.loads(body["message"].split(": ", 1)[1])[0]["error"] == code
    assert json.loads(body["message"].split(": ", 1)[1])[0]["propertyValue"] == value
    # As real bodies are: the property and the problem, but nothing naming the input that held it.
    assert body["errors"] == [{"message": body["errors"][0]["message"], "code": code,
                               "context": {"propertyName": [prop]}}]
    assert box.hub.total_writes() == 0  # nothing written


def test_date_and_datetime_values(box: Box) -> None:
    api = box.client().crm.properties.core_api
    api.create("contacts", {"name": "renewal_date", "label": "Renewal", "type": "date", "fieldType": "date",
                            "groupName": "contactinformation"})
    contacts = box.client().crm.contacts.basic_api
    contact = box.contact_ids()[0]
    midnight = str(int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000))
    assert contacts.update(contact, {"properties": {"renewal_date": midnight}}).properties["renewal_date"] == \
        "2025-03-01"
    with pytest.raises(ApiException) as not_midnight:
        contacts.update(contact, {"properties": {"renewal_date": str(int(midnight) + 3_660_000)}})
    assert "is at 1:1:0.0 UTC, not midnight!" in json.loads(not_midnight.value.body)["message"]
    box.client().crm.properties.core_api.create("contacts", {"name": "last_seen", "label": "Seen", "type": "datetime",
                                                             "fieldType": "date", "groupName": "contactinformation"})
    for sent in ("2025-03-01T10:15:00Z", "1740824100000"):
        updated = contacts.update(contact, {"properties": {"last_seen": sent}})
        assert updated.properties["last_seen"] == "2025-03-01T10:15:00.000Z"


def test_search_operators(plugin: Any) -> None:
    box: Box = plugin(search_lag_ms=0)  # this test is about search results, not the index lag
    ids = {c: box.seeded.contact_ids[c] for c in box.seeded.contact_ids}
    score = "engagement_score"  # contact i has i / 4: 0, 0.25, ..., 9.75

    def having(test: Any) -> list[str]:
        return [ids[str(1000 + i)] for i in range(40) if test(i / 4)]

    assert _search(box, [{"propertyName": score, "operator": "EQ", "value": "2.5"}]) == having(lambda v: v == 2.5)
    assert _search(box, [{"propertyName": score, "operator": "NEQ", "value": "2.5"}]) == having(lambda v: v != 2.5)
    assert _search(box, [{"propertyName": score, "operator": "LT", "value": "0.5"}]) == having(lambda v: v < 0.5)
    assert _search(box, [{"propertyName": score, "operator": "LTE", "value": "0.5"}]) == having(lambda v: v <= 0.5)
    assert _search(box, [{"propertyName": score, "operator": "GT", "value": "9"}]) == having(lambda v: v > 9)
    assert _search(box, [{"propertyName": score, "operator": "GTE", "value": "9"}]) == having(lambda v: v >= 9)
    assert _search(box, [{"propertyName": score, "operator": "BETWEEN", "value": "1", "highValue": "2"}]) == having(
        lambda v: 1 <= v <= 2)
    companies = ["company 1", "COMPANY 2"]  # IN compares case-insensitively
    assert len(_search(box, [{"propertyName": "company", "operator": "IN", "values": companies}])) == 12
    assert len(_search(box, [{"propertyName": "lifecyclestage", "operator": "NOT_IN", "values": ["lead"]}])) == 14
    box.hub.edit("contacts", ids["1005"], {"jobtitle": "Head of Sales"})
    assert _search(box, [{"propertyName": "jobtitle", "operator": "HAS_PROPERTY"}]) == [ids["1005"]]
    assert len(_search(box, [{"propertyName": "jobtitle", "operator": "NOT_HAS_PROPERTY"}])) == 39
    assert _search(box, [{"propertyName": "jobtitle", "operator": "CONTAINS_TOKEN", "value": "sales"}]) == [ids["1005"]]
    assert _search(box, [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "person3*"}]) == [
        ids["1003"], *[ids[str(1030 + i)] for i in range(10)]]
    created = str(int(datetime(2024, 1, 1, 5, tzinfo=UTC).timestamp() * 1000))
    assert _search(box, [{"propertyName": "createdate", "operator": "LT", "value": created}]) == [
        ids[str(1000 + i)] for i in range(5)]
    # OR between groups, free text, sorting.
    page = box.client().crm.contacts.search_api.do_search(public_object_search_request={
        "filterGroups": [{"filters": [{"propertyName": score, "operator": "EQ", "value": "0"}]},
                         {"filters": [{"propertyName": score, "operator": "EQ", "value": "9.75"}]}],
        "sorts": [{"propertyName": score, "direction": "DESCENDING"}], "limit": 10})
    assert [r.id for r in page.results] == [ids["1039"], ids["1000"]]
    assert box.client().crm.contacts.search_api.do_search(public_object_search_request={"query": "last17"}).total == 1


def test_edits_bump_the_modified_time_and_show_in_incremental_search(plugin: Any) -> None:
    box: Box = plugin(search_lag_ms=0)  # this test is about search results, not the index lag
    contact = box.contact_ids()[4]
    before = box.hub.record("contacts", contact)
    assert before is not None
    box.hub.edit("contacts", contact, {"firstname": "Renamed"})
    after = box.hub.record("contacts", contact)
    assert after is not None and after["properties"]["lastmodifieddate"] > before["properties"]["lastmodifieddate"]
    since = str(int(datetime.now(UTC).timestamp() * 1000) - 60_000)
    found = _search(box, [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since}],
                    sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}])
    assert found == [contact]
    assert box.hub.writes_to("contacts", contact) == 0  # a person's edit is not an API write


def test_deleted_records_move_to_the_archived_list(box: Box) -> None:
    contact = box.contact_ids()[0]
    assert box.hub.delete("contacts", contact)
    api = box.client().crm.contacts.basic_api
    archived = api.get_page(limit=100, archived=True)
    assert [r.id for r in archived.results] == [contact] and archived.results[0].archived_at is not None
    assert contact not in [r.id for r in api.get_page(limit=100).results]
    with pytest.raises(ApiException):
        api.get_by_id(contact)


def test_merged_ids_resolve_to_the_new_record(box: Box) -> None:
    first, second = box.contact_ids()[:2]
    survivor = box.hub.merge("contacts", first, second)
    assert survivor not in (first, second)  # a merge creates a new record with a new id
    api = box.client().crm.contacts
    for old in (first, second):
        record = api.basic_api.get_by_id(old, properties=["hs_merged_object_ids"])
        assert record.id == survivor and record.properties["hs_merged_object_ids"] == f"{first};{second}"
    read = api.batch_api.read({"inputs": [{"id": second}], "properties": ["email"], "propertiesWithHistory": []})
    assert [r.id for r in read.results] == [survivor]
    listed = [r.id for r in api.basic_api.get_page(limit=100).results]
    assert first not in listed and second not in listed and survivor in listed
    # The new contact takes over the deals of both.
    deals = box.client().crm.associations.v4.batch_api.get_page("contacts", "deals", {"inputs": [{"id": survivor}]})
    assert len(deals.results[0].to) >= 2


def test_nothing_written_twice_counters(box: Box) -> None:
    ids = box.contact_ids()[:4]
    api = box.client().crm.contacts.batch_api
    api.update({"inputs": [{"id": i, "properties": {"jobtitle": "a"}} for i in ids]})
    assert box.hub.max_writes_per_record() == 1 and box.hub.total_writes() == 4
    api.update({"inputs": [{"id": ids[0], "properties": {"jobtitle": "b", "firstname": "x"}}]})
    assert box.hub.writes_to("contacts", ids[0]) == 2 and box.hub.max_writes_per_record() == 2
    assert box.hub.property_writes_to("contacts", ids[0]) == {"jobtitle": 2, "firstname": 1}
    assert box.hub.request_counts["POST /crm/v3/objects/contacts/batch/update"] == 2
    with pytest.raises(ApiException) as duplicate:
        api.update({"inputs": [{"id": ids[1], "properties": {"jobtitle": "c"}}] * 2})
    assert "Duplicate IDs" in json.loads(duplicate.value.body)["message"]
    box.hub.reset_counters()
    assert box.hub.total_writes() == 0 and not box.hub.request_counts


def test_sqlite_round_trip(box: Box, tmp_path: Path) -> None:
    box.hub.edit("contacts", box.contact_ids()[2], {"jobtitle": "Saved"})
    box.hub.merge("contacts", box.contact_ids()[0], box.contact_ids()[1])
    box.hub.delete("deals", box.deal_ids()[0])
    path = tmp_path / "portal.sqlite"
    box.hub.save(path)
    assert path.stat().st_mode & 0o077 == 0
    copy = HubSpotEmulator(rate_limits=RateLimits.off())
    copy.load(path)
    for kind in ("contacts", "deals"):
        assert copy.ids(kind) == box.hub.ids(kind) and copy.ids(kind, archived=True) == box.hub.ids(kind, archived=True)
        for record_id in box.hub.ids(kind)[:10]:
            assert copy.record(kind, record_id) == box.hub.record(kind, record_id)
    assert copy.record("contacts", box.contact_ids()[1]) == box.hub.record("contacts", box.contact_ids()[1])


@settings(max_examples=40, deadline=None)
@given(scores=st.lists(st.integers(min_value=-50, max_value=50), min_size=1, max_size=30),
       threshold=st.integers(min_value=-60, max_value=60),
       operator=st.sampled_from(["LT", "LTE", "GT", "GTE", "EQ", "NEQ"]))
def test_numeric_filters_match_a_plain_comparison(scores: list[int], threshold: int, operator: str) -> None:
    hub = HubSpotEmulator(rate_limits=RateLimits.off())
    contacts = make_contacts(len(scores))
    hub.seed([c.model_copy(update={"properties": {"score": float(s)}}) for c, s in zip(contacts, scores,
                                                                                         strict=True)])
    body = {"filterGroups": [{"filters": [{"propertyName": "score", "operator": operator, "value": str(threshold)}]}],
            "limit": 200}
    response = hub.handle(Request("POST", "/crm/v3/objects/contacts/search", {},
                                  {"authorization": f"Bearer {hub.token}"}, json.dumps(body).encode()))
    found = [r["id"] for r in json.loads(response.body)["results"]]
    compare = {"LT": lambda a: a < threshold, "LTE": lambda a: a <= threshold, "GT": lambda a: a > threshold,
               "GTE": lambda a: a >= threshold, "EQ": lambda a: a == threshold, "NEQ": lambda a: a != threshold}
    assert found == [c.id for c, s in zip(contacts, scores, strict=True) if compare[operator](s)]
