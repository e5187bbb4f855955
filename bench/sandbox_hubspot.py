"""Benchmark: the HubSpot sandbox's seeding speed, memory per contact, and records per second written through
``crm.contacts.batch_api.update`` of the official ``hubspot-api-client``.

Seeds generated contacts and deals, then (rate limits off) creates our property group and ``clm_*`` properties
through the client and updates every contact in batches of 100 (HubSpot's batch limit), first from one client,
then from four concurrent clients. Responses are read raw (``_preload_content=False``), as our connector does:
the client's per-object model deserialisation would otherwise dominate. Prints the figures and their ratio to
the 2,000 records/s target.

Run: ``.venv/bin/python bench/sandbox_hubspot.py [--contacts N]``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import urllib3
from hubspot import HubSpot

from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox

TARGET = 2000.0
BATCH = 100


def client(url: str, token: str) -> HubSpot:
    """The official client, as the connector builds it."""
    return HubSpot(access_token=token, host=url, retry=urllib3.Retry(total=0))


def prepare(hubspot: HubSpot) -> None:
    """Our property group and properties (what ``clm fields ensure`` creates)."""
    hubspot.crm.properties.groups_api.create("contacts", {"name": "crm_lifecycle", "label": "CRM Lifecycle"})
    for name, kind, field in (("clm_stage", "string", "text"), ("clm_lead_score", "number", "number"),
                              ("clm_clv", "number", "number"), ("clm_computed_at", "datetime", "date")):
        hubspot.crm.properties.core_api.create("contacts", {"name": name, "label": name, "type": kind,
                                                            "fieldType": field, "groupName": "crm_lifecycle"})


def write(hubspot: HubSpot, ids: list[str], round_no: int) -> int:
    """Batch-update ``ids``; returns how many records HubSpot reported written."""
    api = hubspot.crm.contacts.batch_api
    written = 0
    for start in range(0, len(ids), BATCH):
        inputs = [{"id": i, "properties": {"clm_stage": "customer" if round_no % 2 else "lead",
                                           "clm_lead_score": f"{(int(i) * 7 + round_no) % 100}",
                                           "clm_clv": f"{int(i) * 1.5 + round_no:.2f}",
                                           "clm_computed_at": str(1_767_225_600_000 + round_no)}}
                  for i in ids[start:start + BATCH]]
        response = api.update({"inputs": inputs}, _preload_content=False)
        assert response.status == 200, response.data[:300]
        written += len(inputs)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    args = parser.parse_args()

    data = generate(args.contacts, seed=7)
    contacts, deals = data.contact_records(), data.deal_records()
    started = time.perf_counter()
    server, portal = start_hubspot_sandbox(contacts, deals, rate_limits=RateLimits.off())
    seeding = time.perf_counter() - started
    print(f"seeded {len(contacts):,} contacts and {len(deals):,} deals in {seeding:.2f} s")

    tracemalloc.start()
    sample = HubSpotEmulator(rate_limits=RateLimits.off())
    sample.seed(contacts[:20_000])
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_contact = used / 20_000
    print(f"memory: {per_contact:,.0f} bytes per contact (generated, {len(contacts[0].properties) + 1} properties) "
          f"-> ~{per_contact * 1_000_000 / 2**30:.2f} GiB for 1,000,000 contacts")

    try:
        hubspot = client(server.url, portal.token)
        prepare(hubspot)
        ids = portal.ids("contacts")
        started = time.perf_counter()
        written = write(hubspot, ids, 1)
        single = written / (time.perf_counter() - started)
        print(f"batch update, 1 client: {written:,} records, {single:,.0f} records/s "
              f"({single / TARGET:.1f}x the {TARGET:,.0f}/s target)")

        chunks = [ids[k::4] for k in range(4)]
        clients = [client(server.url, portal.token) for _ in chunks]
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            written = sum(pool.map(lambda pair: write(pair[0], pair[1], 2), zip(clients, chunks, strict=True)))
        parallel = written / (time.perf_counter() - started)
        print(f"batch update, 4 clients: {written:,} records, {parallel:,.0f} records/s "
              f"({parallel / TARGET:.1f}x the target)")
        assert portal.max_writes_per_record() == 2 and portal.internal_errors == []
    finally:
        server.stop()


if __name__ == "__main__":
    main()
