"""Syncs against the HubSpot sandbox behaving as HubSpot really does: full pulls that outlive one run, and
merges that create a new record id."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from cli.demo import demo_config
from cli.wiring import build_connector, connection_id
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import Request, Response, SandboxServer
from core.models import FieldType
from sync.planner import same
from sync.runner import SyncOptions, SyncRunner, output_specs
from sync.state import SQLiteState


class Recorder:
    """Serves an emulator and remembers every request line (method, path, query)."""

    def __init__(self, emulator: HubSpotEmulator) -> None:
        self.emulator = emulator
        self.lines: list[tuple[str, str, dict[str, list[str]]]] = []

    def handle(self, request: Request) -> Response:
        self.lines.append((request.method, request.path, dict(request.query)))
        return self.emulator.handle(request)


def runner(url: str, token: str, state: Path, per_10s: int = 1000, **sync: Any) -> SyncRunner:
    config = demo_config(url, state)
    config = config.model_copy(update={"hubspot": config.hubspot.model_copy(
        update={"requests_per_10s": per_10s, "search_per_second": 50})})
    if sync:
        config = config.model_copy(update={"sync": config.sync.model_copy(update=sync)})
    return SyncRunner(config, build_connector(config, token=token),
                      SQLiteState(config.sync.state_path, connection_id(config)))


def test_a_full_pull_cut_three_times_resumes_from_the_page_it_reached(tmp_path: Path) -> None:
    data = generate(1_500, seed=5)
    emulator = HubSpotEmulator(rate_limits=RateLimits.off(), search_lag_ms=0)
    emulator.seed(data.contact_records(), data.deal_records())
    recorder = Recorder(emulator)
    server = SandboxServer(recorder).start()
    try:
        statuses = []
        for _ in range(3):
            # 20 requests per 10 s: each run reads a few pages before its 1.5 s budget runs out.
            slow = runner(server.url, emulator.token, tmp_path / "state.db", per_10s=20)
            statuses.append(slow.run(SyncOptions(as_of=data.as_of, max_runtime=1.5)))
        done = runner(server.url, emulator.token, tmp_path / "state.db").run(SyncOptions(as_of=data.as_of))
    finally:
        server.stop()
    assert [s.status for s in statuses] == ["partial"] * 3
    assert all(s.mode == "full" for s in statuses) and done.mode == "full" and done.status == "ok"
    assert done.mirror == {"contacts": emulator.count("contacts"), "deals": emulator.count("deals")}
    lists = Counter((path, (query.get("after") or [""])[0]) for method, path, query in recorder.lines
                    if method == "GET" and path in ("/crm/v3/objects/contacts", "/crm/v3/objects/deals")
                    and [v.lower() for v in query.get("archived", [])] != ["true"])
    assert lists and max(lists.values()) <= 2, f"list pages read more than twice: {lists.most_common(3)}"
    assert sum(s.pulled_contacts for s in statuses) > 0, "the cut runs made progress"


def test_a_pull_the_limiter_stops_before_the_deadline_computes_nothing(tmp_path: Path) -> None:
    # 12 requests per 10 s and a 4 s budget: the limiter refuses the 13th call at once (its wait would end past the
    # budget), well before the deadline itself. The mirror is incomplete: nothing may be planned or written from it.
    data = generate(1_500, seed=5)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    try:
        fast = runner(server.url, emulator.token, tmp_path / "state.db")
        fast.connector.ensure_fields(fast.specs)  # our fields exist: the budget goes to the pull
        fast.state.close()
        slow = runner(server.url, emulator.token, tmp_path / "state.db", per_10s=12)
        cut = slow.run(SyncOptions(as_of=data.as_of, max_runtime=4.0))
    finally:
        server.stop()
    assert cut.status == "partial" and "while pulling" in cut.message, cut.message
    assert cut.seconds < 4.0 and cut.planned_records == 0 and emulator.total_writes() == 0
    assert slow.state.stages() == {}, "no stages computed from a partial mirror"


def test_merged_buying_contacts_and_deals_end_as_a_fresh_full_pull_computes(tmp_path: Path) -> None:
    data = generate(800, seed=9)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    try:
        sync = runner(server.url, emulator.token, tmp_path / "state.db", on_conflict="report")
        assert sync.run(SyncOptions(as_of=data.as_of)).status == "ok"
        buyers = [c for c in emulator.ids("contacts")
                  if (emulator.record("contacts", c) or {}).get("associations", {}).get("deals")]
        survivors = [emulator.merge("contacts", buyers[2 * i], buyers[2 * i + 1]) for i in range(20)]
        deal_ids = emulator.ids("deals")
        merged_deals = [emulator.merge("deals", deal_ids[2 * i], deal_ids[2 * i + 1]) for i in range(5)]
        after = sync.run(SyncOptions(as_of=data.as_of))
        fresh = runner(server.url, emulator.token, tmp_path / "fresh.db")
        fresh.pull_only(full=True)
        expected = {r.contact_id: r for r in fresh.compute(data.as_of)[0].records()}
        crm = {c: (emulator.record("contacts", c) or {})["properties"] for c in survivors}
    finally:
        server.stop()
    assert after.status == "ok" and after.conflicts == 0, after.conflict_samples
    assert sync.state.counts() == fresh.state.counts()
    assert {d.id: sorted(d.contact_ids) for d in sync.state.deals()} == {
        d.id: sorted(d.contact_ids) for d in fresh.state.deals()}
    assert set(merged_deals) <= {d.id for d in sync.state.deals()}
    specs = {s.name: s for s in output_specs(sync.config)}
    for survivor in survivors:
        want = expected[survivor].model_dump()
        for name in ("stage", "historical_value", "clv"):
            if specs[name].type is FieldType.NUMBER or want[name] is not None:
                assert same(specs[name], crm[survivor].get(f"clm_{name}"), want[name], 1e-3), (survivor, name)


def test_a_run_as_of_a_year_ahead_is_refused_before_it_writes(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    import pytest

    from core.errors import UsageError

    data = generate(50, seed=2)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.off(), search_lag_ms=0)
    try:
        sync = runner(server.url, emulator.token, tmp_path / "state.db")
        with pytest.raises(UsageError, match="in the future"):
            sync.run(SyncOptions(as_of=datetime.now(UTC) + timedelta(days=365)))
    finally:
        server.stop()
    assert emulator.total_writes() == 0 and sync.state.runs() == []
