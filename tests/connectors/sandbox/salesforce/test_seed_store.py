"""Seeding from our models, people editing/deleting/merging records, Ids, and seeding speed."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from simple_salesforce import Salesforce

from connectors.sandbox.salesforce import SalesforceEmulator, custom_api_name
from connectors.sandbox.salesforce.ids import IdFactory, checksum, normalize
from connectors.sandbox.salesforce.seed import SeedResult
from core.models import Contact, Deal, DealStatus
from tests.connectors.sandbox.salesforce.conftest import T0, Sandbox, make_contacts, make_deals
from tests.scaling import assert_linear


def test_ids_have_prefix_and_case_safe_suffix() -> None:
    assert checksum("001A0000006Vm9r") == "IAC"  # the documented 15 → 18 example
    assert normalize("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert normalize("001A0000006Vm9rIAC") == "001A0000006Vm9rIAC"
    assert normalize("001A0000006Vm9rIAD") is None
    assert normalize("001A0000006Vm9") is None
    new = IdFactory().new("00Q")
    assert len(new) == 18 and new.startswith("00Q") and normalize(new) == new


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=15,
               max_size=15))
def test_any_15_character_id_round_trips(id15: str) -> None:
    full = normalize(id15)
    assert full is not None and full[:15] == id15 and normalize(full) == full
    assert normalize(full[:15] + full[15:].lower()) == full  # the suffix itself is case-insensitive


@pytest.mark.parametrize(("prop", "api"), [("num_employees", "Num_Employees__c"), ("lifecyclestage",
                                                                                     "Lifecyclestage__c"),
                                           ("2nd score", "X2nd_Score__c"), ("a" * 60, "A" + "a" * 39 + "__c")])
def test_custom_api_names(prop: str, api: str) -> None:
    assert custom_api_name(prop) == api


def test_deals_map_to_stages_and_contact_roles(sandbox: Sandbox, sf: Salesforce) -> None:
    won, lost, open_deal = (sandbox.seeded.deal_ids[f"d{i}"] for i in range(3))
    rows = {r["Id"]: r for r in sf.query_all(
        "SELECT Id, StageName, IsClosed, IsWon, CloseDate, Amount, AccountId FROM Opportunity")["records"]}
    assert (rows[won]["StageName"], rows[won]["IsClosed"], rows[won]["IsWon"]) == ("Closed Won", True, True)
    assert (rows[lost]["StageName"], rows[lost]["IsClosed"], rows[lost]["IsWon"]) == ("Closed Lost", True, False)
    assert (rows[open_deal]["StageName"], rows[open_deal]["IsClosed"]) == ("Negotiation/Review", False)
    assert rows[won]["CloseDate"] == "2024-01-21" and rows[won]["Amount"] == 1000.0
    contact_0 = sandbox.seeded.contact_ids["c0"]
    assert rows[won]["AccountId"] == sandbox.org.record(contact_0)["AccountId"]  # type: ignore[index]
    roles = sf.query(f"SELECT ContactId, IsPrimary, Role FROM OpportunityContactRole WHERE OpportunityId = '{won}' "
                     "ORDER BY IsPrimary DESC")["records"]
    assert [(r["ContactId"], r["IsPrimary"]) for r in roles] == [(contact_0, True),
                                                                 (sandbox.seeded.contact_ids["c1"], False)]


def test_contacts_map_names_accounts_and_properties(sandbox: Sandbox, sf: Salesforce) -> None:
    row = sf.Contact.get(sandbox.seeded.contact_ids["c3"])
    assert (row["FirstName"], row["LastName"], row["Email"]) == ("First3", "Last3", "first3.last3@example3.com")
    assert row["Engagement_Score__c"] == 0.75 and row["Newsletter__c"] is False
    assert row["CreatedDate"] == "2024-01-01T03:00:00.000+0000"
    assert row["SystemModstamp"] == "2024-01-01T03:30:00.000+0000"
    account = sf.Account.get(row["AccountId"])
    assert account["Name"] == "Company 3" and account["Industry"] == "Banking"
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 25
    assert sorted(sandbox.seeded.custom_fields) == ["Contact.Engagement_Score__c", "Contact.Lifecyclestage__c",
                                                     "Contact.Newsletter__c"]


def test_archived_records_are_in_the_recycle_bin_for_15_days() -> None:
    org = SalesforceEmulator()
    recent = datetime.now(UTC) - timedelta(days=3)
    contact = Contact(id="x1", email="a@b.co", created_at=recent, archived=True)
    deal = Deal(id="y1", created_at=recent, status=DealStatus.OPEN, archived=True, contact_ids=("x1",))
    old = Contact(id="x2", email="c@d.co", created_at=T0, archived=True)
    seeded = org.seed([contact, old], [deal])
    assert org.record(seeded.contact_ids["x1"])["IsDeleted"] is True  # type: ignore[index]
    assert org.record(seeded.deal_ids["y1"])["IsDeleted"] is True  # type: ignore[index]
    assert org.store.count("Contact") == 0 and org.store.count("Contact", include_deleted=True) == 1
    assert org.record(seeded.contact_ids["x2"]) is None, "deleted long ago: physically deleted"


def test_salesforce_ids_in_our_records_are_kept() -> None:
    org = SalesforceEmulator()
    seeded = org.seed([Contact(id="003Hn00000ABCDE", created_at=T0)], [])
    assert seeded.contact_ids == {"003Hn00000ABCDE": normalize("003Hn00000ABCDE")}


def test_person_edits_bump_modstamps_but_are_not_api_writes(sandbox: Sandbox, sf: Salesforce) -> None:
    record_id = sandbox.seeded.contact_ids["c0"]
    before = sf.Contact.get(record_id)
    sandbox.org.edit(record_id, {"FirstName": "Ada", "Title": "CEO"})
    after = sf.Contact.get(record_id)
    assert after["Name"] == "Ada Last0" and after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert sandbox.org.total_writes() == 0 and sandbox.org.store.write_log[-1].source == "user"


def test_merge_moves_contact_roles_and_marks_the_loser(sandbox: Sandbox, sf: Salesforce) -> None:
    master, loser = sandbox.seeded.contact_ids["c10"], sandbox.seeded.contact_ids["c11"]
    sandbox.org.merge(master, loser)
    merged = sf.query_all(f"SELECT Id, IsDeleted, MasterRecordId FROM Contact WHERE Id = '{loser}'",
                          include_deleted=True)["records"][0]
    assert merged["IsDeleted"] is True and merged["MasterRecordId"] == master
    roles = sf.query(f"SELECT COUNT() FROM OpportunityContactRole WHERE ContactId = '{loser}'")
    assert roles["totalSize"] == 0
    assert sf.query(f"SELECT COUNT() FROM OpportunityContactRole WHERE ContactId = '{master}'")["totalSize"] > 0
    assert sandbox.org.undelete(loser) is False  # merged-away records cannot come back


def test_deleting_a_deal_deletes_its_roles(sandbox: Sandbox, sf: Salesforce) -> None:
    deal = sandbox.seeded.deal_ids["d0"]
    sandbox.org.delete(deal)
    assert sf.query(f"SELECT COUNT() FROM OpportunityContactRole WHERE OpportunityId = '{deal}'")["totalSize"] == 0
    assert sandbox.org.undelete(deal) is True


def test_seeding_fifty_thousand_contacts_and_deals_grows_linearly() -> None:
    def seed(n: int) -> Callable[[], object]:
        contacts, deals = make_contacts(n), make_deals(n, n)
        return lambda: SalesforceEmulator(clock=lambda: datetime(2025, 1, 1, tzinfo=UTC)).seed(contacts, deals)

    big = seed(50_000)
    started = time.perf_counter()
    seeded = big()
    elapsed = time.perf_counter() - started
    assert isinstance(seeded, SeedResult)
    assert len(seeded.contact_ids) == 50_000 and len(seeded.deal_ids) == 50_000
    assert len(seeded.contact_role_ids) == 100_000
    assert_linear(seed(5_000), elapsed, 10)
