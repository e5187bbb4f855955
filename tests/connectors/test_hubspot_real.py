"""The HubSpot connector against the sandbox behaving as HubSpot really does: a lagging search index, many
records stamped at one millisecond, associations that page and change without touching the deal, and access
tokens that live 30 minutes. Each test fails against a connector that assumes the convenient behaviour
(cursor = highest modified time seen, offset paging, one 401-triggered refresh per run)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import FieldUpdate, Page
from connectors.hubspot import HubSpotConnector
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, connection_info
from connectors.sandbox.server import SandboxServer
from connectors.transport import Limits, RateLimiter, Transport
from core.config import HubSpotConfig
from core.fields import OUTPUT_FIELDS
from core.models import Contact, Deal, DealStatus

T0 = datetime(2026, 6, 1, tzinfo=UTC)


class Clock:
    """One settable wall clock for the emulator and the connector (seconds since the epoch)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def contacts(n: int) -> list[Contact]:
    return [Contact(id=str(101 + i), email=None, created_at=T0 - timedelta(days=400 - i % 300),
                    updated_at=T0 - timedelta(days=30), properties={"jobtitle": "Buyer"}) for i in range(n)]


def serve(emulator: HubSpotEmulator, n: int, deals: list[Deal] | None = None) -> SandboxServer:
    emulator.seed(contacts(n), deals or [])
    return SandboxServer(emulator).start()


def connector(server: SandboxServer, emulator: HubSpotEmulator, clock: Clock | None = None, *, lookback: int = 300,
              sweep: int = 0, **config: object) -> HubSpotConnector:
    cfg = HubSpotConfig(base_url=server.url, search_per_second=100, search_lookback_seconds=lookback,
                        association_sweep_pages=sweep, **config)
    transport = Transport(RateLimiter(Limits(10_000, 10.0)), backoff_base=0.01)
    extra = {"wall": clock} if clock is not None else {}
    return HubSpotConnector(cfg, contact_properties=["jobtitle"], owned_fields=OUTPUT_FIELDS, token=emulator.token,
                            transport=transport, timeout=5.0, **extra)  # type: ignore[arg-type]


def drain(pages: Iterator[Page], cursor: dict[str, str]) -> list[Page]:
    out = []
    for page in pages:
        cursor.update(page.cursor)
        out.append(page)
    return out


@contextmanager
def pulled_portal(n: int, lag_ms: int) -> Iterator[tuple[Clock, HubSpotEmulator, HubSpotConnector, dict[str, str]]]:
    """A portal of ``n`` contacts on a shared fake clock, fully pulled once; yields the cursor it stored."""
    clock = Clock(T0)
    emulator = HubSpotEmulator(rate_limits=RateLimits.off(), clock=clock, search_lag_ms=lag_ms)
    server = serve(emulator, n)
    try:
        conn = connector(server, emulator, clock)
        cursor: dict[str, str] = {}
        drain(conn.pull(None), cursor)
        yield clock, emulator, conn, cursor
    finally:
        server.stop()


def test_edits_just_before_and_during_a_pull_under_index_lag_arrive_by_the_next_pull() -> None:
    with pulled_portal(1_000, 5000) as (clock, emulator, conn, cursor):
        clock.advance(60)
        before = emulator.ids("contacts")[:50]
        for contact_id in before:  # edited in the 2.5 s before the sync starts, each indexed after its own delay
            emulator.edit("contacts", contact_id, {"jobtitle": "Edited before"})
            clock.advance(0.05)
        during = emulator.ids("contacts")[500:550]
        pages = conn.pull(dict(cursor))
        seen_now: list[str] = []
        for i, page in enumerate(pages):
            cursor.update(page.cursor)
            seen_now.extend(c.id for c in page.contacts)
            if i == 0:
                for contact_id in during:  # edited while the pull pages through the window
                    emulator.edit("contacts", contact_id, {"jobtitle": "Edited during"})
        hidden = set(before) - set(seen_now)
        assert hidden and hidden != set(before), "the index lag hid some (not all) of the edits from this pull"
        clock.advance(30)  # the next scheduled sync, once the index caught up
        got = {c.id: c.properties.get("jobtitle") for p in drain(conn.pull(dict(cursor)), cursor) for c in p.contacts}
    assert {i: got.get(i) for i in before} == dict.fromkeys(before, "Edited before")
    assert {i: got.get(i) for i in during} == dict.fromkeys(during, "Edited during")


def test_25000_contacts_stamped_at_one_millisecond_pull_incrementally() -> None:
    with pulled_portal(25_000, 0) as (clock, emulator, conn, cursor):
        clock.advance(600)
        emulator.bulk_edit("contacts", emulator.ids("contacts"), {"jobtitle": "Imported"})
        clock.advance(5)
        pages = drain(conn.pull(dict(cursor)), cursor)
    got = [c.id for p in pages for c in p.contacts]
    assert len(got) == len(set(got)) == 25_000
    assert {c.properties["jobtitle"] for p in pages for c in p.contacts} == {"Imported"}


