"""Two users: the integration user (no setup rights) and an admin; what each may do with fields and access."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceRefusedRequest

from tests.connectors.sandbox.salesforce.conftest import Sandbox

SCORE = {"FullName": "Contact.CLM_Lead_Score__c",
         "Metadata": {"type": "Number", "label": "CLM Lead Score", "precision": 5, "scale": 2}}
LIST_FIELDS = "query/?q=SELECT+Id,DeveloperName+FROM+CustomField+WHERE+TableEnumOrId='Contact'"


def described(sf: Salesforce) -> dict[str, dict[str, object]]:
    return {str(f["name"]): f for f in sf.Contact.describe()["fields"]}


def test_the_integration_user_cannot_see_or_change_field_definitions(sf: Salesforce, admin: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as listed:
        sf.toolingexecute(LIST_FIELDS)
    assert listed.value.content[0]["errorCode"] == "INVALID_TYPE"
    assert "sObject type 'CustomField' is not supported" in listed.value.content[0]["message"]
    with pytest.raises(SalesforceRefusedRequest) as created:
        sf.toolingexecute("sobjects/CustomField", method="POST", data=SCORE)
    assert created.value.content[0]["errorCode"] == "INSUFFICIENT_ACCESS"
    assert "CLM_Lead_Score__c" not in described(admin)
    # The admin may do both.
    field_id = admin.toolingexecute("sobjects/CustomField", method="POST", data=SCORE)["id"]
    assert "CLM_Lead_Score" in {r["DeveloperName"] for r in admin.toolingexecute(LIST_FIELDS)["records"]}
    with pytest.raises(SalesforceRefusedRequest):
        sf.toolingexecute(f"sobjects/CustomField/{field_id}", method="PATCH",
                          data={"Metadata": {**SCORE["Metadata"], "label": "Renamed"}})  # type: ignore[dict-item]


def test_the_integration_user_cannot_grant_itself_access(sandbox: Sandbox, sf: Salesforce, admin: Salesforce) -> None:
    admin.toolingexecute("sobjects/CustomField", method="POST", data=SCORE)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.restful("sobjects/PermissionSet", method="POST", json={"Name": "Mine", "Label": "Mine"})
    assert refused.value.content[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    permission_set = sandbox.org.create_permission_set("CLM_Integration", assign=False)
    with pytest.raises(SalesforceMalformedRequest) as grant:
        sf.restful("sobjects/FieldPermissions", method="POST", json={
            "ParentId": permission_set, "SobjectType": "Contact", "Field": "Contact.CLM_Lead_Score__c",
            "PermissionsRead": True, "PermissionsEdit": True})
    assert grant.value.content[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    with pytest.raises(SalesforceMalformedRequest) as assign:
        sf.restful("sobjects/PermissionSetAssignment", method="POST", json={
            "AssigneeId": sandbox.org.store.org.user_id, "PermissionSetId": permission_set})
    assert assign.value.content[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert sandbox.org.field_access("Contact", "CLM_Lead_Score__c") == (False, False)


def test_describe_says_updateable_per_field_level_security_of_the_caller(sandbox: Sandbox, sf: Salesforce,
                                                                         admin: Salesforce) -> None:
    admin.toolingexecute("sobjects/CustomField", method="POST", data=SCORE)
    permission_set = sandbox.org.create_permission_set("CLM_Integration")  # assigned to the integration user
    sandbox.org.grant_field(permission_set, "Contact.CLM_Lead_Score__c", edit=False)
    field = described(sf)["CLM_Lead_Score__c"]
    assert field["updateable"] is False and field["createable"] is False
    assert "CLM_Lead_Score__c" not in described(admin)  # granted to the integration user only
    row = admin.query("SELECT Id FROM FieldPermissions WHERE Field = 'Contact.CLM_Lead_Score__c'")["records"][0]
    admin.restful(f"sobjects/FieldPermissions/{row['Id']}", method="PATCH", json={"PermissionsEdit": True})
    field = described(sf)["CLM_Lead_Score__c"]
    assert field["updateable"] is True and field["createable"] is True
    assert described(sf)["CreatedDate"]["updateable"] is False


def test_each_session_knows_its_user(sandbox: Sandbox, sf: Salesforce, admin: Salesforce) -> None:
    org = sandbox.org.store.org
    assert sf.oauth2("userinfo")["user_id"] == org.user_id
    assert admin.oauth2("userinfo")["user_id"] == org.admin_user_id
    assert admin.restful("chatter/users/me")["id"] == org.admin_user_id
    profiles = {r["Username"]: r["Profile"]["Name"]
                for r in admin.query("SELECT Username, Profile.Name FROM User")["records"]}
    assert profiles == {org.username: "Minimum Access - API Only Integrations",
                        org.admin_username: "System Administrator"}
