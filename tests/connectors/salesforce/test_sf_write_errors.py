"""Salesforce write errors as a real org sends them: locks raised inside triggers, converted leads, duplicate
rules, Bulk ingest jobs that fail part-way, Bulk jobs still queued at the run's deadline, and job clean-up."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from connectors.base import FieldUpdate
from connectors.salesforce import SalesforceConnector
from connectors.salesforce.writer import record_result
from connectors.sandbox.faults import FaultRule
from connectors.sandbox.salesforce import DuplicateRule
from core.errors import TimeBudgetReached
from tests.connectors.salesforce.conftest import DATA, SPECS, Org, generated, pull_all

COLLECTIONS = f"{DATA}/composite/sobjects"
INGEST = f"{DATA}/jobs/ingest"
PATCH = "PATCH /composite/sobjects"
SCORE = "CLM_Lead_Score__c"


def scores(ids: Sequence[str], offset: float = 0.5) -> list[FieldUpdate]:
    return [FieldUpdate(i, {"lead_score": n % 90 + offset}) for n, i in enumerate(ids)]


@pytest.fixture
def org(tls_dir: Path) -> Iterator[Org]:
    """300 generated contacts with their deals."""
    o = generated(300, tls_dir)
    yield o
    o.stop()
    assert o.emulator.internal_errors == []


def ready(org: Org, **options: Any) -> SalesforceConnector:
    """A connector whose user may write our fields (the org's admin created and granted them)."""
    conn = org.connector(session_id=org.emulator.admin_session_id, **options)
    conn.ensure_fields(SPECS)
    org.emulator.reset_counters()
    return conn


def test_a_lock_raised_inside_a_trigger_is_retried_and_written(org: Org) -> None:
    conn = ready(org)
    ids = org.ids("Contact")[:50]
    # Ten record saves fail because a rollup trigger could not lock the parent Account.
    fault = org.emulator.add_fault(FaultRule(kind="trigger_lock", path_prefix=COLLECTIONS, count=10))
    results = conn.write(scores(ids))
    assert fault.fired == 10
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok][:3]
    assert conn.transport.stats.reasons["UNABLE_TO_LOCK_ROW"] >= 1
    assert org.emulator.max_writes_per_field() == 1 and org.emulator.total_writes() == 50


def test_trigger_locks_in_a_bulk_job_are_resent_and_written(org: Org) -> None:
    conn = ready(org)
    ids = org.ids("Contact")[:120]
    org.emulator.add_fault(FaultRule(kind="trigger_lock", method="PUT", path_prefix=INGEST, count=7))
    results = conn.write_bulk(scores(ids))
    assert all(r.ok for r in results)
    assert org.emulator.request_counts[PATCH] == 1  # the seven locked rows, once, through sObject Collections
    assert org.emulator.max_writes_per_field() == 1 and org.emulator.total_writes() == 120


def test_a_trigger_that_refuses_for_another_reason_stays_a_rejection_that_names_the_trigger() -> None:
    error = {"statusCode": "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
             "message": "ClmTrigger: execution of AfterUpdate caused by: System.NullPointerException", "fields": []}
    result = record_result("003000000000001AAA", [error], "CLM_Integration")
    assert not result.transient and not result.gone
    assert "a trigger or flow in the org refused the update" in (result.reason or "")


def test_a_lead_converted_since_the_pull_is_gone_not_rejected(org: Org) -> None:
    conn = ready(org, objects=("Contact", "Lead"))
    store = org.emulator.store
    leads = [store.create(store.objects["Lead"], {"LastName": f"Lead {n}", "Company": "Acme"})["Id"]
             for n in range(3)]
    with store.lock:
        store.records["Lead"][leads[0]]["IsConverted"] = True  # converted in the UI between our pull and write
    results = conn.write(scores(leads))
    assert results[0].gone and not results[0].ok and "CANNOT_UPDATE_CONVERTED_LEAD" in (results[0].reason or "")
    assert results[1].ok and results[2].ok


def _twins(org: Org) -> list[str]:
    """Two contacts sharing one e-mail address (a duplicate pair the org already holds)."""
    first, second = org.ids("Contact")[:2]
    store = org.emulator.store
    with store.lock:
        store.records["Contact"][second]["Email"] = store.records["Contact"][first]["Email"]
    return [first, second]


def by_email(record: Mapping[str, Any]) -> str | None:
    email = record.get("Email")
    return str(email).lower() if email else None


