"""Tooling API custom fields and the field-level security rule: a new field is invisible until granted."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.connectors.sandbox.salesforce.conftest import Sandbox

STAGE = {"FullName": "Contact.CLM_Stage__c",
         "Metadata": {"type": "Picklist", "label": "CLM Stage", "valueSet": {
             "restricted": True, "valueSetDefinition": {"sorted": False, "value": [
                 {"fullName": "lead", "default": False, "label": "lead"},
                 {"fullName": "customer", "default": False, "label": "customer"}]}}}}
SCORE = {"FullName": "Contact.CLM_Lead_Score__c",
         "Metadata": {"type": "Number", "label": "CLM Lead Score", "precision": 5, "scale": 2}}


def create_field(sf: Salesforce, body: dict[str, Any]) -> dict[str, Any]:
    result = sf.toolingexecute("sobjects/CustomField", method="POST", data=body)
    assert isinstance(result, dict)
    return result


def grant(sf: Salesforce, field: str, *, edit: bool, assign: bool = True) -> str:
    """Create a permission set granting ``field`` (and assign it to the integration user)."""
    permission_set = sf.restful("sobjects/PermissionSet", method="POST",
                                json={"Name": "CLM_Integration", "Label": "CLM Integration"})
    assert isinstance(permission_set, dict)
    sf.restful("sobjects/FieldPermissions", method="POST", json={
        "ParentId": permission_set["id"], "SobjectType": field.split(".")[0], "Field": field,
        "PermissionsRead": True, "PermissionsEdit": edit})
    if assign:
        me = sf.query("SELECT Id FROM User WHERE Username = 'integration@clm-sandbox.example'")["records"][0]["Id"]
        sf.restful("sobjects/PermissionSetAssignment", method="POST",
                   json={"AssigneeId": me, "PermissionSetId": permission_set["id"]})
    return str(permission_set["id"])


def field_names(sf: Salesforce) -> set[str]:
    return {f["name"] for f in sf.Contact.describe()["fields"]}


def test_create_custom_field_answers_like_tooling(sandbox: Sandbox, admin: Salesforce) -> None:
    result = create_field(admin, STAGE)
    assert result["success"] is True and result["id"].startswith("00N") and result["errors"] == []
    row = admin.toolingexecute(f"sobjects/CustomField/{result['id']}")
    assert row["FullName"] == "Contact.CLM_Stage__c" and row["Metadata"]["type"] == "Picklist"
    listed = admin.toolingexecute("query/?q=SELECT+Id,DeveloperName,TableEnumOrId+FROM+CustomField+"
                               "WHERE+TableEnumOrId='Contact'")
    assert "CLM_Stage" in {r["DeveloperName"] for r in listed["records"]}
    assert sandbox.org.request_counts["POST /tooling/sobjects/CustomField"] == 1


def test_duplicate_field_is_refused(admin: Salesforce) -> None:
    create_field(admin, STAGE)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        create_field(admin, STAGE)
    assert exc.value.content[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"


@pytest.mark.parametrize(("body", "code"), [
    ({"FullName": "Contact.Bad__Name__c", "Metadata": {"type": "Text", "label": "x", "length": 10}},
     "FIELD_INTEGRITY_EXCEPTION"),
    ({"FullName": "Contact.No_Suffix", "Metadata": {"type": "Text", "label": "x", "length": 10}},
     "FIELD_INTEGRITY_EXCEPTION"),
    ({"FullName": "Contact.Long__c", "Metadata": {"type": "Text", "label": "x", "length": 300}},
     "FIELD_INTEGRITY_EXCEPTION"),
    ({"FullName": "Contact.Num__c", "Metadata": {"type": "Number", "label": "x", "precision": 19, "scale": 2}},
     "FIELD_INTEGRITY_EXCEPTION"),
    ({"FullName": "Contact.NoLabel__c", "Metadata": {"type": "Text", "length": 10}}, "REQUIRED_FIELD_MISSING"),
])
def test_invalid_field_definitions(admin: Salesforce, body: dict[str, Any], code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        create_field(admin, body)
    assert exc.value.content[0]["errorCode"] == code


def test_new_field_is_invisible_until_granted_through_an_assigned_permission_set(
        sandbox: Sandbox, sf: Salesforce, admin: Salesforce) -> None:
    create_field(admin, SCORE)
    record_id = sandbox.contact_ids()[0]
    # Invisible: describe omits it, SOQL says "No such column", writes are refused.
    assert "CLM_Lead_Score__c" not in field_names(sf)
    with pytest.raises(SalesforceMalformedRequest) as query_error:
        sf.query("SELECT Id, CLM_Lead_Score__c FROM Contact")
    assert query_error.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as write_error:
        sf.restful("composite/sobjects", method="PATCH", json={"records": [
            {"attributes": {"type": "Contact"}, "Id": record_id, "CLM_Lead_Score__c": 50}]})
    assert write_error.value.content[0]["errorCode"] == "INVALID_FIELD"

    # Granted on a permission set nobody has: still invisible.
    permission_set = grant(admin, "Contact.CLM_Lead_Score__c", edit=False, assign=False)
    assert "CLM_Lead_Score__c" not in field_names(sf)

    # Assigned, read only: visible, but writes fail per record.
    me = sandbox.org.store.org.user_id
    admin.restful("sobjects/PermissionSetAssignment", method="POST",
               json={"AssigneeId": me, "PermissionSetId": permission_set})
    assert "CLM_Lead_Score__c" in field_names(sf)
    assert sf.query("SELECT CLM_Lead_Score__c FROM Contact LIMIT 1")["records"][0]["CLM_Lead_Score__c"] is None
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Contact"}, "Id": record_id, "CLM_Lead_Score__c": 50}]})
    assert isinstance(results, list)
    assert results[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert results[0]["errors"][0]["fields"] == ["CLM_Lead_Score__c"]

    # Edit granted: writes succeed.
    perms = admin.query(f"SELECT Id, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions "
                     f"WHERE ParentId = '{permission_set}'")["records"]
    assert perms[0]["Field"] == "Contact.CLM_Lead_Score__c" and perms[0]["PermissionsEdit"] is False
    admin.restful(f"sobjects/FieldPermissions/{perms[0]['Id']}", method="PATCH", json={"PermissionsEdit": True})
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Contact"}, "Id": record_id, "CLM_Lead_Score__c": 50.125}]})
    assert isinstance(results, list) and results[0]["success"] is True
    assert sf.Contact.get(record_id)["CLM_Lead_Score__c"] == 50.13


def test_revoking_read_deletes_the_permission_row(sandbox: Sandbox, admin: Salesforce) -> None:
    create_field(admin, SCORE)
    grant(admin, "Contact.CLM_Lead_Score__c", edit=True)
    assert sandbox.org.field_access("Contact", "CLM_Lead_Score__c") == (True, True)
    row = admin.query("SELECT Id FROM FieldPermissions WHERE Field = 'Contact.CLM_Lead_Score__c'")["records"][0]
    admin.restful(f"sobjects/FieldPermissions/{row['Id']}", method="PATCH",
               json={"PermissionsRead": False, "PermissionsEdit": False})
    count = admin.query("SELECT COUNT() FROM FieldPermissions WHERE Field = 'Contact.CLM_Lead_Score__c'")
    assert count["totalSize"] == 0
    assert sandbox.org.field_access("Contact", "CLM_Lead_Score__c") == (False, False)


@pytest.mark.parametrize(("body", "code"), [
    ({"SobjectType": "Contact", "Field": "Contact.Nope__c", "PermissionsRead": True},
     "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ({"SobjectType": "Contact", "Field": "Contact.CLM_Stage__c", "PermissionsEdit": True},
     "FIELD_INTEGRITY_EXCEPTION"),
])
def test_field_permission_errors(admin: Salesforce, body: dict[str, Any], code: str) -> None:
    create_field(admin, STAGE)
    permission_set = admin.restful("sobjects/PermissionSet", method="POST", json={"Name": "P", "Label": "P"})
    assert isinstance(permission_set, dict)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        admin.restful("sobjects/FieldPermissions", method="POST", json={"ParentId": permission_set["id"], **body})
    assert exc.value.content[0]["errorCode"] == code


def test_duplicate_permission_and_assignment(sandbox: Sandbox, admin: Salesforce) -> None:
    create_field(admin, STAGE)
    permission_set = grant(admin, "Contact.CLM_Stage__c", edit=True)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        admin.restful("sobjects/FieldPermissions", method="POST", json={
            "ParentId": permission_set, "SobjectType": "Contact", "Field": "Contact.CLM_Stage__c",
            "PermissionsRead": True})
    assert exc.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    assignments = admin.query(f"SELECT Id, PermissionSet.Name, PermissionSet.IsOwnedByProfile FROM "
                           f"PermissionSetAssignment WHERE AssigneeId = '{sandbox.org.store.org.user_id}'")
    assert {r["PermissionSet"]["Name"] for r in assignments["records"]} >= {"CLM_Integration"}
    assert any(r["PermissionSet"]["IsOwnedByProfile"] for r in assignments["records"])


def test_picklist_values_are_enforced_and_can_be_added(sandbox: Sandbox, sf: Salesforce, admin: Salesforce) -> None:
    field_id = create_field(admin, STAGE)["id"]
    grant(admin, "Contact.CLM_Stage__c", edit=True)
    record_id = sandbox.contact_ids()[0]
    update = {"records": [{"attributes": {"type": "Contact"}, "Id": record_id, "CLM_Stage__c": "churned"}]}
    results = sf.restful("composite/sobjects", method="PATCH", json=update)
    assert isinstance(results, list)
    assert results[0]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    metadata = dict(STAGE["Metadata"])  # type: ignore[arg-type]
    metadata["valueSet"] = {"restricted": True, "valueSetDefinition": {"value": [
        {"fullName": v, "label": v} for v in ("lead", "customer", "churned")]}}
    admin.toolingexecute(f"sobjects/CustomField/{field_id}", method="PATCH", data={"Metadata": metadata})
    results = sf.restful("composite/sobjects", method="PATCH", json=update)
    assert isinstance(results, list) and results[0]["success"] is True
    described = next(f for f in sf.Contact.describe()["fields"] if f["name"] == "CLM_Stage__c")
    assert [v["value"] for v in described["picklistValues"]] == ["lead", "customer", "churned"]
    assert described["custom"] is True and described["restrictedPicklist"] is True


def test_tooling_full_name_needs_a_single_row(admin: Salesforce) -> None:
    create_field(admin, STAGE)
    create_field(admin, SCORE)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        admin.toolingexecute("query/?q=SELECT+Id,FullName+FROM+CustomField")
    assert "no more than one row" in exc.value.content[0]["message"]


def test_seeded_custom_fields_are_visible_with_types(sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert fields["Engagement_Score__c"]["type"] == "double" and fields["Engagement_Score__c"]["scale"] == 2
    assert fields["Newsletter__c"]["type"] == "boolean"
    assert fields["Lifecyclestage__c"]["type"] == "string"
    assert fields["Email"]["type"] == "email" and fields["Email"]["updateable"] is True
    assert fields["CreatedDate"]["updateable"] is False
