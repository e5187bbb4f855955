"""Org shapes the emulator models as Salesforce does: parent fields that never stamp the child, converted leads,
person accounts, contacts related to several accounts, and the Composite resource."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce

from connectors.sandbox.salesforce.org_shapes import (
    create_person_account,
    edit_person_account,
    enable_contacts_to_multiple_accounts,
    enable_person_accounts,
    relate,
)
from tests.connectors.sandbox.salesforce.conftest import Sandbox


def test_a_parent_edit_changes_the_childs_parent_field_but_not_its_system_modstamp(sandbox: Sandbox,
                                                                                     sf: Salesforce) -> None:
    contact = sf.query("SELECT Id, AccountId, SystemModstamp, Account.Industry FROM Contact LIMIT 1")["records"][0]
    assert contact["Account"]["Industry"] == "Banking"
    before = sandbox.org.store.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    sandbox.org.edit(contact["AccountId"], {"Industry": "Retail"}, commit_after=0.0)
    again = sf.query(f"SELECT Id, SystemModstamp, LastModifiedDate, Account.Industry FROM Contact "
                     f"WHERE Id = '{contact['Id']}'")["records"][0]
    assert again["Account"]["Industry"] == "Retail", "the relationship reads the parent's current value"
    assert again["SystemModstamp"] == contact["SystemModstamp"], "the child is not stamped"
    assert sf.query(f"SELECT Id FROM Contact WHERE SystemModstamp >= {before}")["records"] == []
    account = sf.query(f"SELECT Id FROM Account WHERE SystemModstamp >= {before}")["records"]
    assert [r["Id"] for r in account] == [contact["AccountId"]]


def composite(sf: Salesforce, subrequests: list[dict[str, object]]) -> dict[str, object]:
    return sf.restful("composite", method="POST", json={"compositeRequest": subrequests})  # type: ignore[no-any-return]


def test_composite_runs_describes_and_counts_in_one_api_call(sandbox: Sandbox, sf: Salesforce) -> None:
    base = "/services/data/v59.0"
    subs: list[dict[str, object]] = [{"method": "GET", "url": f"{base}/sobjects/{name}/describe", "referenceId": name}
                                     for name in ("Contact", "Opportunity", "OpportunityContactRole", "Account")]
    subs.append({"method": "GET", "url": f"{base}/queryAll?q=SELECT+COUNT()+FROM+Contact", "referenceId": "n"})
    subs.append({"method": "GET", "url": f"{base}/sobjects/Nope/describe", "referenceId": "bad"})
    before = sandbox.org.api_usage
    answer = composite(sf, subs)
    assert sandbox.org.api_usage == before + 1, "the whole composite counts as one request"
    results = {r["referenceId"]: r for r in answer["compositeResponse"]}  # type: ignore[attr-defined]
    assert results["Contact"]["httpStatusCode"] == 200 and results["Contact"]["body"]["name"] == "Contact"
    assert {f["name"] for f in results["Account"]["body"]["fields"]} >= {"Industry", "NumberOfEmployees"}
    assert results["n"]["body"]["totalSize"] == 300
    assert results["bad"]["httpStatusCode"] == 404 and results["bad"]["body"][0]["errorCode"] == "NOT_FOUND"
    assert sandbox.org.request_counts["GET composite/sobjects/{sobject}/describe"] == 5


def test_composite_refuses_more_than_25_subrequests_or_5_queries(sf: Salesforce) -> None:
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    describe = {"method": "GET", "url": "/services/data/v59.0/sobjects/Contact/describe", "referenceId": "d"}
    query = {"method": "GET", "url": "/services/data/v59.0/query?q=SELECT+Id+FROM+Contact", "referenceId": "q"}
    for subs in ([describe] * 26, [query] * 6):
        with pytest.raises(SalesforceMalformedRequest) as exc:
            composite(sf, [{**s, "referenceId": f"r{i}"} for i, s in enumerate(subs)])
        assert exc.value.content[0]["errorCode"] == "INVALID_API_INPUT"  # type: ignore[index]
    assert len(composite(sf, [{**query, "referenceId": f"r{i}"} for i in range(5)])["compositeResponse"]) == 5  # type: ignore[arg-type]


def test_a_converted_lead_points_at_its_new_contact_and_fills_only_the_blanks_of_an_existing_one(
        sandbox: Sandbox, sf: Salesforce) -> None:
    lead = sf.Lead.create({"LastName": "Ngata", "FirstName": "Aroha", "Company": "Kauri Ltd", "Industry": "Retail",
                           "Email": "aroha@kauri.example", "Title": "Buyer"})["id"]
    before = sf.Lead.get(lead)["SystemModstamp"]
    contact_id = sandbox.org.convert_lead(lead)
    converted = sf.query(f"SELECT IsConverted, ConvertedContactId, ConvertedAccountId, Status, SystemModstamp "
                         f"FROM Lead WHERE Id = '{lead}'")["records"][0]
    assert converted["IsConverted"] is True and converted["ConvertedContactId"] == contact_id
    assert converted["Status"] == "Closed - Converted" and converted["SystemModstamp"] > before
    contact = sf.query(f"SELECT Email, Title, Account.Name, Account.Industry FROM Contact WHERE Id = '{contact_id}'"
                       )["records"][0]
    assert contact["Email"] == "aroha@kauri.example" and contact["Title"] == "Buyer"
    assert contact["Account"] == {**contact["Account"], "Name": "Kauri Ltd", "Industry": "Retail"}
    assert converted["ConvertedAccountId"] == sf.Contact.get(contact_id)["AccountId"]
    # Into an existing contact: only its empty fields take the lead's values.
    existing = sandbox.contact_ids()[0]
    sf.Contact.update(existing, {"Title": "Owner", "Phone": None})
    second = sf.Lead.create({"LastName": "Other", "Company": "Co", "Title": "Intern", "Phone": "+64 9 555 0100"})["id"]
    assert sandbox.org.convert_lead(second, contact_id=existing) == existing
    after = sf.Contact.get(existing)
    assert after["Title"] == "Owner" and after["Phone"] == "+64 9 555 0100"


def test_a_person_account_is_an_account_and_a_contact_edited_through_the_account(sandbox: Sandbox,
                                                                                  sf: Salesforce) -> None:
    store = sandbox.org.store
    enable_person_accounts(store)
    account_id, contact_id = create_person_account(store, "Aroha", "Ngata", "aroha@example.com",
                                                   PersonTitle="Nurse")
    contact = sf.query(f"SELECT Id, IsPersonAccount, Title, SystemModstamp, Account.IsPersonAccount, "
                       f"Account.PersonContactId, Account.Name, Account.NumberOfEmployees FROM Contact "
                       f"WHERE Id = '{contact_id}'")["records"][0]
    assert contact["IsPersonAccount"] is True and contact["Title"] == "Nurse"
    assert contact["Account"]["IsPersonAccount"] is True and contact["Account"]["PersonContactId"] == contact_id
    assert contact["Account"]["Name"] == "Aroha Ngata" and contact["Account"]["NumberOfEmployees"] is None
    company = sf.query("SELECT IsPersonAccount FROM Contact WHERE IsPersonAccount = false LIMIT 1")["records"]
    assert company and company[0]["IsPersonAccount"] is False
    edit_person_account(store, account_id, {"PersonTitle": "Charge Nurse"})
    again = sf.query(f"SELECT Title, SystemModstamp FROM Contact WHERE Id = '{contact_id}'")["records"][0]
    assert again["Title"] == "Charge Nurse" and again["SystemModstamp"] == contact["SystemModstamp"]
    assert sf.Account.get(account_id)["SystemModstamp"] > contact["SystemModstamp"]


def test_contacts_to_multiple_accounts_have_one_direct_relation_and_any_indirect_ones(sandbox: Sandbox,
                                                                                     sf: Salesforce) -> None:
    store = sandbox.org.store
    enable_contacts_to_multiple_accounts(store)
    contact_id = sandbox.contact_ids()[0]
    own = sf.Contact.get(contact_id)["AccountId"]
    other = next(i for i in sandbox.seeded.account_ids.values() if i != own)
    relate(store, contact_id, other, "Consultant")
    rows = sf.query(f"SELECT AccountId, IsDirect, Roles FROM AccountContactRelation "
                    f"WHERE ContactId = '{contact_id}'")["records"]
    assert sorted((r["AccountId"], r["IsDirect"], r["Roles"]) for r in rows) == sorted(
        [(own, True, None), (other, False, "Consultant")])
    members = sf.query(f"SELECT Id, (SELECT ContactId, IsDirect FROM AccountContactRelations) FROM Account "
                       f"WHERE Id = '{other}'")["records"][0]["AccountContactRelations"]["records"]
    assert {(m["ContactId"], m["IsDirect"]) for m in members} >= {(contact_id, False)}
    assert sf.query(f"SELECT COUNT() FROM Contact WHERE AccountId = '{other}' AND Id = '{contact_id}'"
                    )["totalSize"] == 0, "an indirect relation does not make the account the contact's own"
