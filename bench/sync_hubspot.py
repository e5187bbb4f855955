"""HubSpot connector throughput against the sandbox, over real HTTP with the official client.

- rate limit ON (100 requests / 10 s, HubSpot Free/Starter): write throughput as a ratio of the bound
  (records/s = 100 requests x 100 records / 10 s = 1,000 records/s);
- rate limit OFF: our own overhead per record for pulls and writes (the emulator serves >20k records/s);
- API calls per 10,000 records for a full and an incremental pull.

The emulator's request validation against HubSpot's OpenAPI specs is switched off here: it is a test of the
requests, and its cost is the emulator's, not a user's.

Run: python bench/sync_hubspot.py [--contacts N]
"""

from __future__ import annotations

import argparse
import time

from connectors.base import FieldUpdate
from connectors.hubspot import HubSpotConnector
from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.transport import Limits, RateLimiter, Transport
from core.config import ClmConfig, HubSpotConfig
from sync.runner import output_specs

SPECS = output_specs(ClmConfig())


def connector(url: str, token: str, per_10s: int, sweep: int = 20) -> HubSpotConnector:
    config = HubSpotConfig(base_url=url, requests_per_10s=min(per_10s, 1000), search_per_second=100,
                           max_concurrency=4, association_sweep_pages=sweep)
    transport = Transport(RateLimiter(Limits(per_10s, 10.0, None)), concurrency=4)
    return HubSpotConnector(config, contact_properties=sorted(PROPERTY_TYPES),
                            deal_properties=sorted(DEAL_PROPERTY_TYPES), owned_fields=SPECS, token=token,
                            transport=transport)


def write(conn: HubSpotConnector, ids: list[str]) -> float:
    batches = [[FieldUpdate(i, {"lead_score": 10.0 + k % 50, "grade": "B"}) for i in ids[j:j + 100]]
               for k, j in enumerate(range(0, len(ids), 100))]
    started = time.perf_counter()
    results = [r for batch in conn.transport.map(conn.write, batches) for r in batch]
    elapsed = time.perf_counter() - started
    assert all(r.ok for r in results), "every record written"
    return elapsed


def pull_calls(n: int) -> None:
    """API calls per 10,000 records pulled: a full pull of the portal, then an incremental pull after 10% of the
    contacts and 10% of the deals were edited (index lag off). The association sweep is left out of the
    incremental figure: it costs a fixed ``association_sweep_pages`` calls per run (20 by default), whatever changed."""
    data = generate(n, seed=3)
    # Index lag off (the edits are pulled at once) and no spec check: the benchmark counts the connector's calls.
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(), emulator=HubSpotEmulator(
        rate_limits=RateLimits.off(), search_lag_ms=0, validate_requests=False))
    try:
        conn = connector(server.url, emulator.token, 100_000, sweep=0)
        before = sum(emulator.request_counts.values())
        cursor: dict[str, str] = {}
        pulled = 0
        for page in conn.pull(None):
            cursor.update(page.cursor)
            pulled += len(page.contacts) + len(page.deals)
        full_calls = sum(emulator.request_counts.values()) - before
        for contact_id in emulator.ids("contacts")[::10]:
            emulator.edit("contacts", contact_id, {"jobtitle": "Edited"})
        for deal_id in emulator.ids("deals")[::10]:
            emulator.edit("deals", deal_id, {"dealname": "Edited"})
        before = sum(emulator.request_counts.values())
        changed = 0
        for page in conn.pull(dict(cursor)):
            changed += len(page.contacts) + len(page.deals)
        incremental_calls = sum(emulator.request_counts.values()) - before
    finally:
        server.stop()
    print(f"full pull: {pulled:,} records in {full_calls:,} calls = {1e4 * full_calls / pulled:,.0f} calls per 10,000 "
          "records")
    print(f"incremental pull: {changed:,} records (10% edited) in {incremental_calls:,} calls = "
          f"{1e4 * incremental_calls / changed:,.0f} calls per 10,000 records")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=40_000)
    n = parser.parse_args().contacts
    pull_calls(min(n, 20_000))
    data = generate(n, seed=1)

    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(), emulator=HubSpotEmulator(
        rate_limits=RateLimits.off(), validate_requests=False))
    try:
        conn = connector(server.url, emulator.token, 100_000)
        conn.ensure_fields(SPECS)
        started = time.perf_counter()
        pulled = sum(len(p.contacts) + len(p.deals) for p in conn.pull(None))
        pull_s = time.perf_counter() - started
        ids = emulator.ids("contacts")
        write_s = write(conn, ids)
    finally:
        server.stop()
    print(f"rate limit off: full pull of {pulled:,} records (contacts + deals + associations) in {pull_s:.2f} s = "
          f"{pulled / pull_s:,.0f} records/s, {1e6 * pull_s / pulled:.0f} µs/record")
    print(f"rate limit off: write of {len(ids):,} records in {write_s:.2f} s = {len(ids) / write_s:,.0f} records/s, "
          f"{1e6 * write_s / len(ids):.0f} µs/record (sandbox and client included)")

    m = min(n, 40_000)
    server, emulator = start_hubspot_sandbox(data.contact_records()[:m], (), emulator=HubSpotEmulator(
        rate_limits=RateLimits(per_window=100, window_seconds=10.0, daily=None), validate_requests=False))
    try:
        conn = connector(server.url, emulator.token, 100)
        conn.ensure_fields(SPECS)
        time.sleep(10.5)  # start the write with an empty window, as a sync does after its pull
        ids = emulator.ids("contacts")
        elapsed = write(conn, ids)
        throttled = sum(emulator.throttled.values())
    finally:
        server.stop()
    bound = 100 * 100 / 10
    rate = len(ids) / elapsed
    # The first window's 100 requests go out at once; the steady rate is what follows them.
    steady = (len(ids) - 100 * 100) / elapsed
    print(f"rate limit on (100 req / 10 s): write of {len(ids):,} records in {elapsed:.1f} s = {rate:,.0f} records/s "
          f"(steady state after the first window's burst: {steady:,.0f} records/s); bound {bound:,.0f} records/s; "
          f"steady ratio {steady / bound:.3f}; 429s received: {throttled}")


if __name__ == "__main__":
    main()
