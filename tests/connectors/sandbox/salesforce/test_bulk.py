"""Bulk API 2.0 through simple-salesforce's ``bulk2``: query jobs with locators, ingest jobs and their results."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceOperationError

from connectors.sandbox.salesforce import client_session
from tests.connectors.sandbox.salesforce.conftest import Sandbox


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_bulk_query_pages_with_locator(big: Sandbox) -> None:
    sf = big.client()
    pages = list(sf.bulk2.Contact.query("SELECT Id, Email, Account.Name, Newsletter__c, CreatedDate FROM Contact",
                                        max_records=2000, wait=0))
    assert [len(rows(p)) for p in pages] == [2000, 2000, 500]
    first = rows(pages[0])[0]
    assert set(first) == {"Id", "Email", "Account.Name", "Newsletter__c", "CreatedDate"}
    assert first["Newsletter__c"] in ("true", "false") and first["CreatedDate"].endswith(".000Z")
    assert pages[0].startswith('"Id","Email","Account.Name"')
    assert big.org.request_counts["GET /jobs/query/{id}/results"] == 3


def test_bulk_query_all_sees_deleted_rows(sandbox: Sandbox, sf: Salesforce) -> None:
    sandbox.org.delete(sandbox.contact_ids()[0])
    live = sum(len(rows(p)) for p in sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0))
    everything = sum(len(rows(p)) for p in sf.bulk2.Contact.query_all("SELECT Id, IsDeleted FROM Contact", wait=0))
    assert (live, everything) == (299, 300)


def test_bulk_update_with_partial_failures(sandbox: Sandbox, sf: Salesforce) -> None:
    ids = sandbox.contact_ids()[:250]
    sandbox.org.delete(ids[3])
    records = [{"Id": i, "Title": f"T{n}"} for n, i in enumerate(ids)]
    records[5]["Title"] = "x" * 200
    [result] = sf.bulk2.Contact.update(records=records, wait=0)
    assert result["numberRecordsProcessed"] == 250 and result["numberRecordsFailed"] == 2
    failed = rows(sf.bulk2.Contact.get_failed_records(result["job_id"]))
    errors = {row["Id"]: row["sf__Error"] for row in failed}
    assert errors[ids[3]] == "ENTITY_IS_DELETED:entity is deleted:--"
    assert errors[ids[5]].startswith("STRING_TOO_LONG:Title: data value too large:")
    assert errors[ids[5]].endswith(":Title --")
    successful = rows(sf.bulk2.Contact.get_successful_records(result["job_id"]))
    assert len(successful) == 248 and successful[0]["sf__Created"] == "false"
    assert rows(sf.bulk2.Contact.get_unprocessed_records(result["job_id"])) == []
    stored = sandbox.org.record(ids[0])
    assert stored is not None and stored["Title"] == "T0"
    assert sandbox.org.max_writes_per_field() == 1


def test_empty_cells_keep_values_and_na_clears_them(sandbox: Sandbox, sf: Salesforce, tmp_path: Path) -> None:
    first, second = sandbox.contact_ids()[:2]
    sandbox.org.edit(first, {"Title": "Keep", "Department": "Sales"})
    sandbox.org.edit(second, {"Title": "Old", "Department": "Ops"})
    upload = tmp_path / "update.csv"
    upload.write_text(f"Id,Title,Department\n{first},,#N/A\n{second},New,\n")
    [result] = sf.bulk2.Contact.update(csv_file=str(upload), wait=0)
    assert result["numberRecordsFailed"] == 0
    one, two = sandbox.org.record(first), sandbox.org.record(second)
    assert one is not None and two is not None
    assert (one["Title"], one["Department"]) == ("Keep", None)
    assert (two["Title"], two["Department"]) == ("New", "Ops")


def test_unknown_column_fails_the_job(sandbox: Sandbox, sf: Salesforce) -> None:
    with pytest.raises(SalesforceOperationError) as exc:
        sf.bulk2.Contact.update(records=[{"Id": sandbox.contact_ids()[0], "Nope__c": "x"}], wait=0)
    assert "InvalidBatch : Field name not found : Nope__c" in str(exc.value)


def test_bulk_type_error_is_per_row(sandbox: Sandbox, sf: Salesforce) -> None:
    first, second = sandbox.contact_ids()[:2]
    [result] = sf.bulk2.Contact.update(records=[{"Id": first, "Birthdate": "1990-13-45"},
                                                {"Id": second, "Birthdate": "1990-12-01"}], wait=0)
    assert result["numberRecordsFailed"] == 1
    [failed] = rows(sf.bulk2.Contact.get_failed_records(result["job_id"]))
    assert failed["sf__Error"].startswith("INVALID_FIELD:Failed to deserialize field at col")
    assert "is not a valid value for the type xsd:date:Birthdate --" in failed["sf__Error"]


def test_ingest_job_lifecycle_with_delay_and_abort(sandbox: Sandbox) -> None:
    sandbox.org.bulk.delay = 0.2
    session = client_session(sandbox.server)
    base = f"{sandbox.server.url}/services/data/v59.0/jobs/ingest"
    headers = {"Authorization": f"Bearer {sandbox.org.session_id}", "Content-Type": "application/json"}
    job = session.post(base, headers=headers, data=json.dumps({"object": "Contact", "operation": "update",
                                                               "contentType": "CSV", "lineEnding": "LF"})).json()
    assert job["state"] == "Open" and job["contentUrl"].endswith("/batches")
    upload = session.put(f"{base}/{job['id']}/batches", headers={**headers, "Content-Type": "text/csv"},
                         data=f"Id,Title\n{sandbox.contact_ids()[0]},Later\n")
    assert upload.status_code == 201
    closed = session.patch(f"{base}/{job['id']}", headers=headers, data=json.dumps({"state": "UploadComplete"}))
    assert closed.json()["state"] == "UploadComplete"
    assert session.get(f"{base}/{job['id']}", headers=headers).json()["state"] == "InProgress"
    time.sleep(0.25)
    done = session.get(f"{base}/{job['id']}", headers=headers).json()
    assert done["state"] == "JobComplete" and done["numberRecordsProcessed"] == 1
    assert "api-usage=" in session.get(f"{base}/{job['id']}", headers=headers).headers["Sforce-Limit-Info"]

    aborted = session.post(base, headers=headers, data=json.dumps({"object": "Contact", "operation": "update"})).json()
    session.put(f"{base}/{aborted['id']}/batches", headers={**headers, "Content-Type": "text/csv"},
                data=f"Id,Title\n{sandbox.contact_ids()[1]},Never\n")
    state = session.patch(f"{base}/{aborted['id']}", headers=headers, data=json.dumps({"state": "Aborted"}))
    assert state.json()["state"] == "Aborted"
    unprocessed = session.get(f"{base}/{aborted['id']}/unprocessedrecords", headers=headers).text
    assert rows(unprocessed) == [{"Id": sandbox.contact_ids()[1], "Title": "Never"}]
    assert isinstance(session, requests.Session)


def test_bulk_query_refuses_nested_queries(sf: Salesforce) -> None:
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    with pytest.raises(SalesforceMalformedRequest) as exc:
        list(sf.bulk2.Opportunity.query("SELECT Id, (SELECT Id FROM OpportunityContactRoles) FROM Opportunity",
                                        wait=0))
    assert exc.value.content[0]["errorCode"] == "API_ERROR"
