"""The HubSpot pull keeps the limiter busy: contacts and deals read concurrently, searched deals' associations
read 1,000 at a time, and a pull stopped at any page resumes with nothing skipped (official client, sandbox over
real HTTP)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connectors.base import Page
from connectors.hubspot import HubSpotConnector
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import Response, SandboxServer
from connectors.transport import Limits, RateLimiter, Transport
from core.config import HubSpotConfig

ASSOCIATION_READS = "POST /crm/v4/associations/deals/contacts/batch/read"


class InFlight(FaultInjector):
    """Counts requests the server is answering at once (each is held by an injected latency)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.most = 0
        self._count = threading.Lock()

    def before(self, method: str, path: str) -> Response | object | None:
        with self._count:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return super().before(method, path)
        finally:
            with self._count:
                self.now -= 1


def connector(server: SandboxServer, emulator: HubSpotEmulator, *, concurrency: int = 4, page: int = 100,
              search_page: int = 200) -> HubSpotConnector:
    config = HubSpotConfig(base_url=server.url, requests_per_10s=1000, search_per_second=100,
                           max_concurrency=concurrency, association_sweep_pages=0, page_size=page,
                           search_page_size=search_page, search_lookback_seconds=0)
    transport = Transport(RateLimiter(Limits(1000, 10.0, None)), concurrency=concurrency, backoff_base=0.05)
    return HubSpotConnector(config, contact_properties=sorted(PROPERTY_TYPES),
                            deal_properties=sorted(DEAL_PROPERTY_TYPES), token=emulator.token,
                            transport=transport, timeout=5.0)


@pytest.fixture(scope="module")
def portal() -> Iterator[tuple[SandboxServer, HubSpotEmulator, InFlight]]:
    data = generate(1000, seed=5)
    faults = InFlight()
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(), faults=faults,
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    yield server, emulator, faults
    server.stop()


def ids_of(pages: list[Page]) -> tuple[set[str], set[str]]:
    return ({c.id for p in pages for c in p.contacts}, {d.id for p in pages for d in p.deals})


def test_contacts_and_deals_are_read_at_the_same_time(portal: tuple[SandboxServer, HubSpotEmulator,
                                                                       InFlight]) -> None:
    server, emulator, faults = portal
    # 30 ms per call, as a far-away HubSpot would answer: a one-at-a-time pull never has two requests open.
    rule = faults.add(FaultRule("latency", seconds=0.03))
    try:
        faults.most = 0
        pages = list(connector(server, emulator).pull(None))
    finally:
        faults.clear()
    contacts, deals = ids_of(pages)
    assert contacts == set(emulator.ids("contacts")) and deals == set(emulator.ids("deals"))
    assert rule.fired > 20
    assert faults.most >= 2, "contacts and deals are listed concurrently"


def test_searched_deals_read_their_associations_a_thousand_at_a_time(
        portal: tuple[SandboxServer, HubSpotEmulator, InFlight]) -> None:
    server, emulator, _ = portal
    conn = connector(server, emulator)
    cursor: dict[str, str] = {}
    for page in conn.pull(None):
        cursor.update(page.cursor)
    edited = emulator.ids("deals")[:2400]
    for deal_id in edited:
        emulator.edit("deals", deal_id, {"dealname": "Edited"})
    before = emulator.request_counts[ASSOCIATION_READS]
    pages = list(conn.pull(cursor))
    reads = emulator.request_counts[ASSOCIATION_READS] - before
    deals = {d.id: d for p in pages for d in p.deals}
    assert set(edited) <= set(deals)
    # 2,400 deals in search pages of 200: one batch read per 1,000 (3), not one per search page (12).
    assert reads == 3
    assert all(deals[i].contact_ids for i in edited[:50]), "associations still arrive with their deals"


@pytest.mark.parametrize("stop_after", [1, 4, 9, 17])
def test_a_pull_stopped_at_any_page_resumes_with_nothing_skipped(
        portal: tuple[SandboxServer, HubSpotEmulator, InFlight], stop_after: int) -> None:
    server, emulator, _ = portal
    conn = connector(server, emulator, search_page=50)

    def run(cursor: dict[str, str], limit: int | None) -> tuple[list[Page], dict[str, str]]:
        pages: list[Page] = []
        stream = conn.pull(dict(cursor) or None)
        for page in stream:
            # The cursor of a page is stored only with the page (as the runner does), in arrival order.
            pages.append(page)
            cursor = {**cursor, **page.cursor}
            if limit is not None and len(pages) >= limit:
                stream.close()  # type: ignore[attr-defined]
                break
        return pages, cursor

    first, cursor = run({}, stop_after)
    rest, cursor = run(cursor, None)
    contacts, deals = ids_of(first + rest)
    assert contacts == set(emulator.ids("contacts")) and deals == set(emulator.ids("deals"))
    # Incremental: every edited record arrives across a stopped run and its resumption.
    edited_contacts = emulator.ids("contacts")[::3]
    edited_deals = emulator.ids("deals")[::2]
    for contact_id in edited_contacts:
        emulator.edit("contacts", contact_id, {"jobtitle": f"Edited {stop_after}"})
    for deal_id in edited_deals:
        emulator.edit("deals", deal_id, {"dealname": f"Edited {stop_after}"})
    first, cursor = run(cursor, stop_after)
    rest, cursor = run(cursor, None)
    contacts, deals = ids_of(first + rest)
    assert set(edited_contacts) <= contacts and set(edited_deals) <= deals
