"""Salesforce connector throughput against the sandbox org, over HTTPS with simple-salesforce unchanged.

Measured side by side in one run, on generated contacts with their opportunities and contact roles:

- full pull through REST paging (query/queryMore, 2,000 a page, roles as a sub-query) vs Bulk API 2.0 query
  jobs: records/s, API calls (Salesforce counts them per rolling 24 hours) and calls per 10,000 records;
- write of two of our fields on every contact through sObject Collections (200 a call, 4 threads) vs one
  Bulk API 2.0 ingest job;
- our overhead per record: this process's CPU time per record next to simple-salesforce doing the same
  requests without us (``query_all`` of the same SOQL, ``bulk2`` query of the same SOQL, the same PATCH and
  ingest calls), and the conversion functions (``RowReader``, ``to_contact``/``to_deal``) timed offline
  over the same raw rows.

The emulator runs in a child process, so ``time.process_time()`` here is the client side only: connector,
simple-salesforce, requests, JSON/CSV parsing and TLS. Wall times include the emulator (on the other core).

Run: python bench/sync_salesforce.py [--contacts N]
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import SFBulk2Handler

from connectors.base import FieldUpdate, Page, WriteResult
from connectors.salesforce import SalesforceConnector
from connectors.salesforce.pull import ROLES
from connectors.salesforce.reader import Reader
from connectors.salesforce.records import (
    HighWater,
    ObjectSchema,
    Role,
    RowReader,
    ordered_contacts,
    to_contact,
    to_deal,
)
from connectors.transport import Limits, RateLimiter, Transport
from core.config import ClmConfig, SalesforceConfig
from core.models import Contact, Deal
from sync.runner import output_specs

SPECS = output_specs(ClmConfig())
API = str(SalesforceConfig.model_fields["api_version"].default)
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 200
THREADS = 4
PAGE = 2000
#: Salesforce Enterprise Edition: 100,000 requests per rolling 24 hours plus 1,000 per user licence.
ORG_DAILY_CALLS = 100_000


# --- the emulator, in its own process -------------------------------------------------------------------


def serve(pipe: Connection, contacts: int, tls_dir: str) -> None:
    """Generate and seed the org, serve it over HTTPS, answer the parent's questions until told to stop."""
    from connectors.sandbox.generator import generate
    from connectors.sandbox.salesforce import SalesforceEmulator, start_salesforce_sandbox

    data = generate(contacts, seed=1, as_of=AS_OF)
    emulator = SalesforceEmulator(daily_api_limit=None)
    seeded = emulator.seed(data.contact_records(), data.deal_records())
    server, _ = start_salesforce_sandbox(tls_dir=Path(tls_dir), emulator=emulator)
    pipe.send({"url": server.url, "session_id": emulator.session_id, "admin_session_id": emulator.admin_session_id,
               "username": emulator.store.org.username, "ca_path": str(server.ca_path),
               "contact_fields": sorted(seeded.contact_fields.values()),
               "deal_fields": sorted(seeded.deal_fields.values()), "roles": len(seeded.contact_role_ids)})
    try:
        while (command := pipe.recv()) != "stop":
            if command == "usage":
                pipe.send((emulator.api_usage, dict(emulator.request_counts)))
            elif command == "health":
                pipe.send(list(emulator.internal_errors))
    finally:
        server.stop()


