"""HubSpot as it really behaves: search index lag, bulk stamping, merges that create a new id, associations that do
not bump modified times, association paging, and the sorted index behind keyset searches."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits
from connectors.sandbox.server import Request
from tests.connectors.sandbox.hubspot.conftest import Box, FakeClock, make_contacts, make_deals

NOW = datetime(2024, 9, 1, tzinfo=UTC).timestamp()  # after every seeded record's modified time


def _search(box: Box, filters: list[dict[str, Any]], object_type: str = "contacts", **extra: Any) -> dict[str, Any]:
    response = box.hub.handle(Request("POST", f"/crm/v3/objects/{object_type}/search", {},
                                      {"authorization": f"Bearer {box.hub.token}"}, json.dumps(
                                          {"filterGroups": [{"filters": filters}], "limit": 200, **extra}).encode()))
    assert response.status == 200, response.body
    result: dict[str, Any] = json.loads(response.body)
    return result


def _since(ms: int) -> list[dict[str, Any]]:
    return [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(ms)}]


def _modified(box: Box, object_type: str, record_id: str) -> int:
    record = box.hub.record(object_type, record_id)
    assert record is not None
    key = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
    return int(datetime.fromisoformat(record["properties"][key].replace("Z", "+00:00")).timestamp() * 1000)


# ------------------------------------------------------------------------------------------- search index lag

def test_search_sees_an_edit_only_after_the_lag(plugin: Any) -> None:
    clock = FakeClock(NOW)
    box: Box = plugin(clock=clock, search_lag_ms=5000)
    contact = box.contact_ids()[3]
    before = _modified(box, "contacts", contact)
    box.hub.edit("contacts", contact, {"firstname": "Renamed"})
    after = _modified(box, "contacts", contact)
    assert after > before
    # Reads are consistent at once ...
    read = box.client().crm.contacts.basic_api.get_by_id(contact, properties=["firstname"])
    assert read.properties["firstname"] == "Renamed"
    # ... search still has the record as indexed before: old value, old modified time, not in a window past it.
    found = _search(box, [{"propertyName": "firstname", "operator": "EQ", "value": "First3"}],
                    properties=["firstname"])
    assert [r["id"] for r in found["results"]] == [contact]
    assert found["results"][0]["properties"]["firstname"] == "First3"
    assert _search(box, _since(after))["total"] == 0
    clock.advance(5.001)  # each change is indexed within search_lag_ms (its own delay, at most that)
    fresh = _search(box, _since(after), properties=["firstname"])
    assert [r["id"] for r in fresh["results"]] == [contact]
    assert fresh["results"][0]["properties"]["firstname"] == "Renamed"
    assert _search(box, [{"propertyName": "firstname", "operator": "EQ", "value": "First3"}])["total"] == 0


def test_a_new_record_is_not_searchable_until_indexed_but_lists_at_once(plugin: Any) -> None:
    clock = FakeClock(NOW)
    box: Box = plugin(clock=clock, search_lag_ms=3000)
    created = box.client().crm.contacts.basic_api.create({"properties": {"email": "new@example.com"},
                                                          "associations": []}).id
    assert created in box.hub.ids("contacts")
    query = [{"propertyName": "email", "operator": "EQ", "value": "new@example.com"}]
    assert _search(box, query)["total"] == 0
    clock.advance(3.0)
    assert [r["id"] for r in _search(box, query)["results"]] == [created]


def test_a_deleted_record_stays_searchable_for_the_lag(plugin: Any) -> None:
    clock = FakeClock(NOW)
    box: Box = plugin(clock=clock)  # the default lag
    contact = box.contact_ids()[0]
    box.hub.delete("contacts", contact)
    assert contact in [r["id"] for r in _search(box, [])["results"]]
    clock.advance(3.0)
    assert contact not in [r["id"] for r in _search(box, [])["results"]]


def test_zero_lag_is_immediate(plugin: Any) -> None:
    box: Box = plugin(clock=FakeClock(NOW), search_lag_ms=0)
    contact = box.contact_ids()[5]
    box.hub.edit("contacts", contact, {"firstname": "Now"})
    assert [r["id"] for r in _search(box, _since(_modified(box, "contacts", contact)))["results"]] == [contact]


# ------------------------------------------------------------------------------------------- bulk stamping

def test_bulk_edit_stamps_every_record_with_one_modified_time(plugin: Any) -> None:
    clock = FakeClock(NOW)
    box: Box = plugin(clock=clock, search_lag_ms=1000)
    ids = box.contact_ids()[:25]
    befores = {i: _modified(box, "contacts", i) for i in ids}
    stamp = box.hub.bulk_edit("contacts", ids, {"lifecyclestage": "customer"})
    assert {_modified(box, "contacts", i) for i in ids} == {stamp}
    assert all(stamp > befores[i] for i in ids)
    clock.advance(1.0)
    tie = _search(box, [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(stamp)}])
    assert tie["total"] == 25 and sorted(r["id"] for r in tie["results"]) == sorted(ids)
    assert box.hub.total_writes() == 0  # not API writes


def test_person_edits_in_one_millisecond_tie_across_records_but_not_within_one(plugin: Any) -> None:
    box: Box = plugin(clock=FakeClock(NOW))
    first, second = box.contact_ids()[:2]
    box.hub.edit("contacts", first, {"firstname": "A"})
    box.hub.edit("contacts", second, {"firstname": "B"})
    assert _modified(box, "contacts", first) == _modified(box, "contacts", second)
    once = _modified(box, "contacts", first)
    box.hub.edit("contacts", first, {"firstname": "C"})
    assert _modified(box, "contacts", first) == once + 1


# ------------------------------------------------------------------------------------------- merges

def test_merge_creates_a_new_record_from_both(plugin: Any) -> None:
    clock = FakeClock(NOW)
    box: Box = plugin(clock=clock, search_lag_ms=0)
    first, second = box.contact_ids()[:2]
    box.hub.edit("contacts", second, {"jobtitle": "CFO", "clm_stage": "customer", "firstname": "Loser"})
    clock.advance(1)
    deals_before = {d for c in (first, second) for d in _associated(box, "contacts", c, "deals")}
    merged_id = box.hub.merge("contacts", first, second)
    assert merged_id not in (first, second) and int(merged_id) > max(int(i) for i in box.contact_ids() if
                                                                      i != merged_id)
    merged = box.hub.record("contacts", merged_id)
    assert merged is not None
    props = merged["properties"]
    assert props["firstname"] == "First0" and props["email"] == "person0@example0.com"  # the primary's values
    assert props["jobtitle"] == "CFO" and props["clm_stage"] == "customer"  # blanks filled from the secondary
    assert props["hs_merged_object_ids"] == f"{first};{second}"
    assert _modified(box, "contacts", merged_id) == int(clock() * 1000)
    assert merged["createdAt"] == box.hub.record("contacts", first)["createdAt"]  # type: ignore[index]
    # Both old ids are gone from lists (live and archived) and search, and resolve to the new record.
    for old in (first, second):
        assert old not in box.hub.ids("contacts") and old not in box.hub.ids("contacts", archived=True)
        assert box.client().crm.contacts.basic_api.get_by_id(old).id == merged_id
    assert {r["id"] for r in _search(box, [])["results"]} & {first, second} == set()
    # Writes by an old id land on the new record.
    box.client().crm.contacts.basic_api.update(second, {"properties": {"jobtitle": "CEO"}})
    assert box.hub.record("contacts", merged_id)["properties"]["jobtitle"] == "CEO"  # type: ignore[index]
    # Their deals now belong to the new id, in both directions.
    assert set(_associated(box, "contacts", merged_id, "deals")) == deals_before
    for deal in deals_before:
        contacts = _associated(box, "deals", deal, "contacts")
        assert merged_id in contacts and first not in contacts and second not in contacts


def test_merging_a_merged_record_lists_every_absorbed_id(box: Box, tmp_path: Path) -> None:
    a, b, c = box.contact_ids()[:3]
    ab = box.hub.merge("contacts", a, b)
    abc = box.hub.merge("contacts", c, ab)
    record = box.hub.record("contacts", a)
    assert record is not None and record["id"] == abc
    assert record["properties"]["hs_merged_object_ids"].split(";") == [c, ab, a, b]
    # A saved portal keeps the merges, in order.
    path = tmp_path / "portal.sqlite"
    box.hub.save(path)
    copy = HubSpotEmulator(rate_limits=RateLimits.off())
    copy.load(path)
    assert copy.record("contacts", b) == record


def test_merge_endpoint_answers_the_new_record(box: Box) -> None:
    first, second = box.deal_ids()[:2]
    contacts = set(_associated(box, "deals", first, "contacts")) | set(_associated(box, "deals", second, "contacts"))
    merged = box.client().crm.deals.basic_api.merge({"primaryObjectId": first, "objectIdToMerge": second})
    assert merged.id not in (first, second)
    assert set(_associated(box, "deals", merged.id, "contacts")) == contacts
    for contact in contacts:  # the contacts' associations moved to the new deal
        deals = _associated(box, "contacts", contact, "deals")
        assert merged.id in deals and first not in deals and second not in deals
    assert box.client().crm.deals.basic_api.get_by_id(second, properties=["hs_merged_object_ids"]).properties[
        "hs_merged_object_ids"] == f"{first};{second}"


def test_a_merge_is_searchable_only_after_the_lag(plugin: Any) -> None:
    clock = FakeClock(NOW)
    box: Box = plugin(clock=clock, search_lag_ms=2000)
    first, second = box.contact_ids()[:2]
    merged = box.hub.merge("contacts", first, second)
    ids = [r["id"] for r in _search(box, [])["results"]]
    assert first in ids and second in ids and merged not in ids
    clock.advance(2)
    ids = [r["id"] for r in _search(box, [])["results"]]
    assert first not in ids and second not in ids and merged in ids


# ------------------------------------------------------------------------------------------- associations

def _associated(box: Box, from_type: str, record_id: str, to_type: str) -> list[str]:
    page = box.client().crm.associations.v4.basic_api.get_page(from_type, record_id, to_type, limit=500)
    return [str(r.to_object_id) for r in page.results]


def test_associations_do_not_bump_modified_times(plugin: Any) -> None:
    clock = FakeClock(NOW)
    box: Box = plugin(clock=clock)
    deal, contact = box.deal_ids()[0], box.contact_ids()[20]
    before = (_modified(box, "deals", deal), _modified(box, "contacts", contact))
    clock.advance(10)
    box.hub.associate(deal, contact)
    assert contact in _associated(box, "deals", deal, "contacts")
    assert deal in _associated(box, "contacts", contact, "deals")
    assert (_modified(box, "deals", deal), _modified(box, "contacts", contact)) == before
    assert box.hub.dissociate(deal, contact) and not box.hub.dissociate(deal, contact)
    assert contact not in _associated(box, "deals", deal, "contacts")
    assert deal not in _associated(box, "contacts", contact, "deals")
    assert (_modified(box, "deals", deal), _modified(box, "contacts", contact)) == before


def test_batch_read_pages_per_input_and_the_rest_reads_per_record(plugin: Any) -> None:
    box: Box = plugin(association_page_size=3)
    deal = box.deal_ids()[0]
    contacts = box.contact_ids()[:8]
    for contact in contacts:
        box.hub.associate(deal, contact)
    expected = sorted(set(contacts) | set(box.seeded.contact_ids[c] for c in ("1000", "1001")), key=int)
    batch = box.client().crm.associations.v4.batch_api
    seen: list[str] = []
    after: str | None = None
    calls = 0
    while True:
        item: dict[str, Any] = {"id": deal} if after is None else {"id": deal, "after": after}
        result = batch.get_page("deals", "contacts", {"inputs": [item, {"id": box.deal_ids()[1]}]}).results[0]
        calls += 1
        assert len(result.to) <= 3
        seen += [str(t.to_object_id) for t in result.to]
        if result.paging is None:
            break
        after = result.paging.next.after
    assert seen == expected and calls == -(-len(expected) // 3)
    # The per-record endpoint continues from a batch token, at its own limit.
    first = batch.get_page("deals", "contacts", {"inputs": [{"id": deal}]}).results[0]
    assert first.paging is not None
    api = box.client().crm.associations.v4.basic_api
    rest = api.get_page("deals", deal, "contacts", after=first.paging.next.after, limit=2)
    assert [str(r.to_object_id) for r in rest.results] == expected[3:5] and rest.paging is not None
    tail = api.get_page("deals", deal, "contacts", after=rest.paging.next.after, limit=500)
    assert [str(r.to_object_id) for r in tail.results] == expected[5:] and tail.paging is None


def test_inline_associations_cap_at_100_with_paging(plugin: Any) -> None:
    box: Box = plugin(contacts=130, deals=2)
    deal = box.deal_ids()[0]
    for contact in box.contact_ids():
        box.hub.associate(deal, contact)
    page = box.client().crm.deals.basic_api.get_page(limit=1, associations=["contacts"])
    listing = page.results[0].associations["contacts"]
    assert len(listing.results) == 100 and listing.paging.next.after
    rest = box.client().crm.associations.v4.basic_api.get_page("deals", deal, "contacts",
                                                               after=listing.paging.next.after)
    assert [r.id for r in listing.results] + [str(r.to_object_id) for r in rest.results] == box.contact_ids()


def test_a_bad_association_token_is_a_400(box: Box) -> None:
    response = box.hub.handle(Request("GET", f"/crm/v4/objects/deals/{box.deal_ids()[0]}/associations/contacts",
                                      {"after": ["not-a-token"]}, {"authorization": f"Bearer {box.hub.token}"}, b""))
    assert response.status == 400 and json.loads(response.body)["category"] == "VALIDATION_ERROR"


# ------------------------------------------------------------------------------------------- the sorted index

def _general(hub: HubSpotEmulator, filters: list[dict[str, Any]], sorts: list[dict[str, str]]) -> list[str]:
    """The same query through the general path (a redundant HAS_PROPERTY filter keeps it off the fast one)."""
    body = {"filterGroups": [{"filters": [*filters, {"propertyName": "email", "operator": "HAS_PROPERTY"}]}],
            "sorts": sorts}
    table = hub.store.tables["contacts"]
    with hub.store.lock:
        return [str(i) for i in hub.search_index.matches(table, body)]


@pytest.mark.parametrize("seed", range(6))
def test_keyset_windows_answer_what_the_general_path_does(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock(NOW)
    hub = HubSpotEmulator(rate_limits=RateLimits.off(), clock=clock, search_lag_ms=1000)
    hub.seed(make_contacts(300), make_deals(10, 300))
    ids = hub.ids("contacts")
    hub.bulk_edit("contacts", rng.sample(ids, 40), {"jobtitle": "Bulk"})
    for contact in rng.sample(ids, 30):
        clock.advance(rng.random() / 100)
        hub.edit("contacts", contact, {"firstname": "Edited"})
    hub.delete("contacts", ids[7])
    hub.merge("contacts", ids[10], ids[11])
    clock.advance(rng.choice([0.0, 0.5, 2.0]))  # some changes still in the lag, or all indexed
    times = sorted({_mod(hub, i) for i in hub.ids("contacts")})
    table = hub.store.tables["contacts"]
    for _ in range(20):
        low, high = sorted(rng.sample(times, 2))
        last = rng.choice([None, *ids])
        filters = [{"propertyName": "lastmodifieddate", "operator": rng.choice(["GTE", "GT"]), "value": str(low)},
                   {"propertyName": "lastmodifieddate", "operator": rng.choice(["LTE", "LT"]), "value": str(high)}]
        if last is not None:
            filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": last})
        sorts = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}] if last or rng.random() < 0.5 else [
            {"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
        with hub.store.lock:
            fast = [str(i) for i in hub.search_index.matches(table, {"filterGroups": [{"filters": filters}],
                                                                      "sorts": sorts})]
        assert fast == _general(hub, filters, sorts)


def _mod(hub: HubSpotEmulator, record_id: str) -> int:
    record = hub.record("contacts", record_id)
    assert record is not None
    return int(datetime.fromisoformat(record["updatedAt"].replace("Z", "+00:00")).timestamp() * 1000)