def test_a_duplicate_rule_that_alerts_does_not_stop_our_writes(org: Org) -> None:
    conn = ready(org)
    twins = _twins(org)
    org.emulator.add_duplicate_rule(DuplicateRule("Contact", "Standard_Contact", by_email, action="allow"))
    assert all(r.ok for r in conn.write(scores(twins)))
    # Bulk rows cannot carry the header: they are resent through sObject Collections, which can.
    assert all(r.ok for r in conn.write_bulk(scores(twins, offset=0.75)))
    assert org.emulator.max_writes_per_field() == 2  # each twin: one REST write, one resent Bulk row


def test_a_duplicate_rule_that_blocks_is_a_rejection_that_says_what_to_do(org: Org) -> None:
    conn = ready(org)
    twins = _twins(org)
    other = org.ids("Contact")[2]
    org.emulator.add_duplicate_rule(DuplicateRule("Contact", "Blocking", by_email, action="block",
                                                  message="You're creating a duplicate record."))
    results = conn.write(scores([*twins, other]))
    for result in results[:2]:
        assert not result.ok and not result.transient and not result.gone
        assert "DUPLICATES_DETECTED" in (result.reason or "") and "merge the duplicates" in (result.reason or "")
    assert results[2].ok


def test_a_failed_ingest_job_keeps_what_it_wrote_and_only_the_rest_is_sent_again(tls_dir: Path) -> None:
    org = generated(600, tls_dir, deals=False)
    try:
        conn = ready(org)
        # The third internal batch of 200 fails for good: 400 rows are written, the last 200 never processed.
        fault = org.emulator.add_fault(FaultRule(kind="ingest_failure", method="PUT", path_prefix=INGEST, after=2,
                                                 count=1))
        results = conn.write_bulk(scores(org.ids("Contact")))
    finally:
        org.stop()
    assert fault.fired == 1
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok][:3]
    # 400 rows went in through the job and 200 through one sObject Collections call; none of them twice.
    assert org.emulator.request_counts[PATCH] == 1
    assert org.emulator.max_writes_per_field() == 1 and org.emulator.total_writes() == 600


def test_a_queued_bulk_query_job_is_aborted_at_the_deadline_and_deleted(tls_dir: Path) -> None:
    org = generated(300, tls_dir, bulk_delay=60.0)  # the job stays queued for a minute
    try:
        conn = ready(org, bulk_threshold=10)
        conn.deadline = time.monotonic() + 0.5
        started = time.monotonic()
        with pytest.raises(TimeBudgetReached, match="time budget ran out"):
            pull_all(conn, None)
        waited = time.monotonic() - started
        jobs = list(org.emulator.bulk.jobs.values())
    finally:
        org.stop()
    assert waited < 5, f"waited {waited:.1f}s for a job queued for 60s"
    assert jobs == [], "the aborted job was deleted"


def test_a_queued_bulk_ingest_job_is_aborted_at_the_deadline_and_not_resent(tls_dir: Path) -> None:
    org = generated(300, tls_dir, bulk_delay=60.0)
    try:
        conn = ready(org)
        conn.deadline = time.monotonic() + 0.5
        started = time.monotonic()
        results = conn.write_bulk(scores(org.ids("Contact")[:100]))
        waited = time.monotonic() - started
        jobs = list(org.emulator.bulk.jobs.values())
    finally:
        org.stop()
    assert waited < 5
    assert all(r.transient and not r.ok and "Aborted" in (r.reason or "") for r in results)
    assert org.emulator.request_counts[PATCH] == 0 and org.emulator.total_writes() == 0
    assert jobs == []


def test_bulk_jobs_are_deleted_once_read(org: Org) -> None:
    conn = ready(org, bulk_threshold=10)
    pages, _ = pull_all(conn, None)
    assert sum(len(p.contacts) for p in pages) == len(org.ids("Contact"))
    assert conn.reader.bulk_jobs >= 2
    assert all(r.ok for r in conn.write_bulk(scores(org.ids("Contact")[:50])))
    assert org.emulator.bulk.jobs == {}


def test_bulk_results_are_read_in_parallel_pages_and_equal_the_rest_pull(org: Org) -> None:
    org.emulator.bulk.result_page_rows = 40  # 300 contacts: 8 result pages, listed five at a time
    rest_pages, _ = pull_all(org.connector(), None)
    org.emulator.reset_counters()
    bulk_pages, _ = pull_all(org.connector(bulk_threshold=10), None)
    assert org.emulator.request_counts["GET /jobs/query/{id}/resultPages"] >= 2
    assert org.emulator.request_counts["GET /jobs/query/{id}/results"] >= 8
    contacts = sorted((c.id, c.email, c.properties.get("Title")) for p in bulk_pages for c in p.contacts)
    assert contacts == sorted((c.id, c.email, c.properties.get("Title")) for p in rest_pages for c in p.contacts)
    assert len(contacts) == len(org.ids("Contact"))
