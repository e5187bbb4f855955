"""HubSpot pull against the rate-limit bound, with 100 ms of injected latency per call and Professional limits.

The emulator enforces HubSpot Professional's limits (``RateLimits.professional()``: 190 requests per rolling 10 s
per private app, search 5 requests/s per account, not counted in the 10-s window; see
connectors/sandbox/hubspot/limits.py for the sources). The connector is configured with the same figures
(``hubspot.requests_per_10s = 190``, ``search_per_second = 5``; its defaults are Free/Starter's 100 and 5,
core/config.py ``HubSpotConfig``). Every request is answered 100 ms late (FaultInjector ``latency``).

Bounds (what the limits allow, whatever the latency):
- full pull (list pages of 100, deals with inline associations): 190 / 10 s = 19 calls/s, 1,900 records/s;
- incremental pull (search pages of 200): 5 searches/s = 1,000 records/s; the searched deals' association reads
  (one per 1,000 deals) come out of the 10-s window, which is not the binding limit.
The ratio printed is the busier limiter's calls per second over its bound. Each figure is measured side by side
with the same pull made one request at a time (``max_concurrency = 1``), on fresh emulators seeded alike.

The emulator's search index at 1,000,000 records: a sync alternates writes of a few records with search pages,
and each search settles the index first; the cost per settle is printed beside the same settle done as before
(drop the changed ids, re-sort the whole index).

Run: python bench/pull_hubspot.py [--contacts N] [--latency S] [--index-records N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from connectors.hubspot import HubSpotConnector
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.hubspot.store import Record, Table
from connectors.transport import Limits, RateLimiter, Transport
from core.config import HubSpotConfig

PER_10S, SEARCH_PER_S = 190, 5


def connector(url: str, token: str, concurrency: int) -> HubSpotConnector:
    config = HubSpotConfig(base_url=url, requests_per_10s=PER_10S, search_per_second=SEARCH_PER_S,
                           max_concurrency=concurrency, association_sweep_pages=0, search_lookback_seconds=0)
    transport = Transport(RateLimiter(Limits(PER_10S, 10.0, None)), concurrency=concurrency)
    return HubSpotConnector(config, contact_properties=sorted(PROPERTY_TYPES),
                            deal_properties=sorted(DEAL_PROPERTY_TYPES), token=token, transport=transport)


def calls(emulator: HubSpotEmulator) -> tuple[int, int]:
    """(search calls, other calls) so far."""
    counts = emulator.request_counts
    search = sum(v for k, v in counts.items() if k.endswith("/search"))
    return search, sum(counts.values()) - search


def measure(n: int, latency: float, concurrency: int) -> dict[str, float]:
    data = generate(n, seed=7)
    faults = FaultInjector()
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(), faults=faults,
                                             emulator=HubSpotEmulator(rate_limits=RateLimits.professional(),
                                                                      search_lag_ms=0, validate_requests=False))
    try:
        faults.add(FaultRule("latency", seconds=latency))
        conn = connector(server.url, emulator.token, concurrency)
        cursor: dict[str, str] = {}
        started = time.perf_counter()
        full_records = 0
        for page in conn.pull(None):
            cursor.update(page.cursor)
            full_records += len(page.contacts) + len(page.deals)
        full_s = time.perf_counter() - started
        full_search, full_other = calls(emulator)
        # A third of the contacts and half of the deals edited: the incremental pull is search-bound.
        faults.clear()
        for contact_id in emulator.ids("contacts")[::3]:
            emulator.edit("contacts", contact_id, {"jobtitle": "Edited"})
        for deal_id in emulator.ids("deals")[::2]:
            emulator.edit("deals", deal_id, {"dealname": "Edited"})
        time.sleep(10.5)  # an empty 10-s window, as a run some minutes later starts with
        faults.add(FaultRule("latency", seconds=latency))
        emulator.request_counts.clear()
        started = time.perf_counter()
        inc_records = 0
        for page in conn.pull(dict(cursor)):
            inc_records += len(page.contacts) + len(page.deals)
        inc_s = time.perf_counter() - started
        inc_search, inc_other = calls(emulator)
        throttled = sum(emulator.throttled.values())
    finally:
        server.stop()
    associations = emulator.request_counts["POST /crm/v4/associations/deals/contacts/batch/read"]
    return {"full_records": full_records, "full_s": full_s, "full_calls": full_search + full_other,
            "full_ratio": max(full_other / full_s / (PER_10S / 10), full_search / full_s / SEARCH_PER_S),
            "inc_records": inc_records, "inc_s": inc_s, "inc_search": inc_search, "inc_other": inc_other,
            "inc_ratio": max(inc_other / inc_s / (PER_10S / 10), inc_search / inc_s / SEARCH_PER_S),
            "associations": associations, "throttled": throttled}


def index_settles(n: int, rounds: int = 200, per_round: int = 25) -> tuple[float, float]:
    """Seconds per settle of ``per_round`` changed records in an index of ``n``, and per full re-sort."""
    table = Table("contacts")
    for i in range(n):
        record = Record(i + 1, 1_000, 1_000 + i)
        table.records[record.id] = record
    view = table.search
    view.rebuild(table)
    started = time.perf_counter()
    for r in range(rounds):
        for i in range(per_round):
            record = table.records[1 + (r * per_round + i) * 37 % n]
            view.changing(record, is_new=False, due=None)
            record.updated = 10 ** 7 + r * per_round + i
        view.settle(table, 0)
    settle = (time.perf_counter() - started) / rounds
    # The anchor: the same settle done as before, dropping the changed ids and re-sorting the whole index.
    started = time.perf_counter()
    for r in range(5):
        changed = np.arange(1 + r * per_round, 1 + (r + 1) * per_round, dtype=np.int64)
        keep = ~np.isin(view.ids, changed)
        mods = np.concatenate([view.mods[keep], changed + 2 * 10 ** 7])
        ids = np.concatenate([view.ids[keep], changed])
        order = np.lexsort((ids, mods))
        mods, ids = mods[order], ids[order]
    return settle, (time.perf_counter() - started) / 5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--index-records", type=int, default=1_000_000)
    args = parser.parse_args()
    settle, resort = index_settles(args.index_records)
    print(f"search index of {args.index_records:,} records: settle of 25 changes {settle * 1000:.2f} ms, as a "
          f"full re-sort (before) {resort * 1000:.1f} ms: {resort / settle:.1f}x faster")
    rows = [(label, measure(args.contacts, args.latency, c)) for label, c in (("one at a time", 1), ("concurrent", 4))]
    print(f"HubSpot Professional limits ({PER_10S} req / 10 s, search {SEARCH_PER_S}/s), {args.latency * 1000:.0f} ms "
          "latency per call")
    for label, r in rows:
        print(f"{label:>14}: full pull {r['full_records']:,.0f} records, {r['full_calls']:,.0f} calls in "
              f"{r['full_s']:.1f} s = {r['full_records'] / r['full_s']:,.0f} records/s, "
              f"{r['full_calls'] / r['full_s']:.1f} calls/s, ratio to bound {r['full_ratio']:.2f}")
        print(f"{'':>14}  incremental {r['inc_records']:,.0f} records, {r['inc_search']:,.0f} searches + "
              f"{r['inc_other']:,.0f} other calls ({r['associations']:,.0f} association reads) in {r['inc_s']:.1f} s "
              f"= {r['inc_records'] / r['inc_s']:,.0f} records/s, ratio to bound {r['inc_ratio']:.2f}; "
              f"429s {r['throttled']:,.0f}")
    base, new = rows[0][1], rows[1][1]
    print(f"concurrent / one at a time: full pull {base['full_s'] / new['full_s']:.2f}x faster, incremental "
          f"{base['inc_s'] / new['inc_s']:.2f}x faster")


if __name__ == "__main__":
    main()
