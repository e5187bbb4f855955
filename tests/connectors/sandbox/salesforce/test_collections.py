"""sObject Collections and sObject rows: limits, per-record errors, allOrNone, and the write log."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from connectors.sandbox.salesforce import ValidationRule
from tests.connectors.sandbox.salesforce.conftest import Sandbox


def patch(sf: Salesforce, records: list[dict[str, Any]], all_or_none: bool = False) -> list[dict[str, Any]]:
    result = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": all_or_none, "records": records})
    assert isinstance(result, list)
    return result


def contact(record_id: str, **values: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Contact"}, "Id": record_id, **values}


def only_error(result: dict[str, Any]) -> dict[str, Any]:
    assert result["success"] is False and "id" not in result
    assert len(result["errors"]) == 1
    return dict(result["errors"][0])


def test_update_200_records_in_order(sandbox: Sandbox, sf: Salesforce) -> None:
    ids = sandbox.contact_ids()[:200]
    results = patch(sf, [contact(i, Title=f"T{n}", Engagement_Score__c=n) for n, i in enumerate(ids)])
    assert [r["id"] for r in results] == ids and all(r["success"] and r["errors"] == [] for r in results)
    stored = sandbox.org.record(ids[7])
    assert stored is not None and stored["Title"] == "T7" and stored["Engagement_Score__c"] == 7.0
    # One request is one transaction: every record carries the same SystemModstamp, later than before.
    stamps = {r["SystemModstamp"] for r in sf.query_all("SELECT SystemModstamp FROM Contact WHERE Title LIKE 'T%'")
              ["records"]}
    assert len(stamps) == 1
    assert sandbox.org.writes_to(ids[0]) == {"Title": 1, "Engagement_Score__c": 1}
    assert sandbox.org.max_writes_per_field() == 1 and sandbox.org.total_writes() == 400


def test_more_than_200_records_is_refused(sandbox: Sandbox, sf: Salesforce) -> None:
    ids = sandbox.contact_ids()[:201]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        patch(sf, [contact(i, Title="x") for i in ids])
    assert exc.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sandbox.org.total_writes() == 0


def test_more_than_ten_chunks_is_refused(sandbox: Sandbox, sf: Salesforce) -> None:
    ids = sandbox.contact_ids()[:11]
    deal = next(iter(sandbox.seeded.deal_ids.values()))
    records: list[dict[str, Any]] = []
    for record_id in ids:
        records += [contact(record_id, Title="x"), {"attributes": {"type": "Opportunity"}, "Id": deal,
                                                     "NextStep": "call"}]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        patch(sf, records)
    assert exc.value.content[0]["errorCode"] == "EXCEEDED_MAX_TYPES_LIMIT"


@pytest.mark.parametrize(("values", "code", "fields"), [
    ({"Title": "x" * 129}, "STRING_TOO_LONG", ["Title"]),
    ({"Email": "not-an-email"}, "INVALID_EMAIL_ADDRESS", ["Email"]),
    ({"LastName": None}, "REQUIRED_FIELD_MISSING", ["LastName"]),
    ({"CreatedDate": "2024-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["CreatedDate"]),
    ({"Name": "Full Name"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Name"]),
    ({"Engagement_Score__c": 1e30}, "NUMBER_OUTSIDE_VALID_RANGE", ["Engagement_Score__c"]),
    ({"AccountId": "001000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"]),
])
def test_per_record_value_errors(sandbox: Sandbox, sf: Salesforce, values: dict[str, Any], code: str,
                                 fields: list[str]) -> None:
    good, bad = sandbox.contact_ids()[:2]
    results = patch(sf, [contact(good, Title="fine"), contact(bad, **values)])
    assert results[0]["success"] is True
    error = only_error(results[1])
    assert error["statusCode"] == code and error["fields"] == fields


def test_restricted_picklist_and_integer_fields(sandbox: Sandbox, sf: Salesforce) -> None:
    deal = next(iter(sandbox.seeded.deal_ids.values()))
    account = next(iter(sandbox.seeded.account_ids.values()))
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Opportunity"}, "Id": deal, "StageName": "Won-ish"},
        {"attributes": {"type": "Account"}, "Id": account, "NumberOfEmployees": 12.5},
    ]})
    assert isinstance(results, list)
    assert only_error(results[0])["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    error = only_error(results[1])
    assert error["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    assert error["message"] == "Employees: value not of required type: 12.5"


@pytest.mark.parametrize(("record_id", "code", "fields"), [
    (None, "MISSING_ARGUMENT", []),
    ("bad-id", "MALFORMED_ID", ["Id"]),
    ("003Hn00000001AbcIAX", "MALFORMED_ID", ["Id"]),  # wrong case-safety suffix
    ("003000000000000AAA", "INVALID_CROSS_REFERENCE_KEY", []),
])
def test_id_errors(sandbox: Sandbox, sf: Salesforce, record_id: str | None, code: str, fields: list[str]) -> None:
    record: dict[str, Any] = {"attributes": {"type": "Contact"}, "Title": "x"}
    if record_id is not None:
        record["Id"] = record_id
    error = only_error(patch(sf, [record])[0])
    assert error["statusCode"] == code and error["fields"] == fields


def test_id_of_another_object_is_malformed(sandbox: Sandbox, sf: Salesforce) -> None:
    account = next(iter(sandbox.seeded.account_ids.values()))
    error = only_error(patch(sf, [contact(account, Title="x")])[0])
    assert error == {"statusCode": "MALFORMED_ID", "message": f"Contact ID: id value of incorrect type: {account}",
                     "fields": ["Id"]}


def test_deleted_and_merged_records(sandbox: Sandbox, sf: Salesforce) -> None:
    first, second, third = sandbox.contact_ids()[:3]
    sandbox.org.delete(first)
    sandbox.org.merge(second, third)
    results = patch(sf, [contact(first, Title="x"), contact(third, Title="x"), contact(second, Title="x")])
    assert only_error(results[0]) == {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted",
                                      "fields": []}
    assert only_error(results[1])["statusCode"] == "ENTITY_IS_DELETED"
    assert results[2]["success"] is True


def test_all_or_none_rolls_back_everything(sandbox: Sandbox, sf: Salesforce) -> None:
    ids = sandbox.contact_ids()[:3]
    before = sandbox.org.record(ids[0])
    results = patch(sf, [contact(ids[0], Title="a"), contact(ids[1], Title="x" * 200), contact(ids[2], Title="c")],
                    all_or_none=True)
    assert only_error(results[1])["statusCode"] == "STRING_TOO_LONG"
    for rolled in (results[0], results[2]):
        assert only_error(rolled) == {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": "Record rolled back because not all records were valid and the request was using AllOrNone "
                       "header", "fields": []}
    assert sandbox.org.record(ids[0]) == before and sandbox.org.total_writes() == 0


def test_validation_rule(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.org.add_validation_rule(ValidationRule(
        "Contact", "Title_Not_Intern", lambda r: r.get("Title") == "Intern", "Interns cannot be contacts",
        field="Title"))
    ok, blocked = sandbox.contact_ids()[:2]
    results = patch(sf, [contact(ok, Title="CTO"), contact(blocked, Title="Intern")])
    assert results[0]["success"] is True
    assert only_error(results[1]) == {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                      "message": "Interns cannot be contacts", "fields": ["Title"]}


@pytest.mark.parametrize(("values", "code", "fragment"), [
    ({"Engagement_Score__c": "lots"}, "JSON_PARSER_ERROR",
     "Cannot deserialize instance of double from VALUE_STRING value lots"),
    ({"Newsletter__c": "maybe"}, "JSON_PARSER_ERROR", "Cannot deserialize instance of boolean"),
    ({"Birthdate": "31/12/1990"}, "JSON_PARSER_ERROR", "Cannot deserialize instance of date"),
    ({"Nope__c": 1}, "INVALID_FIELD", "No such column 'Nope__c' on sobject of type Contact"),
])
def test_request_level_errors_reject_the_whole_batch(sandbox: Sandbox, sf: Salesforce, values: dict[str, Any],
                                                     code: str, fragment: str) -> None:
    good, bad = sandbox.contact_ids()[:2]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        patch(sf, [contact(good, Title="fine"), contact(bad, **values)])
    assert exc.value.content[0]["errorCode"] == code and fragment in exc.value.content[0]["message"]
    assert sandbox.org.total_writes() == 0


def test_numeric_strings_are_accepted_and_rounded_to_scale(sandbox: Sandbox, sf: Salesforce) -> None:
    deal = next(iter(sandbox.seeded.deal_ids.values()))
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Opportunity"}, "Id": deal, "Amount": "1234.567"}]})
    assert isinstance(results, list) and results[0]["success"] is True
    assert sf.Opportunity.get(deal)["Amount"] == 1234.57


def test_missing_type_is_refused(sandbox: Sandbox, sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects", method="PATCH",
                   json={"records": [{"Id": sandbox.contact_ids()[0], "Title": "x"}]})
    assert exc.value.content[0] == {"message": "Must send a concrete entity type.", "errorCode": "INVALID_TYPE"}


def test_stage_change_recomputes_closed_and_won(sandbox: Sandbox, sf: Salesforce) -> None:
    open_deal = sandbox.seeded.deal_ids["d2"]
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Opportunity"}, "Id": open_deal, "StageName": "Closed Won"}]})
    assert isinstance(results, list) and results[0]["success"]
    row = sf.Opportunity.get(open_deal)
    assert (row["IsClosed"], row["IsWon"], row["Probability"]) == (True, True, 100.0)


def test_single_row_update_get_create_delete(sandbox: Sandbox, sf: Salesforce) -> None:
    record_id = sandbox.contact_ids()[0]
    assert sf.Contact.update(record_id, {"Title": "VP"}) == 204
    assert sf.Contact.get(record_id)["Title"] == "VP"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.update(record_id, {"Title": "x" * 500})
    assert exc.value.content[0]["errorCode"] == "STRING_TOO_LONG"
    created = sf.Contact.create({"LastName": "New", "Email": "new@example.com"})
    assert created["success"] is True and created["id"].startswith("003")
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Contact.get(created["id"])
    assert missing.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceMalformedRequest) as required:
        sf.Contact.create({"FirstName": "No last name"})
    assert required.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_collection_create_and_delete(sandbox: Sandbox, sf: Salesforce) -> None:
    created = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Lead"}, "LastName": "Lead", "Company": "Acme"},
        {"attributes": {"type": "Lead"}, "LastName": "Lead 2"},
    ]})
    assert isinstance(created, list)
    assert only_error(created[1])["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert only_error(created[0])["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    ids = sandbox.contact_ids()[:2]
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids)})
    assert isinstance(deleted, list) and [d["success"] for d in deleted] == [True, True]
    assert sf.query(f"SELECT COUNT() FROM Contact WHERE Id = '{ids[0]}'")["totalSize"] == 0


def test_updated_and_deleted_resources(sandbox: Sandbox, sf: Salesforce) -> None:
    from datetime import UTC, datetime, timedelta

    first, second = sandbox.contact_ids()[:2]
    start = datetime.now(UTC) - timedelta(minutes=1)
    sandbox.org.edit(first, {"Title": "Changed"})
    sandbox.org.delete(second)
    end = datetime.now(UTC) + timedelta(minutes=1)
    assert first in sf.Contact.updated(start, end)["ids"]
    assert [d["id"] for d in sf.Contact.deleted(start, end)["deletedRecords"]] == [second]


def test_concurrent_writers_each_write_once(sandbox: Sandbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ids = sandbox.contact_ids()
    shards = [ids[i::4] for i in range(4)]

    def write(shard: list[str]) -> int:
        client = sandbox.client()
        done = 0
        for start in range(0, len(shard), 50):
            done += sum(r["success"] for r in patch(client, [contact(i, Title="parallel")
                                                             for i in shard[start : start + 50]]))
        return done

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(write, shards)) == 300
    assert sandbox.org.max_writes_per_field() == 1 and sandbox.org.total_writes() == 300
    assert sandbox.org.request_counts["PATCH /composite/sobjects"] == 8
