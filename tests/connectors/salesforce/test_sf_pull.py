"""Pulls from the Salesforce sandbox over TLS: full and incremental, REST and Bulk 2.0, deletions, merges,
contact roles, leads, the Account fallback and query-locator restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Page
from connectors.salesforce.pull import LOG_KEY, RECONCILED_KEY
from connectors.salesforce.records import HighWater
from connectors.sandbox.salesforce import client_session
from core.models import Contact, Deal, DealStatus
from tests.connectors.salesforce.conftest import CONTACT_PROPS, DEAL_PROPS, Org, generated, pull_all


def plain(value: Any) -> Any:
    """A stored value as the connector types it (dates are midnight UTC datetimes)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def stored(org: Org, sobject: str) -> dict[str, dict[str, Any]]:
    store = org.emulator.store
    with store.lock:
        return {i: dict(r) for i, r in store.records[sobject].items()}


def people_of(org: Org) -> dict[str, tuple[str, ...]]:
    """Per opportunity, its live contact roles' contacts (primary first, then oldest, each once), or else the
    live contacts of its Account, oldest first."""
    roles: dict[str, list[dict[str, Any]]] = {}
    for role in stored(org, "OpportunityContactRole").values():
        if not role.get("IsDeleted"):
            roles.setdefault(role["OpportunityId"], []).append(role)
    by_account: dict[str, list[dict[str, Any]]] = {}
    for contact in stored(org, "Contact").values():
        if not contact["IsDeleted"] and contact.get("AccountId"):
            by_account.setdefault(contact["AccountId"], []).append(contact)
    out = {}
    for opp_id, opp in stored(org, "Opportunity").items():
        rows = sorted(roles.get(opp_id, []), key=lambda r: (not r["IsPrimary"], r["CreatedDate"], r["Id"]))
        people = [r["ContactId"] for r in rows] or [
            c["Id"] for c in sorted(by_account.get(opp.get("AccountId") or "", []),
                                    key=lambda c: (c["CreatedDate"], c["Id"]))]
        out[opp_id] = tuple(dict.fromkeys(people))
    return out


def check_contact(contact: Contact, record: dict[str, Any]) -> None:
    assert contact.email == record.get("Email")
    assert contact.created_at == record["CreatedDate"] and contact.updated_at == record["LastModifiedDate"]
    expected = {name: plain(record[name]) for name in CONTACT_PROPS if record.get(name) is not None}
    assert contact.properties == expected, contact.id


def check_deal(deal: Deal, record: dict[str, Any], people: tuple[str, ...]) -> None:
    status = DealStatus.WON if record["IsWon"] else DealStatus.LOST if record["IsClosed"] else DealStatus.OPEN
    assert (deal.amount, deal.stage, deal.status) == (record.get("Amount"), record["StageName"], status), deal.id
    assert deal.created_at == record["CreatedDate"]
    assert deal.closed_at == (plain(record["CloseDate"]) if status is not DealStatus.OPEN else None)
    assert deal.contact_ids == people, deal.id
    assert deal.properties == {n: record[n] for n in DEAL_PROPS if record.get(n) is not None}


def objects(cursor: dict[str, str]) -> dict[str, str]:
    """The per-object entries of a cursor (without the times of the delete-log read and the last sweep)."""
    return {k: v for k, v in cursor.items() if k not in (LOG_KEY, RECONCILED_KEY)}


def flat(pages: Sequence[Page]) -> tuple[dict[str, Contact], dict[str, Deal], list[str], list[str]]:
    contacts = [c for p in pages for c in p.contacts]
    deals = [d for p in pages for d in p.deals]
    by_contact, by_deal = {c.id: c for c in contacts}, {d.id: d for d in deals}
    assert len(by_contact) == len(contacts) and len(by_deal) == len(deals), "no record twice in one pull"
    return by_contact, by_deal, [i for p in pages for i in p.deleted_contact_ids], \
        [i for p in pages for i in p.deleted_deal_ids]


@pytest.fixture(scope="module")
def big(tls_dir: Path) -> Iterator[Org]:
    # Edits commit at once here (late commits: test_sf_consistency.py), so what a pull returns is exact.
    org = generated(50_000, tls_dir, seed=11, late_commits=0.0)
    yield org
    org.stop()
    assert org.emulator.internal_errors == []


