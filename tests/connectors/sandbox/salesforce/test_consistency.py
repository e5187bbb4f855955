"""When changes become readable: transactions that commit after their SystemModstamp, contact roles that are
hard-deleted, and a Recycle Bin / delete log that keeps deletions 15 days (or until it is emptied)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.sandbox.faults import FaultInjector
from connectors.sandbox.salesforce.values import format_datetime
from connectors.sandbox.server import SandboxServer
from tests.connectors.sandbox.salesforce.conftest import Sandbox, Switch, plug


class Clock:
    """The org's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def org(shared_server: tuple[SandboxServer, Switch, FaultInjector], clock: Clock) -> Iterator[Sandbox]:
    box = plug(shared_server, clock=clock, session_ttl=None, late_commits=0.0)
    yield box
    assert box.org.internal_errors == []


def soql_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(sf: Salesforce, soql: str, *, deleted: bool = False) -> list[dict[str, Any]]:
    return list(sf.query_all(soql, include_deleted=deleted)["records"])


def test_a_late_edit_is_read_only_after_its_commit_with_its_earlier_stamp(org: Sandbox, clock: Clock) -> None:
    sf = org.client()
    slow, quick = org.contact_ids()[:2]
    started = clock.now
    org.org.edit(slow, {"Title": "Slow trigger"}, commit_after=30)
    clock.advance(seconds=10)
    org.org.edit(quick, {"Title": "Quick"})
    window = f"SELECT Id, Title, SystemModstamp FROM Contact WHERE SystemModstamp >= {soql_time(started)}"
    assert [r["Id"] for r in rows(sf, window)] == [quick], "the open transaction is not readable yet"
    assert rows(sf, f"SELECT Title FROM Contact WHERE Id = '{slow}'")[0]["Title"] != "Slow trigger"
    clock.advance(seconds=21)
    late = {r["Id"]: r for r in rows(sf, window)}
    assert late[slow]["Title"] == "Slow trigger"
    # Stamped when it ran, before the record a reader had already seen: below a cursor at that record.
    assert late[slow]["SystemModstamp"] == format_datetime(started)
    assert late[slow]["SystemModstamp"] < late[quick]["SystemModstamp"]


def test_a_late_insert_appears_with_its_earlier_created_date(org: Sandbox, clock: Clock) -> None:
    sf = org.client()
    started = clock.now
    new_id = org.org.create("Contact", {"LastName": "Imported", "Email": "late@example.com"}, commit_after=45)
    assert rows(sf, f"SELECT Id FROM Contact WHERE Id = '{new_id}'") == []
    clock.advance(seconds=46)
    found = rows(sf, f"SELECT Id, CreatedDate, SystemModstamp FROM Contact WHERE Id = '{new_id}'")
    assert found and found[0]["CreatedDate"] == found[0]["SystemModstamp"] == format_datetime(started)


def test_by_default_a_share_of_person_edits_commit_seconds_to_minutes_late(
        shared_server: tuple[SandboxServer, Switch, FaultInjector], clock: Clock) -> None:
    box = plug(shared_server, clock=clock, session_ttl=None)
    sf = box.client()
    started = clock.now
    edited = box.contact_ids()[:300]
    for contact_id in edited:
        box.org.edit(contact_id, {"Title": "Edited"})
    window = f"SELECT Id FROM Contact WHERE SystemModstamp >= {soql_time(started)}"
    visible = {r["Id"] for r in rows(sf, window)}
    assert 0 < len(edited) - len(visible) < 30, "a few percent are still committing"
    clock.advance(seconds=121)
    assert {r["Id"] for r in rows(sf, window)} == set(edited)


def test_a_contact_role_deleted_directly_is_hard_deleted_and_only_get_deleted_knows_it(
        org: Sandbox, clock: Clock) -> None:
    sf = org.client()
    roles = rows(sf, "SELECT Id, OpportunityId FROM OpportunityContactRole")
    direct, cascaded = roles[0], next(r for r in roles if r["OpportunityId"] != roles[0]["OpportunityId"])
    started = clock.now
    clock.advance(minutes=1)
    assert org.org.delete(direct["Id"]) and org.org.delete(cascaded["OpportunityId"])
    clock.advance(minutes=5)
    everything = {r["Id"]: r for r in rows(sf, "SELECT Id, IsDeleted FROM OpportunityContactRole", deleted=True)}
    assert direct["Id"] not in everything, "no Recycle Bin for a contact role deleted by itself"
    assert everything[cascaded["Id"]]["IsDeleted"] is True, "roles of a deleted opportunity go to the bin with it"
    log = sf.OpportunityContactRole.deleted(started, clock.now)
    assert {r["id"] for r in log["deletedRecords"]} >= {direct["Id"], cascaded["Id"]}
    assert set(log) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}


def test_deletions_expire_after_15_days_and_get_deleted_refuses_an_older_start(org: Sandbox, clock: Clock) -> None:
    sf = org.client()
    opp = rows(sf, "SELECT Id FROM Opportunity LIMIT 1")[0]["Id"]
    before = clock.now
    clock.advance(hours=1)
    org.org.delete(opp)
    deleted = f"SELECT Id FROM Opportunity WHERE Id = '{opp}'"
    clock.advance(days=14)
    assert rows(sf, deleted, deleted=True), "still in the Recycle Bin on day 14"
    assert [r["id"] for r in sf.Opportunity.deleted(before, clock.now)["deletedRecords"]] == [opp]
    clock.advance(days=2)
    assert rows(sf, deleted, deleted=True) == [], "physically deleted after 15 days"
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Opportunity.deleted(before, clock.now)
    assert refused.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    recent = sf.Opportunity.deleted(clock.now - timedelta(days=1), clock.now)
    assert recent["deletedRecords"] == [] and recent["earliestDateAvailable"] > format_datetime(before)
    with pytest.raises(SalesforceMalformedRequest):
        sf.Opportunity.deleted(clock.now - timedelta(seconds=30), clock.now)  # under a minute


def test_emptying_the_recycle_bin_moves_the_earliest_date_available(org: Sandbox, clock: Clock) -> None:
    sf = org.client()
    contact = org.contact_ids()[5]
    before = clock.now
    clock.advance(hours=2)
    org.org.delete(contact)
    clock.advance(hours=1)
    assert org.org.empty_recycle_bin() >= 1
    assert rows(sf, f"SELECT Id FROM Contact WHERE Id = '{contact}'", deleted=True) == []
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Contact.deleted(before, clock.now)
    assert "earliestDateAvailable" in refused.value.content[0]["message"]
    after = sf.Contact.deleted(clock.now - timedelta(minutes=30), clock.now)
    assert after["earliestDateAvailable"] == format_datetime(before + timedelta(hours=2))