class Org:
    """The parent's handle on the emulator process."""

    def __init__(self, contacts: int, tls_dir: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, contacts, tls_dir), daemon=True)
        self.process.start()
        child.close()  # so that a child failing before it answers ends recv() with EOFError, not a hang
        info: dict[str, Any] = self.pipe.recv()
        self.url: str = info["url"]
        self.session_id: str = info["session_id"]
        self.admin_session_id: str = info["admin_session_id"]
        self.username: str = info["username"]
        self.ca_path: str = info["ca_path"]
        self.contact_fields: list[str] = info["contact_fields"]
        self.deal_fields: list[str] = info["deal_fields"]
        self.roles: int = info["roles"]

    def usage(self) -> tuple[int, dict[str, int]]:
        """API requests the org has counted so far (what Salesforce charges to the daily allowance), and the
        requests by route."""
        self.pipe.send("usage")
        used: tuple[int, dict[str, int]] = self.pipe.recv()
        return used

    def internal_errors(self) -> list[str]:
        self.pipe.send("health")
        errors: list[str] = self.pipe.recv()
        return errors

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(30)

    def session(self) -> requests.Session:
        """What ``client_session`` builds, minus the login-host routing token auth does not need."""
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_path
        return session

    def client(self) -> Salesforce:
        """simple-salesforce as the connector builds it (``object_pairs_hook=dict``), without the connector."""
        host = self.url.removeprefix("https://")
        return Salesforce(instance=host, session_id=self.session_id, session=self.session(), version=API,
                          object_pairs_hook=dict)


class SpyReader(Reader):
    """The connector's reader, noting the queries it runs (to replay them through simple-salesforce alone)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rest_queries: list[tuple[str, bool]] = []
        self.bulk_queries: list[tuple[str, str]] = []

    def query_page(self, operation: str, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        self.rest_queries.append((soql, include_deleted))
        return super().query_page(operation, soql, include_deleted=include_deleted)

    def bulk(self, operation: str, sobject: str, soql: str, *, include_deleted: bool
             ) -> Iterator[tuple[list[str], list[list[str]]]]:
        assert not include_deleted, "a full pull reads live records only"
        self.bulk_queries.append((sobject, soql))
        return super().bulk(operation, sobject, soql, include_deleted=include_deleted)


def connector(org: Org, *, bulk_threshold: int, admin: bool = False) -> SalesforceConnector:
    """The connector as the integration user, or (``admin``) as the org's admin granting that user our fields
    (``clm fields ensure``: the integration user has no setup rights)."""
    config = SalesforceConfig(api_version=API, bulk_threshold=bulk_threshold, page_size=PAGE, batch_size=BATCH)
    # No per-second cap: Salesforce has none besides concurrency (the connector's default is a polite 25/s).
    transport = Transport(RateLimiter(Limits(100_000, 1.0)), concurrency=THREADS)
    conn = SalesforceConnector(config, contact_properties=org.contact_fields, deal_properties=org.deal_fields,
                               owned_fields=SPECS, session=org.session(), transport=transport,
                               instance_url=org.url, session_id=org.admin_session_id if admin else org.session_id,
                               assign_to=org.username if admin else None)
    conn.reader = SpyReader(conn.client, config.page_size)  # the pull's reader; the writer keeps its own
    return conn


# --- measuring --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured case."""

    records: int
    wall: float
    cpu: float
    calls: int
    routes: dict[str, int]

    @property
    def rate(self) -> float:
        return self.records / self.wall

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu / self.records

    @property
    def per_10k(self) -> float:
        return 10_000 * self.calls / self.records


def measure(org: Org, work: Callable[[], int]) -> Run:
    """Run ``work`` (returns how many records it handled): wall and CPU time, API calls the org counted."""
    # Objects kept from earlier cases (pages, raw rows) are left out of the collector's full passes: each case
    # pays for the garbage collection of its own objects only, as it would alone.
    gc.collect()
    gc.freeze()
    before, routes = org.usage()
    wall, cpu = time.perf_counter(), time.process_time()
    records = work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after, routes_after = org.usage()
    return Run(records, wall, cpu, after - before,
               {k: v - routes.get(k, 0) for k, v in routes_after.items() if v > routes.get(k, 0)})


def offline(work: Callable[[], int]) -> tuple[int, float]:
    """Records handled and CPU µs per record of work done without any request."""
    gc.collect()
    gc.freeze()
    cpu = time.process_time()
    records = work()
    return records, 1e6 * (time.process_time() - cpu) / records


def pull(conn: SalesforceConnector, into: list[Page]) -> int:
    into.extend(conn.pull(None))
    assert not any(p.problems for p in into), [p.problems for p in into if p.problems][:3]
    return sum(len(p.contacts) + len(p.deals) for p in into)


