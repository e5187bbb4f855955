"""Benchmark: records per second written through the Salesforce sandbox's sObject Collections PATCH.

Drives simple-salesforce, unchanged, over HTTPS against the emulator with the daily API limit off: creates
our custom fields through the Tooling API, grants them to the integration user through a permission set, then
updates every contact in batches of 200 (the collections limit), first from one client, then from four
concurrent clients. Prints the figures and their ratio to the 2,000 records/s target.

Run: ``.venv/bin/python bench/sandbox_salesforce.py [--contacts N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from simple_salesforce.api import Salesforce

from connectors.sandbox.salesforce import SalesforceEmulator, client_session, start_salesforce_sandbox
from core.models import Contact

TARGET = 2000.0
BATCH = 200


def contacts(n: int) -> list[Contact]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [Contact(id=f"c{i}", email=f"person{i}@example.com", created_at=start + timedelta(minutes=i),
                    properties={"company": f"Company {i % 500}"}) for i in range(n)]


def prepare(sf: Salesforce) -> None:
    """Create and grant the fields a sync writes (as the connector does before its first write)."""
    fields = {"CLM_Stage__c": {"type": "Text", "label": "CLM Stage", "length": 40},
              "CLM_Lead_Score__c": {"type": "Number", "label": "CLM Lead Score", "precision": 5, "scale": 2},
              "CLM_CLV__c": {"type": "Currency", "label": "CLM CLV", "precision": 16, "scale": 2}}
    permission_set = sf.restful("sobjects/PermissionSet", method="POST",
                                json={"Name": "CLM_Integration", "Label": "CLM Integration"})
    assert isinstance(permission_set, dict)
    me = sf.query("SELECT Id FROM User WHERE IsActive = true LIMIT 1")["records"][0]["Id"]
    for name, metadata in fields.items():
        sf.toolingexecute("sobjects/CustomField", method="POST",
                          data={"FullName": f"Contact.{name}", "Metadata": metadata})
        sf.restful("sobjects/FieldPermissions", method="POST", json={
            "ParentId": permission_set["id"], "SobjectType": "Contact", "Field": f"Contact.{name}",
            "PermissionsRead": True, "PermissionsEdit": True})
    sf.restful("sobjects/PermissionSetAssignment", method="POST",
               json={"AssigneeId": me, "PermissionSetId": permission_set["id"]})


def write(sf: Salesforce, ids: list[str], run: int) -> int:
    """Update ``ids`` in batches of 200; returns the number of successful records."""
    done = 0
    for start in range(0, len(ids), BATCH):
        records = [{"attributes": {"type": "Contact"}, "Id": record_id, "CLM_Stage__c": f"stage-{run}",
                    "CLM_Lead_Score__c": (n % 100) + run / 10, "CLM_CLV__c": 1000.0 + n}
                   for n, record_id in enumerate(ids[start : start + BATCH])]
        results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records})
        assert isinstance(results, list)
        done += sum(1 for r in results if r["success"])
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tls:
        seed_started = time.perf_counter()
        server, org = start_salesforce_sandbox(contacts(args.contacts), [], tls_dir=Path(tls),
                                               emulator=SalesforceEmulator(daily_api_limit=None))
        seed_seconds = time.perf_counter() - seed_started
        try:
            sf = Salesforce(instance_url=server.url, session_id=org.session_id, session=client_session(server))
            prepare(sf)
            ids = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Contact")]

            started = time.perf_counter()
            written = write(sf, ids, 1)
            single = written / (time.perf_counter() - started)

            clients = [Salesforce(instance_url=server.url, session_id=org.session_id,
                                  session=client_session(server)) for _ in range(4)]
            shards = [ids[i::4] for i in range(4)]
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                written_parallel = sum(pool.map(lambda pair: write(pair[0], pair[1], 2), zip(clients, shards,
                                                                                          strict=True)))
            parallel = written_parallel / (time.perf_counter() - started)
            assert org.max_writes_per_field() == 2 and not org.internal_errors
        finally:
            server.stop()
    print(f"seeded {args.contacts} contacts in {seed_seconds:.2f}s")
    print(f"collections PATCH, 1 client:  {single:,.0f} records/s ({single / TARGET:.1f}x the {TARGET:,.0f}/s target)")
    print(f"collections PATCH, 4 clients: {parallel:,.0f} records/s ({parallel / TARGET:.1f}x the target)")


if __name__ == "__main__":
    main()
