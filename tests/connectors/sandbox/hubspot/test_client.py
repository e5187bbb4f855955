"""The official hubspot-api-client, unchanged, against the emulator over real HTTP."""

from __future__ import annotations

import json

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate, PropertyUpdate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException

from connectors.sandbox.hubspot import ASSOCIATION_TYPE_IDS
from connectors.sandbox.hubspot.spec import Specs, load_specs
from connectors.sandbox.server import Request, Response
from tests.connectors.sandbox.hubspot.conftest import Box


def test_spec_files_present(validator: Specs | None) -> None:
    if validator is None:
        pytest.skip(f"HubSpot's OpenAPI specs are not usable ({load_specs().reason}): requests and responses are "
                    "not validated against them in this run")
    good = Request("GET", "/crm/v3/objects/contacts", {}, {}, b"")
    bad = Response.json(200, {"paging": {}})  # "results" is required: the validator must notice
    assert validator.response_problems(good, bad)


def test_list_pages_through_every_contact(box: Box, client: HubSpot) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = client.crm.contacts.basic_api.get_page(limit=7, after=after, properties=["email", "lifecyclestage"])
        pages += 1
        seen.extend(r.id for r in page.results)
        assert all(set(r.properties) <= {"email", "lifecyclestage"} for r in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == box.contact_ids() and len(seen) == 40
    assert pages == 6
    assert box.hub.request_counts["GET /crm/v3/objects/contacts"] == 6


def test_properties_come_back_as_strings_with_hubspot_timestamps(box: Box, client: HubSpot) -> None:
    deal_id = box.seeded.deal_ids["5000"]
    deal = client.crm.deals.basic_api.get_by_id(deal_id, properties=["amount", "dealstage", "hs_is_closed_won",
                                                                      "closedate", "hs_lastmodifieddate"],
                                                associations=["contacts"])
    assert deal.properties["amount"] == "1000"
    assert deal.properties["dealstage"] == "closedwon" and deal.properties["hs_is_closed_won"] == "true"
    assert deal.properties["closedate"] == "2024-01-21T00:00:00.000Z"
    assert [a.id for a in deal.associations["contacts"].results] == [box.seeded.contact_ids["1000"],
                                                                     box.seeded.contact_ids["1001"]]
    assert deal.associations["contacts"].results[0].type == "deal_to_contact"
    with pytest.raises(DealsApiException) as missing:
        client.crm.deals.basic_api.get_by_id("999999")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["category"] == "OBJECT_NOT_FOUND"


def test_search_pages_with_total(box: Box, client: HubSpot) -> None:
    request = {"filterGroups": [{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]}],
               "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}],
               "properties": ["email", "lifecyclestage"], "limit": 10}
    found: list[str] = []
    after = None
    while True:
        page = client.crm.contacts.search_api.do_search(public_object_search_request={
            **request, **({"after": after} if after else {})})  # the spec does not let after be null
        assert page.total == 26
        found.extend(r.id for r in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(found) == 26 == len(set(found))
    created = [box.hub.record("contacts", i)["createdAt"] for i in found]  # type: ignore[index]
    assert created == sorted(created, reverse=True)


def test_batch_update_writes_and_reports(box: Box, client: HubSpot) -> None:
    ids = box.contact_ids()[:5]
    result = client.crm.contacts.batch_api.update(
        {"inputs": [{"id": i, "properties": {"jobtitle": f"CTO {i}", "engagement_score": "12.5"}} for i in ids]})
    assert result.status == "COMPLETE" and sorted(r.id for r in result.results) == sorted(ids)
    for contact_id in ids:
        assert box.hub.record("contacts", contact_id)["properties"]["jobtitle"] == f"CTO {contact_id}"  # type: ignore[index]
        assert box.hub.writes_to("contacts", contact_id) == 1
    assert box.hub.max_writes_per_record() == 1


def test_batch_read_reports_missing_ids_as_multi_status(box: Box, client: HubSpot) -> None:
    ids = box.contact_ids()[:2]
    api = client.crm.contacts.batch_api
    response = api.read({"inputs": [{"id": ids[0]}, {"id": "424242"}, {"id": ids[1]}], "properties": ["email"],
                         "propertiesWithHistory": []}, _preload_content=False)
    body = json.loads(response.data)
    assert response.status == 207 and body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"]["ids"] == ["424242"]
    assert [r["id"] for r in body["results"]] == ids


def test_create_properties_and_groups(box: Box, client: HubSpot) -> None:
    groups = client.crm.properties.groups_api
    groups.create("contacts", PropertyGroupCreate(name="crm_lifecycle", label="CRM Lifecycle", display_order=-1))
    with pytest.raises(PropertiesApiException) as taken:
        groups.create("contacts", PropertyGroupCreate(name="crm_lifecycle", label="again"))
    assert taken.value.status == 409 and json.loads(taken.value.body)["category"] == "OBJECT_ALREADY_EXISTS"
    core = client.crm.properties.core_api
    created = core.create("contacts", PropertyCreate(
        name="clm_stage", label="Stage", type="enumeration", field_type="select", group_name="crm_lifecycle",
        options=[{"label": "lead", "value": "lead", "hidden": False, "displayOrder": 0}]))
    assert created.name == "clm_stage" and created.options[0].value == "lead"
    with pytest.raises(PropertiesApiException) as exists:
        core.create("contacts", PropertyCreate(name="clm_stage", label="x", type="string", field_type="text",
                                               group_name="crm_lifecycle"))
    assert exists.value.status == 409
    core.update("contacts", "clm_stage", PropertyUpdate(options=[
        {"label": "lead", "value": "lead", "hidden": False}, {"label": "customer", "value": "customer",
                                                              "hidden": False}]))
    assert [o.value for o in core.get_by_name("contacts", "clm_stage").options] == ["lead", "customer"]
    names = {p.name for p in core.get_all("contacts").results}
    assert {"email", "lifecyclestage", "clm_stage", "engagement_score"} <= names
    assert "crm_lifecycle" in {g.name for g in groups.get_all("contacts").results}
    # The new option is accepted now, and an unknown one rejected with HubSpot's INVALID_OPTION.
    contact = box.contact_ids()[0]
    client.crm.contacts.basic_api.update(contact, {"properties": {"clm_stage": "customer"}})
    with pytest.raises(ApiException) as invalid:
        client.crm.contacts.basic_api.update(contact, {"properties": {"clm_stage": "churned"}})
    assert "INVALID_OPTION" in json.loads(invalid.value.body)["message"]


def test_v4_association_batch_read(box: Box, client: HubSpot) -> None:
    deals = [box.seeded.deal_ids["5000"], box.seeded.deal_ids["5001"]]
    response = client.crm.associations.v4.batch_api.get_page("deals", "contacts",
                                                             {"inputs": [{"id": d} for d in deals]})
    by_deal = {r._from.id: r for r in response.results}
    first = by_deal[deals[0]].to
    assert [t.to_object_id for t in first] == [box.seeded.contact_ids["1000"], box.seeded.contact_ids["1001"]]
    assert first[0].association_types[0].type_id == ASSOCIATION_TYPE_IDS[("deals", "contacts")] == 3
    back = client.crm.associations.v4.batch_api.get_page("contacts", "deals", {"inputs": [
        {"id": box.seeded.contact_ids["1000"]}]})
    assert back.results[0].to[0].association_types[0].type_id == 4


def test_oauth_refresh_issues_a_working_token(box: Box) -> None:
    anonymous = HubSpot(host=box.server.url)
    app = box.hub.oauth
    tokens = anonymous.oauth.tokens_api.create(grant_type="refresh_token", refresh_token=app.refresh_token,
                                               client_id=app.client_id, client_secret=app.client_secret)
    assert tokens.expires_in == 1800 and tokens.token_type == "bearer"
    page = box.client(tokens.access_token).crm.contacts.basic_api.get_page(limit=1)
    assert len(page.results) == 1
    with pytest.raises(Exception) as refused:
        anonymous.oauth.tokens_api.create(grant_type="refresh_token", refresh_token="stolen",
                                          client_id=app.client_id, client_secret=app.client_secret)
    assert json.loads(refused.value.body)["status"] == "BAD_REFRESH_TOKEN"  # type: ignore[attr-defined]


def test_unknown_token_is_refused_with_hubspots_body(box: Box) -> None:
    with pytest.raises(ApiException) as refused:
        box.client("pat-na1-wrong").crm.contacts.basic_api.get_page(limit=1)
    body = json.loads(refused.value.body)
    assert refused.value.status == 401 and body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found.")


def test_create_and_upsert_contacts(box: Box, client: HubSpot) -> None:
    created = client.crm.contacts.basic_api.create({"properties": {"email": "new@example.com", "firstname": "N"}})
    assert created.properties["email"] == "new@example.com"
    with pytest.raises(ApiException) as duplicate:
        client.crm.contacts.basic_api.create({"properties": {"email": "NEW@example.com"}})
    assert duplicate.value.status == 409
    assert json.loads(duplicate.value.body)["message"] == f"Contact already exists. Existing ID: {created.id}"
    upserted = client.crm.contacts.batch_api.upsert({"inputs": [
        {"id": "new@example.com", "idProperty": "email", "properties": {"jobtitle": "CEO"}},
        {"id": "other@example.com", "idProperty": "email", "properties": {"jobtitle": "CFO"}}]})
    by_email = {r.properties.get("email", ""): r for r in upserted.results}
    assert upserted.results[0].id == created.id and upserted.results[0].new is False
    assert by_email["other@example.com"].new is True