def quiet_pull(org: Org, conn: SalesforceConnector, pages: Sequence[Page]) -> tuple[int, dict[str, int]]:
    """An incremental pull right after ``pages`` with nothing changed: the fixed API cost of every scheduled
    run (calls counted by the org, and by route)."""
    cursor: dict[str, str] = {}
    for page in pages:
        cursor.update(page.cursor)
    used, routes = org.usage()
    for _ in conn.pull(cursor):
        pass
    after, after_routes = org.usage()
    return after - used, {k: v - routes.get(k, 0) for k, v in after_routes.items() if v != routes.get(k, 0)}


def by_id(pages: Sequence[Page]) -> tuple[dict[str, Contact], dict[str, Deal]]:
    return ({c.id: c for p in pages for c in p.contacts}, {d.id: d for p in pages for d in p.deals})


# --- replaying the same requests through simple-salesforce alone ------------------------------------------


def rest_anchor(sf: Salesforce, queries: Sequence[tuple[str, bool]], into: dict[str, list[dict[str, Any]]]) -> int:
    """``query_all`` of each SOQL the connector's REST pull ran, same page size (the sub-query rows included);
    returns the contacts and opportunities read."""
    headers = {"Sforce-Query-Options": f"batchSize={PAGE}"}
    for soql, include_deleted in queries:
        into[soql] = list(sf.query_all_iter(soql, include_deleted=include_deleted, headers=headers))
    return sum(len(rows) for soql, rows in into.items() if fields_of(soql)[0] in ("Contact", "Opportunity")
               and "ORDER BY" in soql)


def bulk_anchor(sf: Salesforce, queries: Sequence[tuple[str, str]], into: dict[str, list[str]]) -> int:
    """simple-salesforce's own Bulk 2.0 query of each SOQL the connector's Bulk pull ran (CSV text, unparsed);
    returns the contacts and opportunities read (lines counted, not parsed)."""
    for sobject, soql in queries:
        into[soql] = [str(part) for part in getattr(sf.bulk2, sobject).query(soql, wait=0)]
    return sum(part.count("\n") - 1 for soql, parts in into.items() for part in parts
               if fields_of(soql)[0] in ("Contact", "Opportunity"))


def fields_of(soql: str) -> tuple[str, list[str], list[str]]:
    """The object, its selected fields and the sub-query's fields of ``SELECT a, b, (SELECT c FROM R) FROM X``."""
    head, _, rest = soql.removeprefix("SELECT ").partition(", (SELECT ")
    sub, sobject = [], rest
    if rest:
        sub_fields, _, rest = rest.partition(" FROM ")
        sub = sub_fields.split(", ")
        sobject = rest.split(") FROM ", 1)[1]
    else:
        head, _, sobject = head.partition(" FROM ")
    return sobject.split(" ", 1)[0], head.split(", "), sub


def wanted(schema: ObjectSchema, names: Sequence[str], fields: Sequence[str]) -> dict[str, str]:
    """Configured name -> API name of the properties a pull selects (as ``Puller`` maps them)."""
    out = {}
    for name in names:
        canonical = schema.canonical(name)
        if canonical is not None and canonical in fields:
            out[name] = canonical
    return out


def convert_json(conn: SalesforceConnector, raw: Mapping[str, list[dict[str, Any]]]) -> int:
    """Our per-record work on REST rows, offline: typed rows, cursor, roles, Contact/Deal models."""
    assert conn.last_pull is not None
    plan = conn.last_pull.plan
    done = 0
    for soql, records in raw.items():
        sobject, fields, sub = fields_of(soql)
        if "ORDER BY SystemModstamp, Id" not in soql or sobject not in ("Contact", "Opportunity"):
            continue
        schema = plan.schemas[sobject]
        rows, state = RowReader(schema, fields), HighWater(None)
        if sobject == "Contact":
            props = wanted(schema, [*plan.contact_properties, *plan.owned_fields], fields)
            for record in records:
                row = rows.from_json(record)
                state.fresh(row["SystemModstamp"], row["Id"], ordered=True)
                to_contact(row, props)
        else:
            props = wanted(schema, plan.deal_properties, fields)
            role_rows = RowReader(plan.schemas["OpportunityContactRole"], sub)
            for record in records:
                row = rows.from_json(record)
                state.fresh(row["SystemModstamp"], row["Id"], ordered=True)
                children = (record.get(ROLES) or {}).get("records") or []
                roles = [Role.from_row(role_rows.from_json(r)) for r in children]
                to_deal(row, ordered_contacts(roles), props)
        done += len(records)
    return done


