"""CRM-native picklist labels: our picklist values read "Marketing qualified" in Salesforce while records store
``marketing_qualified``; read back through simple-salesforce's describe from the sandbox over real HTTP (TLS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simple_salesforce.api import Salesforce

from connectors.sandbox.salesforce import client_session
from core.fields import option_label
from tests.connectors.salesforce.conftest import API, SPECS, generated

STAGES = ("subscriber", "marketing_qualified", "at_risk", "repeat_customer")


def test_salesforce_picklist_values_carry_labels(tls_dir: Path) -> None:
    org = generated(3, tls_dir, deals=False)
    try:
        specs = [s.model_copy(update={"options": STAGES}) if s.name == "stage" else s for s in SPECS]
        conn = org.connector(specs=specs)
        assert {s.action for s in org.admin_ensure(conn, specs)} == {"created"}
        # The integration user, whom the admin granted the fields (an admin without a grant does not see them).
        sf = Salesforce(instance_url=org.server.url, session_id=org.emulator.session_id,
                        session=client_session(org.server), version=API)
        contacts: Any = sf.Contact  # simple-salesforce types the attribute as any of its object kinds
        fields = {f["name"]: f for f in contacts.describe()["fields"]}
        entries = {e["value"]: e["label"] for e in fields["CLM_Stage__c"]["picklistValues"]}
        assert entries == {v: option_label(v) for v in STAGES}
        contact = sf.query("SELECT Id FROM Contact LIMIT 1")["records"][0]["Id"]
        contacts.update(contact, {"CLM_Stage__c": "marketing_qualified"})  # the value, not the label
        assert contacts.get(contact)["CLM_Stage__c"] == "marketing_qualified"
    finally:
        org.stop()


def test_salesforce_raw_labels_of_an_earlier_version_are_fixed_and_an_admins_label_kept(tls_dir: Path) -> None:
    org = generated(3, tls_dir, deals=False)
    try:
        admin = Salesforce(instance_url=org.server.url, session_id=org.emulator.admin_session_id,
                           session=client_session(org.server), version=API)
        raw = [{"fullName": v, "default": False, "label": v} for v in STAGES]
        raw[2]["label"] = "Needs love"  # relabelled by an admin in Setup
        admin.toolingexecute("sobjects/CustomField", method="POST", data={
            "FullName": "Contact.CLM_Stage__c", "Metadata": {"type": "Picklist", "label": "CLM lifecycle stage",
                                                             "valueSet": {"valueSetDefinition": {"value": raw}}}})
        specs = [s.model_copy(update={"options": STAGES}) if s.name == "stage" else s for s in SPECS]
        conn = org.connector(specs=specs)
        statuses = {s.name: s for s in org.admin_ensure(conn, specs)}
        assert statuses["stage"].action == "updated"
        assert statuses["stage"].detail == "labelled picklist values: marketing_qualified, repeat_customer, subscriber"
        sf = Salesforce(instance_url=org.server.url, session_id=org.emulator.session_id,
                        session=client_session(org.server), version=API)
        contacts: Any = sf.Contact
        fields = {f["name"]: f for f in contacts.describe()["fields"]}
        entries = {e["value"]: e["label"] for e in fields["CLM_Stage__c"]["picklistValues"]}
        assert entries == {**{v: option_label(v) for v in STAGES}, "at_risk": "Needs love"}
        assert {s.name: s.action for s in org.admin_ensure(conn, specs)}["stage"] == "exists"
    finally:
        org.stop()
