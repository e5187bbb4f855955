"""The HubSpot connector through the official client against the HubSpot sandbox over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import FieldUpdate, Page
from connectors.hubspot import HubSpotConnector, format_value
from connectors.hubspot.pull import parse_entry
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, PROPERTY_TYPES, generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from connectors.transport import Limits, RateLimiter, Transport
from core.config import HubSpotConfig
from core.errors import DailyLimitReached
from core.fields import OUTPUT_FIELDS
from core.models import FieldSpec
from tests.sandbox_process import HubSpotProcess

SPECS = [s.model_copy(update={"options": ("lead", "customer")}) if s.name == "stage" else
         s.model_copy(update={"options": ("nurture", "onboard")}) if s.name == "next_best_action" else s
         for s in OUTPUT_FIELDS]
CONTACT_PROPS = sorted(PROPERTY_TYPES)
DEAL_PROPS = sorted(DEAL_PROPERTY_TYPES)


def connector(server: SandboxServer, emulator: HubSpotEmulator, *, per_10s: int = 1000, attempts: int = 6,
              concurrency: int = 4, daily: int = 10_000_000, sweep: int = 0) -> HubSpotConnector:
    return connector_at(server.url, emulator.token, per_10s=per_10s, attempts=attempts, concurrency=concurrency,
                        daily=daily, sweep=sweep)


def connector_at(url: str, token: str, *, per_10s: int = 1000, attempts: int = 6, concurrency: int = 4,
                 daily: int = 10_000_000, sweep: int = 0) -> HubSpotConnector:
    config = HubSpotConfig(base_url=url, requests_per_10s=per_10s, daily_limit=daily,
                           search_per_second=100, max_concurrency=concurrency, association_sweep_pages=sweep)
    transport = Transport(RateLimiter(Limits(per_10s, 10.0, daily)), attempts=attempts, concurrency=concurrency,
                          backoff_base=0.05)
    return HubSpotConnector(config, contact_properties=CONTACT_PROPS, deal_properties=DEAL_PROPS,
                            owned_fields=SPECS, token=token, transport=transport, timeout=2.0)


def pull_all(conn: HubSpotConnector, cursor: dict[str, str] | None) -> tuple[list[Page], dict[str, str]]:
    pages = list(conn.pull(cursor))
    new_cursor = dict(cursor or {})
    for page in pages:
        new_cursor.update(page.cursor)
    return pages, new_cursor


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[SandboxServer, HubSpotEmulator]]:
    data = generate(50_000, seed=11)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    yield server, emulator
    server.stop()


@pytest.mark.slow
def test_full_then_incremental_pull_of_50k_contacts(big: tuple[SandboxServer, HubSpotEmulator]) -> None:
    server, emulator = big
    conn = connector(server, emulator)
    pages, cursor = pull_all(conn, None)
    contacts = {c.id: c for p in pages for c in p.contacts}
    deals = {d.id: d for p in pages for d in p.deals}
    assert len(contacts) == 50_000 == sum(len(p.contacts) for p in pages), "each contact exactly once"
    assert set(deals) == set(emulator.ids("deals")) and len(deals) == sum(len(p.deals) for p in pages)
    assert set(cursor) == {"contacts", "deals"}
    # Ids, properties and associations equal the sandbox's records.
    for contact_id in list(contacts)[::997]:
        stored = emulator.record("contacts", contact_id)
        assert stored is not None
        for name in CONTACT_PROPS:
            assert contacts[contact_id].properties.get(name) == stored["properties"].get(name), name
    for deal_id in list(deals)[::499]:
        stored = emulator.record("deals", deal_id)
        assert stored is not None
        expected = [str(a["id"]) for a in stored["associations"]["contacts"]["results"]]
        assert sorted(deals[deal_id].contact_ids) == sorted(expected)
        assert deals[deal_id].amount == pytest.approx(float(stored["properties"]["amount"]))

    # 10,500 edits in a tight loop: many share a millisecond (ties at page boundaries) and together they
    # exceed the 10,000-result search cap, so the pull must re-window.
    edited = sorted(contacts, key=int)[:10_500]
    for contact_id in edited:
        emulator.edit("contacts", contact_id, {"jobtitle": "Chief Edits Officer"})
    deal_edits = list(deals)[:1_234]
    for deal_id in deal_edits:
        emulator.edit("deals", deal_id, {"dealname": "changed"})
    gone = edited[-1]
    emulator.delete("contacts", gone)
    pages, cursor2 = pull_all(conn, cursor)
    got = [c.id for p in pages for c in p.contacts]
    assert len(got) == len(set(got)), "no duplicates across windows"
    assert set(got) == set(edited) - {gone}
    assert {c.properties["jobtitle"] for p in pages for c in p.contacts} == {"Chief Edits Officer"}
    assert {d.id for p in pages for d in p.deals} == set(deal_edits)
    assert gone in {i for p in pages for i in p.deleted_contact_ids}
    assert parse_entry(cursor2["contacts"])["since"] >= parse_entry(cursor["contacts"])["since"]  # type: ignore[index]
    # Nothing changed since: an incremental pull returns nothing new, only the lookback window's records again,
    # unchanged (the mirror ignores a record it holds at the same modified time).
    before = {c.id: c.updated_at for p in pages for c in p.contacts}
    pages, _ = pull_all(conn, cursor2)
    again = {c.id: c.updated_at for p in pages for c in p.contacts}
    assert again.items() <= before.items()


def seeded(n: int, rate_limits: RateLimits, faults: FaultInjector | None = None
           ) -> tuple[SandboxServer, HubSpotEmulator, list[str]]:
    data = generate(n, seed=3)
    server, emulator = start_hubspot_sandbox(data.contact_records(), (), rate_limits=rate_limits, faults=faults)
    return server, emulator, emulator.ids("contacts")


def updates(ids: list[str], score: float = 50.0) -> list[FieldUpdate]:
    return [FieldUpdate(i, {"lead_score": score + (int(i) % 7), "stage": "lead"}) for i in ids]


def write_all(conn: HubSpotConnector, batch: list[FieldUpdate]) -> list[Any]:
    size = conn.batch_size
    chunks = [batch[i:i + size] for i in range(0, len(batch), size)]
    return [r for results in conn.transport.map(conn.write, chunks) for r in results]


@pytest.mark.slow
def test_rate_limited_write_of_20k_reaches_90_percent_of_the_bound() -> None:
    # The sandbox runs in its own process: in this one it would share the interpreter lock and the heap with
    # whatever the suite left alive, and the figure would measure that (see tests/sandbox_process.py).
    with HubSpotProcess(20_000, seed=3, rate_limits=RateLimits(per_window=100, window_seconds=10.0,
                                                               daily=None)) as sandbox:
        conn = connector_at(sandbox.url, sandbox.token, per_10s=100, concurrency=4)
        conn.ensure_fields(SPECS)
        started = time.monotonic()
        results = write_all(conn, updates(sandbox.ids))
        elapsed = time.monotonic() - started
        throttled, most_writes = sandbox.ask("throttled"), sandbox.ask("max_writes_per_record")
        violations = sandbox.ask("spec_violations")
    assert not violations, violations
    assert all(r.ok for r in results) and len(results) == 20_000
    bound = 100 * 100 / 10  # records/s = requests per window x batch size / window
    # The property calls of ensure_fields share the first window, so allow for them in the budget.
    throughput = 20_000 / elapsed
    assert throughput >= 0.9 * bound * (200 / 204), f"{throughput:.0f} records/s vs bound {bound:.0f}"
    assert sum(throttled.values()) == 0, "the limiter, not 429s, set the pace"
    assert most_writes == 1


def test_injected_5xx_timeouts_and_429_storms_cost_time_not_records() -> None:
    faults = FaultInjector(seed=5)
    faults.add(FaultRule(kind="status", status=502, rate=0.1, path_prefix="/crm/v3/objects/contacts/batch"))
    faults.add(FaultRule(kind="timeout", seconds=2.5, rate=0.05, path_prefix="/crm/v3/objects/contacts/batch"))
    faults.add(FaultRule(kind="drop", rate=0.03, path_prefix="/crm/v3/objects/contacts/batch"))
    faults.add(FaultRule(kind="status", status=429, rate=0.05, path_prefix="/crm/v3/objects/contacts/batch",
                         body={"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                               "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
                         headers={"Retry-After": "0.2"}))
    server, emulator, ids = seeded(3_000, RateLimits.off(), faults)
    try:
        conn = connector(server, emulator, attempts=8)
        conn.ensure_fields(SPECS)
        results = write_all(conn, updates(ids))
    finally:
        server.stop()
    assert [r.record_id for r in results] == ids and all(r.ok for r in results)
    assert conn.transport.stats.retries > 0 and conn.transport.stats.throttled > 0
    # A retried batch may land twice only if the first attempt was applied and its answer lost (timeout):
    # both carry the same values, so the record's final state is right; no record is written more than that.
    assert emulator.max_writes_per_record() <= 2
    for contact_id in ids[::150]:
        record = emulator.record("contacts", contact_id)
        assert record is not None and float(record["properties"]["clm_lead_score"]) == 50 + int(contact_id) % 7


def test_a_bad_value_is_isolated_and_the_other_99_are_written() -> None:
    server, emulator, ids = seeded(300, RateLimits.off())
    try:
        conn = connector(server, emulator)
        conn.ensure_fields(SPECS)
        batch = updates(ids[:100])
        batch[37] = FieldUpdate(ids[37], {"stage": "no-such-stage"})  # not an option of the enumeration
        emulator.delete("contacts", ids[60])
        before = sum(emulator.request_counts.values())
        results = conn.write(batch)
        calls = sum(emulator.request_counts.values()) - before
        healthy = conn.write(updates(ids[100:200]))
        healthy_calls = sum(emulator.request_counts.values()) - before - calls
    finally:
        server.stop()
    by_id = {r.record_id: r for r in results}
    assert [r.record_id for r in results] == [u.record_id for u in batch]
    assert not by_id[ids[37]].ok and "INVALID_OPTION" in (by_id[ids[37]].reason or "")
    assert by_id[ids[37]].field == "clm_stage" and not by_id[ids[37]].gone
    assert not by_id[ids[60]].ok and by_id[ids[60]].gone
    assert sum(r.ok for r in results) == 98
    assert calls <= 3, f"isolating one bad input took {calls} calls"
    assert healthy_calls == 1 and all(r.ok for r in healthy)


def test_daily_limit_stops_cleanly() -> None:
    server, emulator, ids = seeded(200, RateLimits(per_window=None, daily=5))
    try:
        conn = connector(server, emulator)
        with pytest.raises(DailyLimitReached) as info:
            for _ in range(10):
                conn.write(updates(ids[:10]))
    finally:
        server.stop()
    assert info.value.resets_at is not None and "resume" in (info.value.hint or "")
    assert emulator.throttled["DAILY"] <= 1, "no retry storm against a daily limit"


def test_fields_are_created_once_and_conflicts_are_reported() -> None:
    server, emulator, _ = seeded(10, RateLimits.off())
    try:
        conn = connector(server, emulator)
        first = {s.name: s.action for s in conn.ensure_fields(SPECS)}
        second = {s.name: s.action for s in conn.ensure_fields(SPECS)}
        more = [s.model_copy(update={"options": ("lead", "customer", "churned")}) if s.name == "stage" else s
                for s in SPECS]
        third = {s.name: s for s in conn.ensure_fields(more)}
        clash = FieldSpec(name="clv", type=OUTPUT_FIELDS[0].type, label="x", description="x", options=("a",))
        conflict = conn.ensure_fields([clash])[0]
    finally:
        server.stop()
    assert set(first.values()) == {"created"} and set(second.values()) == {"exists"}
    assert third["stage"].action == "updated" and "churned" in third["stage"].detail
    assert conflict.action == "conflict" and "left unchanged" in conflict.detail


def test_expired_token_is_reported_as_an_auth_error() -> None:
    from core.errors import AuthError

    server, emulator, ids = seeded(10, RateLimits.off())
    try:
        conn = connector(server, emulator)
        emulator.expire_token()
        with pytest.raises(AuthError, match="refused the token"):
            conn.write(updates(ids[:2]))
    finally:
        server.stop()


def test_value_formatting() -> None:
    by_name = {s.name: s for s in OUTPUT_FIELDS}
    assert format_value(by_name["clv"], 1234567.891234) == "1234567.8912"
    assert format_value(by_name["clv"], 1e-9) == "0"
    assert format_value(by_name["clv"], float("nan")) == ""
    from datetime import UTC, datetime

    assert format_value(by_name["computed_at"], datetime(2026, 1, 1, tzinfo=UTC)) == "1767225600000"


def test_oauth_access_token_is_refreshed_once_and_the_write_continues(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.sandbox.hubspot import connection_info

    server, emulator, ids = seeded(50, RateLimits.off())
    try:
        info = connection_info(server, emulator)
        monkeypatch.setenv("HS_CLIENT_ID", info["client_id"])
        monkeypatch.setenv("HS_CLIENT_SECRET", info["client_secret"])
        monkeypatch.setenv("HS_REFRESH", info["refresh_token"])
        config = HubSpotConfig(base_url=server.url, client_id_env="HS_CLIENT_ID", client_secret_env="HS_CLIENT_SECRET",
                               refresh_token_env="HS_REFRESH")
        conn = HubSpotConnector(config, owned_fields=SPECS, token=emulator.token,
                                transport=Transport(RateLimiter(Limits(1000, 10.0)), backoff_base=0.01))
        conn.ensure_fields(SPECS)
        emulator.expire_token()
        results = conn.write(updates(ids[:20]))
    finally:
        server.stop()
    assert all(r.ok for r in results)
    assert conn.transport.stats.reasons.get("401 token refreshed") == 1
