"""Org shapes and API economy: parent fields pulled under their own cursor, one composite call for the describes
and counts of a pull, converted leads, person accounts, contacts related to several accounts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simple_salesforce.api import Salesforce

from connectors.sandbox.salesforce import client_session
from connectors.sandbox.salesforce.org_shapes import (
    create_person_account,
    edit_person_account,
    enable_contacts_to_multiple_accounts,
    enable_person_accounts,
    relate,
)
from tests.connectors.salesforce.conftest import CONTACT_PROPS, Org, generated, pull_all

PROPS = [*CONTACT_PROPS, "Account.Industry", "Account.NumberOfEmployees"]


def client(org: Org) -> Any:
    return Salesforce(instance_url=org.server.url, session_id=org.emulator.session_id,
                      session=client_session(org.server), version="59.0")


def test_an_accounts_change_re_emits_its_contacts_with_the_new_value_under_the_account_cursor(small: Org) -> None:
    conn = small.connector(contact_props=PROPS)
    _, cursor = pull_all(conn, None)
    assert "Account" in cursor
    pages, cursor = pull_all(conn, cursor)
    assert sum(len(p.contacts) for p in pages) == 0, "nothing changed: nothing re-emitted"
    store = small.emulator.store
    with store.lock:
        account_id = next(r["AccountId"] for r in store.records["Contact"].values() if r.get("AccountId"))
        members = {r["Id"] for r in store.records["Contact"].values()
                   if r.get("AccountId") == account_id and not r.get("IsDeleted")}
    small.emulator.edit(account_id, {"Industry": "Shipping", "NumberOfEmployees": 4321}, commit_after=0.0)
    pages, cursor = pull_all(conn, cursor)
    contacts = {c.id: c for p in pages for c in p.contacts}
    assert set(contacts) == members
    assert all(c.properties["Account.Industry"] == "Shipping" and c.properties["Account.NumberOfEmployees"] == 4321
               for c in contacts.values())
    pages, _ = pull_all(conn, cursor)
    assert sum(len(p.contacts) for p in pages) == 0, "the Account cursor moved past the edit"


def test_an_incremental_pull_asks_its_describes_and_counts_in_one_composite_call(small: Org) -> None:
    client(small).Lead.create({"LastName": "Lead", "Company": "Co", "Email": "lead@example.com"})
    conn = small.connector(contact_props=PROPS, objects=("Contact", "Lead"))
    _, cursor = pull_all(conn, None)
    operations: list[str] = []
    call = conn.client.call

    def spy(operation: str, fn: Any) -> Any:
        operations.append(operation)
        return call(operation, fn)

    conn.client.call = spy  # type: ignore[method-assign]
    org = small.emulator
    org.reset_counters()
    pull_all(conn, cursor)
    # Before: 5 describes (Contact, Lead, Opportunity, OpportunityContactRole, Account) and 4 COUNT()s of their
    # own (14 calls with limits and the 4 empty windows, the Account window not read at all). Now the describes
    # and the 5 counts (Account's included) ride in one composite call: 5 + 4 - 1 = 8 calls fewer per pull.
    assert operations.count("describe and count (composite)") == 1 and org.request_counts["POST /composite"] == 1
    assert [o for o in operations if o.startswith("describe ") and "composite" not in o] == [], operations
    assert conn.reader._counts == {}, "every window the composite counted was read with that count"
    assert "GET /sobjects/{sobject}/describe" not in org.request_counts
    assert org.request_counts["GET composite/sobjects/{sobject}/describe"] == 5
    assert org.request_counts["GET composite/queryAll"] == 5


def test_a_describe_the_composite_could_not_answer_is_asked_on_its_own(tls_dir: Path) -> None:
    org = generated(50, tls_dir, deals=False)
    try:
        conn = org.connector(contact_props=["Title", "ReportsTo.Title"])
        pages, _ = pull_all(conn, None)
        assert sum(len(p.contacts) for p in pages) == 50
        # "ReportsTo" is a relationship, not an object: its composite describe answers 404, and the parent is
        # found from Contact's own describe (ReportsTo -> Contact), which the composite already holds.
        assert org.emulator.request_counts["GET /sobjects/{sobject}/describe"] == 0
    finally:
        org.stop()


def test_a_converted_lead_is_reported_merged_into_its_contact(small: Org) -> None:
    sf = client(small)
    leads = [sf.Lead.create({"LastName": f"Lead {i}", "Company": f"Co {i}", "Email": f"lead{i}@example.com"})["id"]
             for i in range(3)]
    conn = small.connector(objects=("Contact", "Lead"))
    _, cursor = pull_all(conn, None)
    contact_id = small.emulator.convert_lead(leads[0])
    pages, _ = pull_all(conn, cursor)
    merged = {k: v for p in pages for k, v in p.merged_contacts.items()}
    assert merged == {leads[0]: contact_id}
    assert contact_id in {c.id for p in pages for c in p.contacts}, "the new contact comes in the same pull"
    assert leads[0] not in {i for p in pages for i in p.deleted_contact_ids}
    only_leads = small.connector(objects=("Lead",))
    _, lead_cursor = pull_all(only_leads, None)
    small.emulator.convert_lead(leads[1])
    pages, _ = pull_all(only_leads, lead_cursor)
    assert [i for p in pages for i in p.deleted_contact_ids] == [leads[1]], "no Contacts pulled: the lead is gone"


def test_a_person_edited_through_its_person_account_comes_again_with_the_new_values(small: Org) -> None:
    store = small.emulator.store
    enable_person_accounts(store)
    account_id, contact_id = create_person_account(store, "Aroha", "Ngata", "aroha@example.com",
                                                   PersonTitle="Nurse")
    conn = small.connector(contact_props=["Title", "FirstName"])  # no Account.* property at all
    pages, cursor = pull_all(conn, None)
    person = next(c for p in pages for c in p.contacts if c.id == contact_id)
    assert person.properties["Title"] == "Nurse" and person.email == "aroha@example.com"
    edit_person_account(store, account_id, {"PersonTitle": "Charge Nurse", "FirstName": "Aroha M."})
    pages, _ = pull_all(conn, cursor)
    contacts = {c.id: c for p in pages for c in p.contacts}
    assert set(contacts) == {contact_id}
    assert contacts[contact_id].properties == {"Title": "Charge Nurse", "FirstName": "Aroha M."}


def test_a_role_less_opportunity_goes_to_its_accounts_own_contacts_not_indirectly_related_ones(small: Org) -> None:
    store = small.emulator.store
    enable_contacts_to_multiple_accounts(store)
    with store.lock:
        contacts = [r for r in store.records["Contact"].values() if r.get("AccountId") and not r.get("IsDeleted")]
    account_id = contacts[0]["AccountId"]
    own = sorted((r["CreatedDate"], r["Id"]) for r in contacts if r["AccountId"] == account_id)
    consultant = next(r["Id"] for r in contacts if r["AccountId"] != account_id)
    relate(store, consultant, account_id, "Consultant")
    opp = client(small).Opportunity.create({"Name": "No roles", "StageName": "Closed Won", "CloseDate": "2025-12-01",
                                            "AccountId": account_id, "Amount": 900})["id"]
    pages, _ = pull_all(small.connector(), None)
    deal = next(d for p in pages for d in p.deals if d.id == opp)
    assert deal.contact_ids == tuple(i for _, i in own) and consultant not in deal.contact_ids
