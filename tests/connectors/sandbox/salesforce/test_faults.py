"""Faults: generic (latency, 5xx, timeouts, dropped connections) and Salesforce-specific ones."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceGeneralError, SalesforceRefusedRequest

from connectors.sandbox.faults import FaultRule
from connectors.sandbox.server import wait_until
from tests.connectors.sandbox.salesforce.conftest import Sandbox

COLLECTIONS = "/services/data/v59.0/composite/sobjects"


def update(sf: Salesforce, ids: list[str], **values: Any) -> list[dict[str, Any]]:
    result = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Contact"}, "Id": i, **values} for i in ids]})
    assert isinstance(result, list)
    return result


def codes(results: list[dict[str, Any]]) -> list[str | None]:
    return [None if r["success"] else r["errors"][0]["statusCode"] for r in results]


# ---------------------------------------------------------------- generic (server FaultInjector)


def test_latency(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.faults.add(FaultRule("latency", path_prefix="/services/data/v59.0/query", seconds=0.2))
    started = time.perf_counter()
    sf.query("SELECT Id FROM Contact LIMIT 1")
    assert time.perf_counter() - started >= 0.2


def test_server_error_burst(sandbox: Sandbox, sf: Salesforce) -> None:
    rule = sandbox.faults.add(FaultRule("status", path_prefix=COLLECTIONS, status=503, count=2,
                                        body=[{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]))
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as exc:
            update(sf, sandbox.contact_ids()[:1], Title="x")
        assert exc.value.status == 503
    assert codes(update(sf, sandbox.contact_ids()[:1], Title="x")) == [None]
    assert rule.fired == 2


def test_timeout(sandbox: Sandbox, sf: Salesforce) -> None:
    rule = sandbox.faults.add(FaultRule("timeout", path_prefix="/services/data/v59.0/query", seconds=0.3, count=1))
    with pytest.raises(requests.exceptions.ReadTimeout):
        sf.query("SELECT Id FROM Contact LIMIT 1", timeout=0.1)
    assert rule.fired == 1
    # Let the held request finish here, not in the next test's org (the server is shared).
    assert wait_until(lambda: sandbox.org.request_counts["GET /query"] == 1, timeout=2)


def test_dropped_connection(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.faults.add(FaultRule("drop", path_prefix=COLLECTIONS, count=1))
    with pytest.raises(requests.exceptions.ConnectionError):
        update(sf, sandbox.contact_ids()[:1], Title="x")
    assert sandbox.org.total_writes() == 0
    assert codes(update(sf, sandbox.contact_ids()[:1], Title="x")) == [None]


# ---------------------------------------------------------------- Salesforce-specific


def test_expired_session_fault(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.org.add_fault(FaultRule("expired_session", path_prefix="/services/data", count=1, after=1))
    sf.query("SELECT Id FROM Contact LIMIT 1")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Contact LIMIT 1")
    with pytest.raises(SalesforceExpiredSession):  # the session stays dead
        sf.query("SELECT Id FROM Contact LIMIT 1")
    fresh = Salesforce(instance_url=sandbox.server.url, session_id=sandbox.org.new_session(),
                       session=sf.session)
    assert fresh.query("SELECT COUNT() FROM Contact")["totalSize"] == 300


def test_daily_limit_fault(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.org.add_fault(FaultRule("daily_limit", path_prefix=COLLECTIONS, count=1))
    with pytest.raises(SalesforceRefusedRequest) as exc:
        update(sf, sandbox.contact_ids()[:1], Title="x")
    assert exc.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert codes(update(sf, sandbox.contact_ids()[:1], Title="x")) == [None]


def test_lock_row_on_a_share_of_records(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.org.add_fault(FaultRule("lock_row", path_prefix=COLLECTIONS, rate=0.25))
    ids = sandbox.contact_ids()[:200]
    results = update(sf, ids, Title="x")
    locked = [i for i, r in zip(ids, results, strict=True) if not r["success"]]
    assert 20 < len(locked) < 90
    error = results[ids.index(locked[0])]["errors"][0]
    assert error == {"statusCode": "UNABLE_TO_LOCK_ROW",
                     "message": f"unable to obtain exclusive access to this record or 1 records: {locked[0]}",
                     "fields": []}
    assert sandbox.org.total_writes() == 200 - len(locked)


def test_validation_fault(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.org.add_fault(FaultRule("validation", path_prefix=COLLECTIONS, count=2, body="Blocked by a rule"))
    results = update(sf, sandbox.contact_ids()[:4], Title="x")
    assert codes(results) == ["FIELD_CUSTOM_VALIDATION_EXCEPTION"] * 2 + [None, None]
    assert results[0]["errors"][0]["message"] == "Blocked by a rule"


def test_record_deleted_between_read_and_write(sandbox: Sandbox, sf: Salesforce) -> None:
    ids = sandbox.contact_ids()[:3]
    sandbox.org.add_fault(FaultRule("deleted_before_write", path_prefix=COLLECTIONS, count=1, after=1))
    assert codes(update(sf, ids, Title="x")) == [None, "ENTITY_IS_DELETED", None]
    gone = sf.query_all(f"SELECT IsDeleted FROM Contact WHERE Id = '{ids[1]}'", include_deleted=True)
    assert gone["records"][0]["IsDeleted"] is True


def test_record_faults_apply_to_bulk_ingest(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.org.add_fault(FaultRule("lock_row", path_prefix="/services/data/v59.0/jobs/ingest", count=3))
    [result] = sf.bulk2.Contact.update(records=[{"Id": i, "Title": "bulk"} for i in sandbox.contact_ids()[:10]],
                                       wait=0)
    assert result["numberRecordsFailed"] == 3
    failed = sf.bulk2.Contact.get_failed_records(result["job_id"])
    assert failed.count("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access") == 3


def test_unknown_fault_kind_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="generic faults"):
        sandbox.org.add_fault(FaultRule("latency"))