def test_a_deal_with_more_contacts_than_one_association_page_keeps_them_all() -> None:
    emulator = HubSpotEmulator(rate_limits=RateLimits.off(), search_lag_ms=0, association_page_size=100)
    many = [str(101 + i) for i in range(730)]
    deal = Deal(id="9001", amount=10.0, status=DealStatus.WON, created_at=T0, closed_at=T0, contact_ids=tuple(many))
    server = serve(emulator, 730, [deal])
    try:
        conn = connector(server, emulator)
        cursor: dict[str, str] = {}
        full = [d for p in drain(conn.pull(None), cursor) for d in p.deals]
        emulator.edit("deals", full[0].id, {"dealname": "bumped"})
        incremental = [d for p in drain(conn.pull(dict(cursor)), cursor) for d in p.deals]
    finally:
        server.stop()
    assert sorted(full[0].contact_ids, key=int) == many, "list with inline associations follows their paging"
    assert sorted(incremental[0].contact_ids, key=int) == many, "v4 batch read follows per-input paging"


def test_a_reassociated_deal_is_attributed_to_its_new_contact_within_the_sweep() -> None:
    emulator = HubSpotEmulator(rate_limits=RateLimits.off(), search_lag_ms=0)
    deals = [Deal(id=str(5000 + i), amount=10.0, status=DealStatus.WON, created_at=T0, closed_at=T0,
                  contact_ids=(str(101 + i),)) for i in range(450)]
    server = serve(emulator, 450, deals)
    try:
        conn = connector(server, emulator, sweep=2)  # 200 deals re-read per incremental pull
        cursor: dict[str, str] = {}
        drain(conn.pull(None), cursor)
        moved = emulator.ids("deals")[300]
        old = emulator.record("deals", moved)["associations"]["contacts"]["results"][0]["id"]  # type: ignore[index]
        emulator.dissociate(moved, old)
        emulator.associate(moved, "101")
        attributed: dict[str, tuple[str, ...]] = {}
        for _ in range(3):  # ceil(450 / 200) runs cover every deal
            for page in drain(conn.pull(dict(cursor)), cursor):
                attributed.update({d.id: d.contact_ids for d in page.deals})
    finally:
        server.stop()
    assert attributed[moved] == ("101",)


def test_a_three_hour_oauth_run_refreshes_ahead_of_expiry_and_never_sees_a_401(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(T0)
    emulator = HubSpotEmulator(rate_limits=RateLimits.off(), clock=clock, search_lag_ms=0)
    server = serve(emulator, 200)
    try:
        info = connection_info(server, emulator)
        monkeypatch.setenv("HS_CLIENT_ID", info["client_id"])
        monkeypatch.setenv("HS_CLIENT_SECRET", info["client_secret"])
        monkeypatch.setenv("HS_REFRESH", info["refresh_token"])
        monkeypatch.delenv("HUBSPOT_TOKEN", raising=False)
        cfg = HubSpotConfig(base_url=server.url, client_id_env="HS_CLIENT_ID", client_secret_env="HS_CLIENT_SECRET",
                            refresh_token_env="HS_REFRESH")
        conn = HubSpotConnector(cfg, owned_fields=OUTPUT_FIELDS, clock=clock,
                                transport=Transport(RateLimiter(Limits(10_000, 10.0)), backoff_base=0.01))
        conn.ensure_fields(OUTPUT_FIELDS)
        ids = emulator.ids("contacts")
        for minute in range(180):
            clock.advance(60)
            results = conn.write([FieldUpdate(ids[minute % 200], {"lead_score": float(minute)})])
            assert results[0].ok
    finally:
        server.stop()
    assert conn.transport.stats.reasons.get("401 token refreshed") is None, "no request carried an expired token"
    # One refresh to start, then one every 25 minutes (5 minutes ahead of the 30-minute expiry).
    assert conn.client.refreshes == 8
    assert emulator.request_counts["POST /oauth/v3/token"] == 8


def test_the_daily_limit_resets_at_midnight_in_the_accounts_time_zone() -> None:
    from core.errors import DailyLimitReached

    emulator = HubSpotEmulator(rate_limits=RateLimits(per_window=None, daily=12, search_per_second=None),
                               time_zone="Asia/Tokyo", search_lag_ms=0)
    server = serve(emulator, 20)
    try:
        conn = connector(server, emulator)
        drain(conn.pull(None), {})  # a run reads when the day resets before it needs to know
        ids = emulator.ids("contacts")
        with pytest.raises(DailyLimitReached) as info:
            for _ in range(20):
                conn.write([FieldUpdate(ids[0], {"lead_score": 1.0})])
    finally:
        server.stop()
    assert info.value.resets_at == emulator.limiter.resets_at()
    assert info.value.resets_at is not None and info.value.resets_at.hour == 15  # midnight in Tokyo, in UTC


def test_an_incremental_pull_stopped_mid_window_resumes_from_its_page() -> None:
    with pulled_portal(1_000, 0) as (clock, emulator, conn, cursor):
        clock.advance(60)
        for contact_id in emulator.ids("contacts"):
            emulator.edit("contacts", contact_id, {"jobtitle": "Edited"})
            clock.advance(0.001)
        clock.advance(5)
        first: list[str] = []
        for page in conn.pull(dict(cursor)):  # stopped after two pages of 200 contacts
            cursor.update(page.cursor)  # deals' pages arrive interleaved (read concurrently)
            first.extend(c.id for c in page.contacts)
            if len(first) == 400:
                break
        rest = [c.id for p in drain(conn.pull(dict(cursor)), cursor) for c in p.contacts]
    assert len(first) == 400
    assert not set(first) & set(rest), "the resumed pull starts at the page it reached"
    assert sorted(first + rest, key=int) == emulator.ids("contacts")