@pytest.mark.slow
def test_50k_full_and_incremental_pulls_match_the_org_and_rest_equals_bulk(big: Org) -> None:
    rest, bulk = big.connector(), big.connector(bulk_threshold=0)
    contacts_in_org, deals_in_org = stored(big, "Contact"), stored(big, "Opportunity")
    people = people_of(big)

    # --- full pull, REST paging
    started = time.perf_counter()
    pages, cursor = pull_all(rest, None)
    rest_seconds = time.perf_counter() - started
    contacts, deals, gone_contacts, gone_deals = flat(pages)
    assert not rest.last_pull or not any(rest.last_pull.used_bulk.values())
    assert set(contacts) == set(contacts_in_org) and len(contacts) == 50_000
    assert set(deals) == set(deals_in_org) and len(deals) > 100_000
    assert gone_contacts == gone_deals == [] and all(p.problems == [] for p in pages)
    for contact_id, contact in contacts.items():
        check_contact(contact, contacts_in_org[contact_id])
    for deal_id, deal in deals.items():
        check_deal(deal, deals_in_org[deal_id], people.get(deal_id, ()))
    assert set(cursor) == {"Contact", "Opportunity", "OpportunityContactRole", LOG_KEY, RECONCILED_KEY}

    # --- full pull, Bulk API 2.0: identical records and cursor
    started = time.perf_counter()
    bulk_pages, bulk_cursor = pull_all(bulk, None)
    bulk_seconds = time.perf_counter() - started
    assert bulk.last_pull is not None and all(bulk.last_pull.used_bulk.values())
    bulk_contacts, bulk_deals, _, _ = flat(bulk_pages)
    assert bulk_contacts == contacts and bulk_deals == deals and objects(bulk_cursor) == objects(cursor)
    print(f"\nfull pull of 50,000 contacts + {len(deals):,} opportunities: REST {rest_seconds:.1f} s, "
          f"Bulk 2.0 {bulk_seconds:.1f} s")

    # --- people and deals change: edits in a tight loop (many share a second), deletions, merges, roles
    edit_start = datetime.now(UTC).replace(microsecond=0)
    org = big.emulator
    contact_ids, opp_ids = big.ids("Contact"), big.ids("Opportunity")
    edited = contact_ids[::16][:3_000]
    for contact_id in edited:
        org.edit(contact_id, {"Title": "Chief Edits Officer"})
    for contact_id in edited[:5]:
        org.delete(contact_id)
    roles = stored(big, "OpportunityContactRole")
    with_roles = sorted({r["ContactId"] for r in roles.values()} - set(edited))
    org.merge(with_roles[0], with_roles[1])
    org.merge(with_roles[2], with_roles[3], with_roles[4])
    for opp_id in opp_ids[::300]:
        org.edit(opp_id, {"Name": "renegotiated"})
    for opp_id in opp_ids[1:4]:
        org.delete(opp_id)
    touched_opps, touched_people = set(opp_ids[::300]) | set(opp_ids[1:4]), set(with_roles[:5]) | set(edited[:5])
    quiet = [r for r in roles.values() if r["OpportunityId"] not in touched_opps
             and r["ContactId"] not in touched_people]
    moved = quiet[10]
    # A role whose opportunity keeps other people: without any role the deal falls back to its Account's
    # contacts, which may include the dropped one again.
    contacts_per_opp: dict[str, set[str]] = {}
    for role in roles.values():
        contacts_per_opp.setdefault(role["OpportunityId"], set()).add(role["ContactId"])
    dropped = next(r for r in quiet[20:] if len(contacts_per_opp[r["OpportunityId"]]) > 1
                   and r["OpportunityId"] != moved["OpportunityId"]
                   and sum(o["OpportunityId"] == r["OpportunityId"] and o["ContactId"] == r["ContactId"]
                           for o in roles.values()) == 1)
    org.edit(moved["Id"], {"ContactId": with_roles[10]})
    org.delete(dropped["Id"])

    contacts_in_org, deals_in_org = stored(big, "Contact"), stored(big, "Opportunity")
    people = people_of(big)
    changed = {i for i, r in contacts_in_org.items() if r["SystemModstamp"] >= edit_start}
    live_changed = {i for i in changed if not contacts_in_org[i]["IsDeleted"]}
    touched_deals = {i for i, r in deals_in_org.items() if r["SystemModstamp"] >= edit_start} | {
        r["OpportunityId"] for r in stored(big, "OpportunityContactRole").values() if r["SystemModstamp"] >= edit_start}
    live_deals = {i for i in touched_deals if not deals_in_org[i]["IsDeleted"]}
    assert len(live_changed) == 3_000 - 5 + 2 and moved["OpportunityId"] in live_deals

    # --- incremental, REST: exactly what changed, deletions and merged-away contacts reported as deleted
    pages, after = pull_all(rest, cursor)
    contacts, deals, gone_contacts, gone_deals = flat(pages)
    assert set(contacts) == live_changed
    assert sorted(gone_contacts) == sorted(changed - live_changed)
    assert set(with_roles[1:2] + with_roles[3:5]) <= set(gone_contacts)
    # The role deleted by itself is hard-deleted: only the delete log tells, and then every live opportunity is
    # read again with its roles (the mirror stores the unchanged ones once).
    assert set(deals) == {i for i, r in deals_in_org.items() if not r["IsDeleted"]} >= live_deals
    assert sorted(gone_deals) == sorted(touched_deals - live_deals)
    for contact_id, contact in contacts.items():
        check_contact(contact, contacts_in_org[contact_id])
    for deal_id, deal in deals.items():
        check_deal(deal, deals_in_org[deal_id], people.get(deal_id, ()))
    assert with_roles[10] in deals[moved["OpportunityId"]].contact_ids
    assert dropped["ContactId"] not in deals[dropped["OpportunityId"]].contact_ids

    # --- incremental, Bulk API 2.0 from its own cursor: the same records
    bulk_pages, bulk_after = pull_all(bulk, bulk_cursor)
    b_contacts, b_deals, b_gone_contacts, b_gone_deals = flat(bulk_pages)
    assert (b_contacts, b_deals) == (contacts, deals) and objects(bulk_after) == objects(after)
    assert sorted(b_gone_contacts) == sorted(gone_contacts) and sorted(b_gone_deals) == sorted(gone_deals)

    # --- a pull stopped after any page resumes from that page's cursor: nothing skipped, nothing twice
    for stop in (1, 2):
        partial = dict(cursor)
        for page in pages[:stop]:
            partial.update(page.cursor)
        resumed, _ = pull_all(rest, partial)
        first = {c.id for p in pages[:stop] for c in p.contacts}
        rest_ids = [c.id for p in resumed for c in p.contacts]
        assert first.isdisjoint(rest_ids) and first | set(rest_ids) == live_changed

    # --- nothing changed since: nothing comes back
    pages, final = pull_all(rest, after)
    assert flat(pages)[:2] == ({}, {}) and objects(final) == objects(after)


