"""Writes to the Salesforce sandbox: sObject Collections batches under locks, validation rules, expired sessions,
deleted records, field-level security and whole-request errors; Bulk API 2.0 ingest against the same inputs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import FieldUpdate, WriteResult
from connectors.salesforce import SalesforceConnector
from connectors.sandbox.faults import FaultRule
from connectors.sandbox.salesforce import ValidationRule
from core.errors import AuthError, ConnectorError
from tests.connectors.salesforce.conftest import DATA, Org, generated

COLLECTIONS = f"{DATA}/composite/sobjects"
PATCH = "PATCH /composite/sobjects"
SCORE, STAGE, COMPUTED = "CLM_Lead_Score__c", "CLM_Stage__c", "CLM_Computed_At__c"
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
CAP_MESSAGE = "A lead score above 97 needs a manager's approval"


def score_cap() -> ValidationRule:
    """A validation rule refusing scores above 97 (about 2% of the updates below)."""
    return ValidationRule("Contact", "Score_Cap", lambda r: (r.get(SCORE) or 0) > 97, CAP_MESSAGE, SCORE)


def updates(ids: Sequence[str]) -> list[FieldUpdate]:
    """Distinct values per record: a score from 0.25 to 99.25, alternating stages, one timestamp."""
    return [FieldUpdate(i, {"lead_score": n % 100 + 0.25, "stage": "lead" if n % 2 else "customer",
                            "computed_at": WHEN}) for n, i in enumerate(ids)]


def write_all(conn: SalesforceConnector, batch: Sequence[FieldUpdate]) -> list[WriteResult]:
    """Write as the sync runner does: batches of ``batch_size`` through the transport's bounded thread pool."""
    size = conn.batch_size
    chunks = [batch[i:i + size] for i in range(0, len(batch), size)]
    return [r for results in conn.transport.map(conn.write, chunks) for r in results]


def calls(org: Org, key: str = PATCH) -> int:
    return org.emulator.request_counts[key]


def value(org: Org, record_id: str, field: str) -> Any:
    record = org.emulator.record(record_id)
    assert record is not None
    return record.get(field)


def writes_per_record(org: Org) -> dict[str, dict[str, int]]:
    """``emulator.writes_to`` for every record at once (it scans the whole write log per call)."""
    out: dict[str, dict[str, int]] = {}
    with org.emulator.store.lock:
        for (record_id, field), count in org.emulator.store.writes.items():
            out.setdefault(record_id, {})[field] = count
    return out