def convert_csv(conn: SalesforceConnector, raw: Mapping[str, list[str]]) -> int:
    """The same for Bulk CSV result sets: CSV parsing, typed rows, cursor, roles by opportunity, models."""
    assert conn.last_pull is not None
    plan = conn.last_pull.plan
    parsed = {soql: [list(csv.reader(io.StringIO(part, newline=""))) for part in parts] for soql, parts in raw.items()}
    roles: dict[str, list[Role]] = {}
    done = 0
    for soql, parts in parsed.items():
        sobject, fields, _ = fields_of(soql)
        if sobject != "OpportunityContactRole":
            continue
        rows = RowReader(plan.schemas[sobject], fields)
        for part in parts:
            for cells in part[1:]:
                row = rows.from_csv(part[0], cells)
                roles.setdefault(str(row["OpportunityId"]), []).append(Role.from_row(row))
    for soql, parts in parsed.items():
        sobject, fields, _ = fields_of(soql)
        if sobject not in ("Contact", "Opportunity"):
            continue
        schema = plan.schemas[sobject]
        rows, state = RowReader(schema, fields), HighWater(None)
        names = [*plan.contact_properties, *plan.owned_fields] if sobject == "Contact" else plan.deal_properties
        props = wanted(schema, names, fields)
        for part in parts:
            for cells in part[1:]:
                row = rows.from_csv(part[0], cells)
                state.fresh(row["SystemModstamp"], row["Id"], ordered=False)
                if sobject == "Contact":
                    to_contact(row, props)
                else:
                    to_deal(row, ordered_contacts(roles.get(str(row["Id"]), [])), props)
                done += 1
    return done


# --- writes -------------------------------------------------------------------------------------------------


def updates(ids: Sequence[str], run: int) -> list[FieldUpdate]:
    """Two of our fields on every contact; values differ per run so that every write changes something."""
    return [FieldUpdate(i, {"lead_score": 10.0 + k % 50 + run / 10, "grade": "ABCD"[(k + run) % 4]})
            for k, i in enumerate(ids)]


def write_collections(conn: SalesforceConnector, plan: list[FieldUpdate]) -> int:
    batches = [plan[i:i + BATCH] for i in range(0, len(plan), BATCH)]
    results: list[WriteResult] = [r for batch in conn.transport.map(conn.write, batches) for r in batch]
    assert len(results) == len(plan) and all(r.ok for r in results), "every record written"
    return len(results)


def write_bulk(conn: SalesforceConnector, plan: list[FieldUpdate]) -> int:
    results = conn.write_bulk(plan)
    assert len(results) == len(plan) and all(r.ok for r in results), "every record written"
    return len(results)


def crm_rows(conn: SalesforceConnector, plan: Sequence[FieldUpdate]) -> list[dict[str, Any]]:
    """The same updates as plain records for simple-salesforce (values already in Salesforce's format)."""
    return [{"Id": u.record_id, **{conn.crm_field_name(k): v for k, v in u.values.items()}} for u in plan]