def test_incremental_pull_of_leads_reports_converted_ones_as_deleted(tls_dir: Path) -> None:
    org = generated(200, tls_dir, deals=False)
    try:
        sf = _client(org)
        leads = [sf.Lead.create({"LastName": f"Lead {i}", "Company": f"Co {i}", "Email": f"lead{i}@example.com",
                                 "Title": "Buyer"})["id"] for i in range(30)]
        conn = org.connector(objects=("Contact", "Lead"))
        pages, cursor = pull_all(conn, None)
        contacts, _, _, _ = flat(pages)
        assert set(leads) <= set(contacts) and len(contacts) == 230
        assert contacts[leads[0]].properties["Title"] == "Buyer" and "Lead" in cursor
        org.emulator.edit(leads[1], {"IsConverted": True})
        org.emulator.edit(leads[2], {"Title": "CFO"})
        pages, _ = pull_all(conn, cursor)
        contacts, _, gone, _ = flat(pages)
        assert set(contacts) == {leads[2]} and gone == [leads[1]]
    finally:
        org.stop()


def test_opportunity_without_contact_roles_falls_back_to_its_accounts_contacts(small: Org) -> None:
    sf = _client(small)
    contact = stored(small, "Contact")[small.ids("Contact")[0]]
    colleagues = [c["Id"] for c in sorted(stored(small, "Contact").values(), key=lambda c: (c["CreatedDate"], c["Id"]))
                  if c["AccountId"] == contact["AccountId"] and not c["IsDeleted"]]
    opp = sf.Opportunity.create({"Name": "No roles", "StageName": "Prospecting", "CloseDate": "2026-12-01",
                                 "AccountId": contact["AccountId"], "Amount": 10})["id"]
    lonely = sf.Opportunity.create({"Name": "No account", "StageName": "Prospecting", "CloseDate": "2026-12-01"})["id"]
    _, deals, _, _ = flat(pull_all(small.connector(), None)[0])
    assert deals[opp].contact_ids == tuple(colleagues) and contact["Id"] in colleagues
    assert deals[lonely].contact_ids == () and deals[opp].status is DealStatus.OPEN and deals[opp].closed_at is None


