"""Our ``CLM_*__c`` fields on the Salesforce sandbox: created by an admin through the Tooling API, made visible
to the integration user with field-level security on a permission set, idempotent, conflicts left alone,
picklist values added; what the integration user (no setup rights) may write and is told; and what ``clm check``
says before and after."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce.api import Salesforce

from connectors.base import CheckResult, FieldUpdate
from connectors.sandbox.salesforce import client_session
from connectors.sandbox.salesforce.tooling import field_from_metadata
from core.models import FieldType
from tests.connectors.salesforce.conftest import API, SPECS, Org, generated, pull_all

#: The describe type and Tooling metadata each of our types gets.
EXPECTED_TYPES = {FieldType.NUMBER: "double", FieldType.DATETIME: "datetime", FieldType.ENUM: "picklist",
                  FieldType.STRING: "string", FieldType.BOOL: "boolean"}
PERMISSION_SET = "CLM_Integration"


@pytest.fixture
def org(tls_dir: Path) -> Iterator[Org]:
    """A fresh org: 30 contacts, 5 leads, none of our fields."""
    org = generated(30, tls_dir, deals=False)
    admin = admin_client(org)
    for i in range(5):
        admin.Lead.create({"LastName": f"Lead {i}", "Company": f"Co {i}"})
    yield org
    org.stop()
    assert org.emulator.internal_errors == []


def admin_client(org: Org) -> Any:
    """simple-salesforce as an admin would use it, outside the connector."""
    return Salesforce(instance_url=org.server.url, session_id=org.emulator.admin_session_id,
                      session=client_session(org.server), version=API)


def name_of(logical: str) -> str:
    return "CLM_" + "_".join(p[:1].upper() + p[1:] for p in logical.split("_")) + "__c"


def field_lines(checks: list[CheckResult]) -> dict[str, CheckResult]:
    return {c.name: c for c in checks if c.name.startswith("our fields on ")}


def changes(counts: Mapping[str, int]) -> dict[str, int]:
    """Requests that create or change something."""
    return {k: n for k, n in counts.items() if not k.startswith("GET ")}


def test_a_fresh_org_gets_every_field_visible_writable_and_pullable_and_a_second_run_changes_nothing(
        org: Org) -> None:
    conn = org.connector(objects=("Contact", "Lead"))
    names = [name_of(s.name) for s in SPECS]

    # Before: check, run by the integration user (whose Tooling query is refused), names the fields it cannot
    # see, the fix, and the permission that would tell missing from hidden.
    before = field_lines(conn.check(SPECS))
    assert set(before) == {"our fields on Contact exist and are visible", "our fields on Lead exist and are visible"}
    for line in before.values():
        assert not line.ok and line.detail == f"missing or hidden by field-level security: {', '.join(names)}"
        assert "`clm fields ensure --assign-to" in line.fix and PERMISSION_SET in line.fix
        assert "'View Setup and Configuration'" in line.fix and "INVALID_TYPE" in line.fix

    org.emulator.reset_counters()
    statuses = org.admin_ensure(conn)
    assert [(s.crm_name, s.action) for s in statuses] == [
        (f"{sobject}.{name}", "created") for sobject in ("Contact", "Lead") for name in names]
    assert org.emulator.request_counts["POST /tooling/sobjects/CustomField"] == 26

    # The fields have our types...
    store = org.emulator.store
    for sobject in ("Contact", "Lead"):
        obj = store.object(sobject)
        assert obj is not None
        for spec, name in zip(SPECS, names, strict=True):
            definition = obj.field(name)
            assert definition is not None and definition.type == EXPECTED_TYPES[spec.type], name
            if spec.type is FieldType.NUMBER:
                assert (definition.precision, definition.scale) == (18, 4)
            if spec.type is FieldType.ENUM:
                assert definition.picklist == list(spec.options) and not definition.restricted
            # ...and are readable and editable by the integration user, through the permission set.
            assert org.emulator.field_access(sobject, name) == (True, True), name
    permission_sets = [r for r in store.records["PermissionSet"].values() if r["Name"] == PERMISSION_SET]
    assert len(permission_sets) == 1
    assert any(a["PermissionSetId"] == permission_sets[0]["Id"] and a["AssigneeId"] == store.org.user_id
               for a in store.records["PermissionSetAssignment"].values())
    granted = {r["Field"] for r in store.records["FieldPermissions"].values()
               if r["ParentId"] == permission_sets[0]["Id"] and r["PermissionsRead"] and r["PermissionsEdit"]}
    assert granted == {f"{sobject}.{name}" for sobject in ("Contact", "Lead") for name in names}

    # Visible in describe, writable, and pulled back.
    schema = conn.fields.describe("Lead")
    assert all(schema.canonical(n) == n and n in schema.updateable for n in names)
    contact, lead = org.ids("Contact")[0], org.ids("Lead")[0]
    results = conn.write([FieldUpdate(contact, {"lead_score": 42.5, "stage": "customer"}),
                          FieldUpdate(lead, {"lead_score": 7.0, "grade": "C"})])
    assert all(r.ok for r in results)
    pages, _ = pull_all(conn, None)
    people = {c.id: c for p in pages for c in p.contacts}
    assert people[contact].properties["CLM_Lead_Score__c"] == 42.5
    assert people[contact].properties["CLM_Stage__c"] == "customer"
    assert people[lead].properties["CLM_Grade__c"] == "C"

    after = field_lines(conn.check(SPECS))
    assert all(line.ok and line.detail == "13 present, readable and writable" and not line.fix
               for line in after.values())

    # A second run finds everything in place and changes nothing.
    org.emulator.reset_counters()
    again = org.admin_ensure(conn)
    assert {s.action for s in again} == {"exists"} and len(again) == 26
    assert changes(org.emulator.request_counts) == {}


def test_conflicting_fields_are_left_alone_and_missing_picklist_values_are_added(org: Org) -> None:
    store = org.emulator.store
    contact = store.object("Contact")
    assert contact is not None
    # An admin made CLM_Lead_Score__c a text field, visible to everyone...
    text = {"type": "Text", "label": "Score (text)", "length": 20}
    store.define_field(contact, field_from_metadata("CLM_Lead_Score__c", text), text, visible=True)
    # ...and, through the Tooling API, CLM_Clv__c a checkbox and CLM_Stage__c a picklist with one value, both
    # without field-level security (hidden from describe: the connector must ask the Tooling API).
    admin = admin_client(org)
    admin.toolingexecute("sobjects/CustomField", method="POST", data={
        "FullName": "Contact.CLM_Clv__c", "Metadata": {"type": "Checkbox", "label": "CLV?", "defaultValue": "false"}})
    admin.toolingexecute("sobjects/CustomField", method="POST", data={
        "FullName": "Contact.CLM_Stage__c", "Metadata": {"type": "Picklist", "label": "Stage", "valueSet": {
            "valueSetDefinition": {"value": [{"fullName": "lead", "default": False, "label": "lead"}]}}}})
    conn = org.connector()
    as_admin = org.connector(session_id=org.emulator.admin_session_id, assign_to=org.emulator.store.org.username)
    # check (as an admin, who may use the Tooling API) tells a hidden field of our type (access is missing) from
    # one of another type (ensure cannot help).
    first = field_lines(as_admin.check(SPECS))["our fields on Contact exist and are visible"]
    assert "; hidden by field-level security: CLM_Stage__c;" in first.detail
    assert "of another type: CLM_Lead_Score__c (string), CLM_Clv__c (boolean)" in first.detail
    assert "`clm fields ensure" in first.fix and "rename or delete" in first.fix

    statuses = {s.crm_name: s for s in as_admin.ensure_fields(SPECS)}
    score, clv, stage = (statuses[f"Contact.{n}"] for n in ("CLM_Lead_Score__c", "CLM_Clv__c", "CLM_Stage__c"))
    assert score.action == "conflict" and "'string'" in score.detail and "left unchanged" in score.detail
    assert clv.action == "conflict" and "'boolean'" in clv.detail
    # Its value labelled with its API name (as an earlier version created them) gets the readable label too.
    assert stage.action == "updated" and stage.detail == ("added picklist values: customer; labelled picklist "
                                                          "values: lead")
    assert {s.action for n, s in statuses.items() if n not in (score.crm_name, clv.crm_name, stage.crm_name)} == {
        "created"}
    # Left unchanged: same types, and no access granted on fields that are not ours.
    score_field, clv_field, stage_field = (contact.field(n) for n in ("CLM_Lead_Score__c", "CLM_Clv__c",
                                                                       "CLM_Stage__c"))
    assert score_field is not None and (score_field.type, score_field.length) == ("string", 20)
    assert clv_field is not None and clv_field.type == "boolean"
    assert org.emulator.field_access("Contact", "CLM_Clv__c") == (False, False)
    assert not any(r["Field"] in ("Contact.CLM_Lead_Score__c", "Contact.CLM_Clv__c")
                   for r in store.records["FieldPermissions"].values())
    # The picklist kept its value, got ours, and is now granted.
    assert stage_field is not None and stage_field.picklist == ["lead", "customer"]
    assert org.emulator.field_access("Contact", "CLM_Stage__c") == (True, True)

    # A configuration with a new stage adds just that value.
    more = [s.model_copy(update={"options": ("lead", "customer", "churned")}) if s.name == "stage" else s
            for s in SPECS]
    statuses = {s.crm_name: s for s in as_admin.ensure_fields(more)}
    assert statuses["Contact.CLM_Stage__c"].action == "updated"
    assert statuses["Contact.CLM_Stage__c"].detail == "added picklist values: churned"
    assert stage_field.picklist == ["lead", "customer", "churned"]
    assert conn.write([FieldUpdate(org.ids("Contact")[0], {"stage": "churned"})])[0].ok

    checks = field_lines(conn.check(SPECS))["our fields on Contact exist and are visible"]
    assert not checks.ok and "of another type: CLM_Lead_Score__c (string)" in checks.detail
    assert "rename or delete" in checks.fix


def test_the_integration_user_cannot_run_ensure_and_is_told_it_is_an_admin_step(org: Org) -> None:
    conn = org.connector()
    store = org.emulator.store
    org.emulator.reset_counters()
    statuses = conn.ensure_fields(SPECS)
    assert {s.action for s in statuses} == {"failed"} and len(statuses) == 13
    for status in statuses:
        assert "INVALID_TYPE" in status.detail and "'View Setup and Configuration'" in status.detail
        assert "--assign-to" in status.detail and "'Customize Application'" in status.detail
    assert changes(org.emulator.request_counts) == {}
    # A user who may list fields but not create them meets the Tooling API's refusal of the create.
    store.user_permissions[store.org.user_id] = frozenset({"ApiEnabled", "ViewSetup"})
    statuses = conn.ensure_fields(SPECS)
    assert {s.action for s in statuses} == {"failed"}
    for status in statuses:
        assert "INSUFFICIENT_ACCESS" in status.detail and "Customize Application" in status.detail
        assert PERMISSION_SET in status.detail
    # Nothing half-done: no field, and no permission set for fields that do not exist.
    assert not any(str(r["DeveloperName"]).startswith("CLM_") for r in store.records["CustomField"].values())
    assert not any(r["Name"] == PERMISSION_SET for r in store.records["PermissionSet"].values())


def test_field_access_reads_describe_and_names_the_missing_step_per_field(org: Org) -> None:
    conn = org.connector()
    org.admin_ensure(conn)
    store = org.emulator.store
    user = store.org.user_id
    # The admin takes Edit off CLM_Grade__c and the grant of CLM_Clv__c away altogether.
    rows = {r["Field"]: r["Id"] for r in store.records["FieldPermissions"].values()}
    org.emulator.edit(rows["Contact.CLM_Grade__c"], {"PermissionsEdit": False})
    store.delete(rows["Contact.CLM_Clv__c"])
    org.emulator.reset_counters()
    statuses = {s.crm_name: s for s in conn.field_access(SPECS)}
    grade, clv = statuses["Contact.CLM_Grade__c"], statuses["Contact.CLM_Clv__c"]
    assert grade.action == "failed" and grade.detail.startswith(
        f"read-only for the integration user ({user}): grant Edit on CLM_Grade__c on Contact via a permission set "
        f"assigned to the integration user ({user})")
    assert clv.action == "failed" and clv.detail.startswith(f"not visible to the integration user ({user})")
    assert "run `clm fields ensure` as an admin" in clv.detail and "grant Read and Edit on CLM_Clv__c" in clv.detail
    assert "INVALID_TYPE" in clv.detail and "'View Setup and Configuration'" in clv.detail
    assert {s.action for n, s in statuses.items() if n not in (grade.crm_name, clv.crm_name)} == {"exists"}
    assert changes(org.emulator.request_counts) == {}, "reading access changes nothing"
    # With "View Setup and Configuration" the Tooling API tells a hidden field from a missing one.
    store.user_permissions[user] = frozenset({"ApiEnabled", "ViewSetup"})
    contact = store.object("Contact")
    assert contact is not None
    store.remove_field(contact, "CLM_Next_Best_Action__c")
    statuses = {s.crm_name: s for s in conn.field_access(SPECS)}
    assert statuses["Contact.CLM_Clv__c"].detail.startswith(
        f"exists, but the integration user ({user}) may not read it: grant Read and Edit on CLM_Clv__c on Contact")
    assert statuses["Contact.CLM_Next_Best_Action__c"].detail == (
        "does not exist on Contact: run `clm fields ensure` as an admin")
    line = field_lines(conn.check(SPECS))["our fields on Contact exist and are visible"]
    assert line.detail == (f"missing: CLM_Next_Best_Action__c; hidden by field-level security: CLM_Clv__c; "
                           f"read-only for the integration user ({user}): CLM_Grade__c")