def collections_anchor(org: Org, rows: list[dict[str, Any]]) -> int:
    """The same PATCH composite/sobjects calls from 4 threads, one simple-salesforce client each."""
    clients = [org.client() for _ in range(THREADS)]

    def patch(k: int) -> int:
        records = [{"attributes": {"type": "Contact"}, **r} for r in rows[k * BATCH:(k + 1) * BATCH]]
        answer = clients[k % THREADS].restful("composite/sobjects", method="PATCH",
                                              json={"allOrNone": False, "records": records})
        assert isinstance(answer, list) and all(r["success"] for r in answer)
        return len(answer)

    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(patch, range((len(rows) + BATCH - 1) // BATCH)))


def bulk_write_anchor(org: Org, rows: list[dict[str, Any]]) -> int:
    """simple-salesforce's ``bulk2.Contact.update`` of the same rows, then its per-record result sets."""
    bulk2 = org.client().bulk2
    assert isinstance(bulk2, SFBulk2Handler)
    contact = bulk2.Contact
    jobs = contact.update(records=rows, wait=0)
    done = 0
    for job in jobs:
        assert int(job["numberRecordsFailed"]) == 0
        done += int(job["numberRecordsProcessed"])
        for fetch in (contact.get_successful_records, contact.get_failed_records, contact.get_unprocessed_records):
            fetch(str(job["job_id"]))
    return done


# --- report ---------------------------------------------------------------------------------------------------


def line(label: str, run: Run, unit: str = "records") -> str:
    return (f"{label}: {run.records:,} {unit} in {run.wall:.2f} s = {run.rate:,.0f} records/s; client CPU "
            f"{run.cpu_us:.0f} µs/record; {run.calls:,} API calls = {run.per_10k:.1f} per 10,000 records")


def versus(ours: Run, anchor: Run) -> str:
    return (f"client CPU {ours.cpu / anchor.cpu:.2f} (+{ours.cpu_us - anchor.cpu_us:.0f} µs/record), "
            f"wall {ours.wall / anchor.wall:.2f}")


def breakdown(run: Run) -> str:
    """Requests by route, most first (``GET /query/{locator}`` = one more page)."""
    return ", ".join(f"{route.split(' ', 1)[0]} {route.split(' ', 1)[1]} x{count}"
                     for route, count in sorted(run.routes.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=20_000)
    n = parser.parse_args().contacts

    with tempfile.TemporaryDirectory() as tls_dir:
        started = time.perf_counter()
        org = Org(n, tls_dir)
        seeded_s = time.perf_counter() - started
        try:
            rest_conn = connector(org, bulk_threshold=10**9)
            admin_conn = connector(org, bulk_threshold=10**9, admin=True)
            setup = measure(org, lambda: len(admin_conn.ensure_fields(SPECS)))
            bulk_conn = connector(org, bulk_threshold=0)
            sf = org.client()

            # Pulls, each next to simple-salesforce doing the same requests without us.
            rest_pages: list[Page] = []
            rest_pull = measure(org, lambda: pull(rest_conn, rest_pages))
            assert rest_conn.last_pull is not None and not any(rest_conn.last_pull.used_bulk.values())
            rest_raw: dict[str, list[dict[str, Any]]] = {}
            assert isinstance(rest_conn.reader, SpyReader)
            rest_queries = rest_conn.reader.rest_queries
            rest_sf = measure(org, lambda: rest_anchor(sf, rest_queries, rest_raw))
            quiet_calls, quiet_routes = quiet_pull(org, rest_conn, rest_pages)

            bulk_pages: list[Page] = []
            bulk_pull = measure(org, lambda: pull(bulk_conn, bulk_pages))
            assert bulk_conn.last_pull is not None and all(bulk_conn.last_pull.used_bulk.values())
            bulk_raw: dict[str, list[str]] = {}
            assert isinstance(bulk_conn.reader, SpyReader)
            bulk_queries = bulk_conn.reader.bulk_queries
            pull_jobs = bulk_conn.reader.bulk_jobs
            bulk_sf = measure(org, lambda: bulk_anchor(sf, bulk_queries, bulk_raw))

            converted_json, json_us = offline(lambda: convert_json(rest_conn, rest_raw))
            converted_csv, csv_us = offline(lambda: convert_csv(bulk_conn, bulk_raw))
            assert converted_json == converted_csv == rest_pull.records

            rest_contacts, rest_deals = by_id(rest_pages)
            bulk_contacts, bulk_deals = by_id(bulk_pages)
            same = rest_contacts == bulk_contacts and rest_deals == bulk_deals
            ids = sorted(rest_contacts)

            # Writes: two of our fields on every contact.
            plans = [updates(ids, run) for run in range(4)]
            rows = [crm_rows(rest_conn, plans[1]), crm_rows(rest_conn, plans[3])]
            rest_write = measure(org, lambda: write_collections(rest_conn, plans[0]))
            rest_write_sf = measure(org, lambda: collections_anchor(org, rows[0]))
            bulk_write = measure(org, lambda: write_bulk(bulk_conn, plans[2]))
            bulk_write_sf = measure(org, lambda: bulk_write_anchor(org, rows[1]))
            errors = org.internal_errors()
            assert not errors, errors[0]
        finally:
            org.stop()

    contacts, deals = len(rest_contacts), len(rest_deals)
    print(f"org: {contacts:,} contacts, {deals:,} opportunities, {org.roles:,} contact roles (seeded in "
          f"{seeded_s:.1f} s); {len(org.contact_fields)} contact + {len(org.deal_fields)} opportunity properties "
          f"pulled; our {setup.records} fields created and granted with {setup.calls} API calls")
    print("pull (records = contacts + opportunities; contact roles ride along):")
    print("  " + line("REST paging        ", rest_pull))
    print("  " + line("Bulk 2.0 query jobs", bulk_pull) + f" ({pull_jobs} jobs)")
    print(f"  Bulk / REST: throughput {bulk_pull.rate / rest_pull.rate:.2f}, API calls "
          f"{bulk_pull.calls / rest_pull.calls:.3f}, client CPU {bulk_pull.cpu / rest_pull.cpu:.2f}; "
          f"records identical on both paths: {'yes' if same else 'NO'}")
    print(f"  REST calls: {breakdown(rest_pull)}")
    print(f"  incremental pull with nothing changed: {quiet_calls} API calls: "
          f"{breakdown(Run(0, 0.0, 0.0, quiet_calls, quiet_routes))}")
    print(f"  Bulk calls: {breakdown(bulk_pull)}")
    print("  simple-salesforce alone, same SOQL, no conversion (anchor):")
    print("  " + line("  query_all         ", rest_sf))
    print("  " + line("  bulk2 query (CSV) ", bulk_sf))
    print(f"  connector / simple-salesforce alone: REST {versus(rest_pull, rest_sf)}; "
          f"Bulk {versus(bulk_pull, bulk_sf)}")
    print(f"  our conversion alone, offline over the same raw rows: REST JSON {json_us:.0f} µs/record, "
          f"Bulk CSV (parsing included) {csv_us:.0f} µs/record")
    print(f"write of {len(ids):,} contacts, 2 fields each:")
    print("  " + line("sObject Collections (200/call, 4 threads)", rest_write))
    print("  " + line("Bulk 2.0 ingest job                      ", bulk_write))
    print(f"  Bulk / Collections: throughput {bulk_write.rate / rest_write.rate:.2f}, API calls "
          f"{bulk_write.calls / rest_write.calls:.3f}, client CPU {bulk_write.cpu / rest_write.cpu:.2f}")
    print(f"  Bulk calls: {breakdown(bulk_write)}")
    print("  simple-salesforce alone, same calls (anchor):")
    print("  " + line("  restful PATCH composite/sobjects", rest_write_sf))
    print("  " + line("  bulk2.Contact.update + results  ", bulk_write_sf))
    print(f"  connector / simple-salesforce alone: Collections {versus(rest_write, rest_write_sf)}; "
          f"Bulk {versus(bulk_write, bulk_write_sf)}")
    full = rest_pull.calls + rest_write.calls
    bulk_full = bulk_pull.calls + bulk_write.calls
    print(f"API economy: a full pull + write of every contact costs {full:,} calls through REST, {bulk_full:,} "
          f"through Bulk 2.0 ({bulk_full / full:.3f}); that is {100 * full / ORG_DAILY_CALLS:.2f}% vs "
          f"{100 * bulk_full / ORG_DAILY_CALLS:.2f}% of a {ORG_DAILY_CALLS:,}-request daily allowance")


if __name__ == "__main__":
    main()