def test_released_query_locator_restarts_from_the_cursor(small: Org) -> None:
    conn = small.connector(page_size=200)
    other = _client(small)
    started: list[str] = []
    first_page = conn.reader.query_page

    def counting(operation: str, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        started.append(operation)
        return first_page(operation, soql, include_deleted=include_deleted)

    conn.reader.query_page = counting  # type: ignore[method-assign]
    pulled: list[str] = []
    pages = conn.pull(None)
    for number, page in enumerate(pages):
        pulled.extend(c.id for c in page.contacts)
        if number == 0:
            # The user's 10 open cursors are taken by other queries: ours is released.
            for _ in range(11):
                other.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=200"})
    assert sorted(pulled) == sorted(small.ids("Contact")) and len(pulled) == len(set(pulled))
    assert started.count("query Contact") == 2, "the query was started again after INVALID_QUERY_LOCATOR"


def test_unknown_properties_are_reported_not_fatal(small: Org) -> None:
    conn = small.connector(contact_props=["Title", "No_Such_Field__c"], deal_props=["Nope"])
    pages, _ = pull_all(conn, None)
    problems = [p for page in pages for p in page.problems]
    assert any("No_Such_Field__c" in p for p in problems) and any("'Nope'" in p for p in problems)
    assert sum(len(p.contacts) for p in pages) == 500


def test_high_water_cursor_skips_only_the_versions_delivered() -> None:
    t = datetime(2026, 3, 1, 12, 0, 5, 250_000, tzinfo=UTC)
    state = HighWater(None)
    assert state.where() == "" and state.fresh(t, "003A", ordered=True)
    assert state.fresh(t.replace(microsecond=900_000), "003B", ordered=True)
    value = state.value()
    assert value == "2026-03-01T12:00:05Z|003A.250,003B.900"
    resumed = HighWater(value)
    assert resumed.where() == "SystemModstamp >= 2026-03-01T12:00:05Z"
    assert not resumed.fresh(t, "003A", ordered=True) and resumed.fresh(t, "003C", ordered=True)
    # Changed again within the same second: another millisecond, another version, delivered again.
    assert resumed.fresh(t.replace(microsecond=950_000), "003B", ordered=True)
    unordered = HighWater(value)
    later = t.replace(second=9)
    assert unordered.fresh(later, "003D", ordered=False) and not unordered.fresh(t, "003A", ordered=False)
    assert unordered.value() == "2026-03-01T12:00:09Z|003D.250"


def _client(org: Org) -> Any:
    from simple_salesforce.api import Salesforce

    return Salesforce(instance_url=org.server.url, session_id=org.emulator.session_id,
                      session=client_session(org.server), version="59.0")


def test_parent_account_fields_come_through_rest_and_bulk_alike(small: Org) -> None:
    props = ["Title", "account.industry", "Account.NumberOfEmployees", "Account.No_Such__c", "Owner.Nope"]
    rest = small.connector(contact_props=props)
    bulk = small.connector(contact_props=props, bulk_threshold=0)
    pages, _ = pull_all(rest, None)
    contacts, _, _, _ = flat(pages)
    accounts = stored(small, "Account")
    with_account = 0
    for contact_id, record in stored(small, "Contact").items():
        account = accounts.get(record.get("AccountId") or "")
        expected = {"Title": record.get("Title"),
                    "account.industry": account and account.get("Industry"),
                    "Account.NumberOfEmployees": account and account.get("NumberOfEmployees")}
        assert contacts[contact_id].properties == {k: v for k, v in expected.items() if v is not None}
        with_account += bool(account and account.get("Industry"))
    assert with_account > 100, "the generated data gives most contacts a company with an industry"
    problems = [p for page in pages for p in page.problems]
    assert len(problems) == 2 and any("Account.No_Such__c" in p for p in problems)
    bulk_contacts, _, _, _ = flat(pull_all(bulk, None)[0])
    assert bulk_contacts == contacts