def test_20k_writes_under_locks_validation_and_an_expired_session_lose_and_duplicate_nothing(
        tls_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    org = generated(20_000, tls_dir, deals=False, fault_seed=7)
    try:
        conn = org.connector(auth="client_credentials", monkeypatch=monkeypatch)
        org.admin_ensure(conn)
        conn.client.read_limits()  # logged in before the writes
        org.emulator.reset_counters()
        logins = conn.client.logins
        org.emulator.add_validation_rule(score_cap())
        # A quarter of record saves find the row locked: most clear on a retry, ~1.6% stay locked all 3 times.
        locks = org.emulator.add_fault(FaultRule(kind="lock_row", path_prefix=COLLECTIONS, rate=0.25))
        expiry = org.emulator.add_fault(FaultRule(kind="expired_session", path_prefix=COLLECTIONS, after=40, count=1))
        ids = org.ids("Contact")
        batch = updates(ids)
        results = write_all(conn, batch)
    finally:
        org.stop()
    assert org.emulator.internal_errors == []
    assert [r.record_id for r in results] == ids
    written = [r for r in results if r.ok]
    locked = [r for r in results if r.transient]
    refused = [r for r in results if not r.ok and not r.transient]
    assert len(written) + len(locked) + len(refused) == 20_000

    # Every record is either written with its value, exactly once per field...
    assert len(written) > 19_000
    writes = writes_per_record(org)
    stored = org.emulator.store.records["Contact"]
    for result, update in zip(results, batch, strict=True):
        record = stored[result.record_id]
        if result.ok:
            assert (record[SCORE], record[STAGE]) == (update.values["lead_score"], update.values["stage"])
            assert writes[result.record_id] == {SCORE: 1, STAGE: 1, COMPUTED: 1}
        else:
            # ...or reported with its reason, and untouched.
            assert record.get(SCORE) is None and result.record_id not in writes
    assert org.emulator.max_writes_per_field() == 1 and org.emulator.total_writes() == 3 * len(written)

    # Locks: the persistent ones are transient (the next run retries them), the others were retried and went in.
    assert locked and all(r.reason and r.reason.startswith("UNABLE_TO_LOCK_ROW") and not r.gone for r in locked)
    assert locks.fired > 3 * len(locked), "some locked records cleared on a retry"
    assert conn.transport.stats.reasons["UNABLE_TO_LOCK_ROW"] > 0

    # Validation: exactly the capped scores that were not stuck behind a lock, with the rule's message and field.
    capped = {u.record_id for u in batch if u.values["lead_score"] > 97}
    assert {r.record_id for r in refused} == capped - {r.record_id for r in locked}
    assert all(r.field == SCORE and CAP_MESSAGE in (r.reason or "") and "FIELD_CUSTOM_VALIDATION_EXCEPTION"
               in (r.reason or "") and not r.gone for r in refused)

    # The session expired once mid-run: one fresh login, and the run went on.
    assert expiry.fired == 1 and conn.client.logins == logins + 1


def test_locks_that_clear_are_retried_and_locks_that_persist_are_reported_transient(small: Org) -> None:
    conn = small.connector()
    small.admin_ensure(conn)
    ids = small.ids("Contact")
    small.emulator.reset_counters()
    clearing = small.emulator.add_fault(FaultRule(kind="lock_row", path_prefix=COLLECTIONS, count=5))
    first = conn.write(updates(ids[:20]))
    assert clearing.fired == 5 and all(r.ok for r in first)
    assert calls(small) == 2, "only the 5 locked records were sent again, once"
    assert small.emulator.max_writes_per_field() == 1

    small.emulator.clear_faults()
    small.emulator.add_fault(FaultRule(kind="lock_row", path_prefix=COLLECTIONS))
    second = conn.write(updates(ids[20:30]))
    assert all(not r.ok and r.transient and not r.gone for r in second)
    assert all("still locked after 2 retries" in (r.reason or "") for r in second)
    assert calls(small) == 2 + 3, "first try and two retries, then the batch is given up"
    assert all(small.emulator.writes_to(i) == {} for i in ids[20:30])


def test_deleted_merged_and_foreign_records(small: Org) -> None:
    conn = small.connector()
    small.admin_ensure(conn)
    ids = small.ids("Contact")
    opportunity = small.ids("Opportunity")[0]
    small.emulator.delete(ids[1])
    small.emulator.merge(ids[3], ids[4])
    # Someone deletes the record between our read and our write.
    small.emulator.add_fault(FaultRule(kind="deleted_before_write", path_prefix=COLLECTIONS, after=6, count=1))
    batch = updates(ids[:10])
    lead_like = "00Q" + ids[0][3:]
    batch += [FieldUpdate(opportunity, {"lead_score": 1.0}), FieldUpdate(lead_like, {"lead_score": 1.0}),
              FieldUpdate("003Hn00000zzzzz", {"lead_score": 1.0})]
    small.emulator.reset_counters()
    results = conn.write(batch)
    by_id = {r.record_id: r for r in results}
    assert [r.record_id for r in results] == [u.record_id for u in batch]
    for gone in (ids[1], ids[4], ids[6]):
        assert not by_id[gone].ok and by_id[gone].gone and not by_id[gone].transient, gone
    assert "ENTITY_IS_DELETED" in (by_id[ids[1]].reason or "")
    assert small.emulator.writes_to(ids[6]) == {}
    # Ids of another object are refused before sending, saying what is wrong.
    for foreign, prefix in ((opportunity, "006"), (lead_like, "00Q")):
        result = by_id[foreign]
        assert not result.ok and not result.gone and not result.transient
        assert result.reason and f"not the Id of a Contact (prefix '{prefix}')" in result.reason
    # An Id of the right object that does not exist is gone too (it never will be writable).
    assert by_id["003Hn00000zzzzz"].gone
    assert [r.ok for r in results[:10]] == [i not in (1, 4, 6) for i in range(10)]
    assert calls(small) == 1


def test_a_field_without_edit_access_is_refused_with_the_fields_ensure_hint(small: Org) -> None:
    conn = small.connector()
    small.admin_ensure(conn)
    ids = small.ids("Contact")
    assert all(r.ok for r in conn.write([FieldUpdate(ids[0], {"grade": "A"})]))
    # An admin removes edit access on one of our fields (read stays).
    store = small.emulator.store
    row = next(r for r in store.records["FieldPermissions"].values() if r["Field"] == "Contact.CLM_Grade__c")
    small.emulator.edit(row["Id"], {"PermissionsEdit": False})
    assert small.emulator.field_access("Contact", "CLM_Grade__c") == (True, False)
    batch = [FieldUpdate(i, {"grade": "B", "lead_score": 5.0} if n % 2 else {"lead_score": 5.0})
             for n, i in enumerate(ids[:10])]
    results = conn.write(batch)
    for n, result in enumerate(results):
        if n % 2:
            assert not result.ok and not result.transient and result.field == "CLM_Grade__c"
            assert result.reason and result.reason.startswith("INVALID_FIELD_FOR_INSERT_UPDATE")
            assert "cannot edit CLM_Grade__c" in result.reason and "`clm fields ensure`" in result.reason
            assert value(small, result.record_id, SCORE) is None, "a refused record is not saved at all"
        else:
            assert result.ok and value(small, result.record_id, SCORE) == 5.0
    # The hint works: ensure grants edit again and the same writes go through.
    statuses = {s.crm_name: s for s in small.admin_ensure(conn)}
    assert statuses["Contact.CLM_Grade__c"].action == "updated"
    assert small.emulator.field_access("Contact", "CLM_Grade__c") == (True, True)
    assert all(r.ok for r in conn.write(batch))
    assert value(small, ids[1], "CLM_Grade__c") == "B"


def test_a_whole_request_400_isolates_the_bad_records_in_few_calls(small: Org) -> None:
    conn = small.connector()
    small.admin_ensure(conn)
    ids = small.ids("Contact")
    store = small.emulator.store
    contact = store.object("Contact")
    assert contact is not None
    store.remove_field(contact, "CLM_Fit_Score__c")  # an admin deleted one of our fields
    batch = [FieldUpdate(i, {"lead_score": 7.0, **({"fit_score": 1.0} if n % 25 == 3 else {})})
             for n, i in enumerate(ids[:200])]
    small.emulator.reset_counters()
    results = conn.write(batch)
    bad = {u.record_id for u in batch if "fit_score" in u.values}
    assert len(bad) == 8
    assert calls(small) == 2, "one refused request, then one without the records it named"
    for result in results:
        if result.record_id in bad:
            assert not result.ok and not result.transient and result.field == "CLM_Fit_Score__c"
            assert result.reason and result.reason.startswith("INVALID_FIELD: No such column 'CLM_Fit_Score__c'")
            assert "`clm fields ensure`" in result.reason
        else:
            assert result.ok and value(small, result.record_id, SCORE) == 7.0
    assert small.emulator.total_writes() == 192


def _bulk_twin(tls_dir: Path) -> Org:
    org = generated(4_000, tls_dir, deals=False)
    org.emulator.add_validation_rule(score_cap())
    return org


def test_bulk_ingest_reports_and_writes_what_collections_do(tls_dir: Path) -> None:
    orgs = [_bulk_twin(tls_dir), _bulk_twin(tls_dir)]
    try:
        ids = orgs[0].ids("Contact")
        assert orgs[1].ids("Contact") == ids, "two identical orgs"
        conns = [org.connector() for org in orgs]
        for org, conn in zip(orgs, conns, strict=True):
            org.admin_ensure(conn)
            for record_id in ids[10::450]:
                org.emulator.delete(record_id)
            org.emulator.merge(ids[0], ids[1])
            org.emulator.reset_counters()
        batch = updates(ids)
        # Values that need care in either format: clearing fields, text with commas, quotes and a line break,
        # datetimes with milliseconds, and records that carry different fields.
        for n in range(0, len(batch), 7):
            batch[n] = FieldUpdate(ids[n], {"stage": None, "lead_score": 50.125,
                                            "stage_since": WHEN - timedelta(days=n),
                                            "next_best_action": 'call, then\n"mail"'})
        batch.append(FieldUpdate("006" + ids[5][3:], {"lead_score": 1.0}))
        collections = write_all(conns[0], batch)
        bulk = conns[1].write_bulk(batch)
    finally:
        for org in orgs:
            org.stop()

    def outcome(result: WriteResult) -> tuple[Any, ...]:
        code = (result.reason or "").split(":")[0]
        return result.record_id, result.ok, result.gone, result.transient, result.field, code

    assert [outcome(r) for r in bulk] == [outcome(r) for r in collections]
    codes = {outcome(r)[-1] for r in bulk if not r.ok}
    assert {"ENTITY_IS_DELETED", "FIELD_CUSTOM_VALIDATION_EXCEPTION"} <= codes
    assert sum(r.gone for r in bulk) == 10 and sum(r.ok for r in bulk) > 3_800
    contact = orgs[0].emulator.store.object("Contact")
    assert contact is not None
    ours = [name for name in contact.fields if name.startswith("CLM_")]
    for record_id in ids:
        a, b = orgs[0].emulator.record(record_id), orgs[1].emulator.record(record_id)
        assert a is not None and b is not None
        assert {n: a.get(n) for n in ours} == {n: b.get(n) for n in ours}, record_id
    assert value(orgs[1], ids[7], "CLM_Next_Best_Action__c") == 'call, then\n"mail"'
    assert value(orgs[1], ids[7], STAGE) is None and value(orgs[1], ids[8], STAGE) == "customer"
    for org in orgs:
        assert org.emulator.max_writes_per_field() == 1 and org.emulator.internal_errors == []
    # One job instead of 20 requests of 200: create, upload, close, a few polls while it is queued, three
    # result sets, delete.
    assert orgs[1].emulator.request_counts[PATCH] == 0 and conns[1].reader.bulk_jobs == 1
    assert sum(orgs[1].emulator.request_counts.values()) <= 15 < orgs[0].emulator.request_counts[PATCH]


def test_token_auth_with_an_expired_session_fails_with_a_hint(small: Org) -> None:
    conn = small.connector()
    small.admin_ensure(conn)
    ids = small.ids("Contact")
    small.emulator.expire_sessions()
    small.emulator.reset_counters()
    with pytest.raises(AuthError) as info:
        conn.write(updates(ids[:5]))
    assert "INVALID_SESSION_ID" in info.value.message and "cannot be refreshed" in (info.value.hint or "")
    assert calls(small) == 1, "no retry loop against a session that cannot come back"


def test_password_auth_whose_new_session_is_refused_too_fails(small: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    small.emulator.credentials.soap_login = True  # an org created before Winter '26
    conn = small.connector(auth="password", monkeypatch=monkeypatch)
    small.admin_ensure(conn)
    ids = small.ids("Contact")
    small.emulator.reset_counters()
    # Every session dies on first use: the fresh one after the re-login as well (a frozen user, say).
    small.emulator.add_fault(FaultRule(kind="expired_session", path_prefix=COLLECTIONS))
    with pytest.raises(AuthError, match="right after login") as info:
        conn.write(updates(ids[:5]))
    assert info.value.hint and "frozen" in info.value.hint
    assert conn.client.logins == 2 and calls(small) == 2


def test_password_auth_whose_re_login_is_refused_fails(small: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    small.emulator.credentials.soap_login = True  # an org created before Winter '26
    conn = small.connector(auth="password", monkeypatch=monkeypatch)
    small.admin_ensure(conn)
    conn.client.read_limits()  # logged in before the password changes
    ids = small.ids("Contact")
    small.emulator.reset_counters()
    small.emulator.credentials.password = "rotated-by-an-admin"
    small.emulator.expire_sessions()
    with pytest.raises(AuthError, match="refused the password login") as info:
        conn.write(updates(ids[:5]))
    assert info.value.hint and "security token" in info.value.hint
    assert calls(small) == 1 and conn.client.logins == 1
    assert small.emulator.request_counts["POST /services/Soap/u"] == 1


def test_a_batch_cut_short_by_a_refused_session_reports_what_it_wrote(small: Org) -> None:
    conn = small.connector()
    small.admin_ensure(conn)
    ids = small.ids("Contact")
    small.emulator.reset_counters()
    # One record is locked; by the time it is retried the (token) session has expired.
    small.emulator.add_fault(FaultRule(kind="lock_row", path_prefix=COLLECTIONS, count=1))
    small.emulator.add_fault(FaultRule(kind="expired_session", path_prefix=COLLECTIONS, after=1, count=1))
    results = conn.write(updates(ids[:5]))
    assert [r.ok for r in results] == [False, True, True, True, True]
    assert results[0].transient and "INVALID_SESSION_ID" in (results[0].reason or "")
    assert {i for i in ids[:5] if writes_per_record(small).get(i)} == set(ids[1:5])
    # The next batch meets the refusal before anything is written, and stops the run.
    with pytest.raises(AuthError):
        conn.write(updates(ids[5:10]))
    assert calls(small) == 3 and small.emulator.total_writes() == 4 * 3


def test_salesforce_down_stops_the_run_even_when_the_batch_has_a_foreign_id(small: Org) -> None:
    conn = small.connector(attempts=3)
    small.admin_ensure(conn)
    ids = small.ids("Contact")
    outage = small.server.faults.add(FaultRule(kind="status", status=503, path_prefix=COLLECTIONS,
                                               body=[{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]))
    batch = [*updates(ids[:5]), FieldUpdate(small.ids("Opportunity")[0], {"lead_score": 1.0})]
    # The locally refused Id is no answer from Salesforce: nothing got through, so the run stops (and resumes
    # later) instead of reporting every record as a transient failure.
    with pytest.raises(ConnectorError, match="failed after 3 attempts"):
        conn.write(batch)
    assert outage.fired == 3
