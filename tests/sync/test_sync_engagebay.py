"""The sync end to end against the EngageBay sandbox: what lands in the account equals ``enrich`` run directly,
diffs, a person's edits, hard deletes, faults, the time budget and kill -9."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from cli.demo import engagebay_demo_config
from cli.wiring import build_connector, connection_id
from connectors.sandbox.engagebay import EngageBayEmulator, start_engagebay_sandbox, throttle_burst
from connectors.sandbox.engagebay.store import seed_name
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.generator import GeneratedData, generate
from connectors.sandbox.server import SandboxServer
from core.engine import enrich
from core.models import Contact, Deal
from sync.planner import same
from sync.runner import SyncOptions, SyncRunner, output_specs
from sync.state import SQLiteState
from tests.sync.killing import KilledRuns


@dataclass
class Env:
    server: SandboxServer
    emulator: EngageBayEmulator
    data: GeneratedData
    root: Path

    def runner(self, per_minute: int = 60_000, **overrides: Any) -> SyncRunner:
        config = engagebay_demo_config(self.server.url, self.root / "state.db", requests_per_minute=per_minute)
        assert config.engagebay is not None
        engagebay = {k: overrides.pop(k) for k in list(overrides) if k in type(config.engagebay).model_fields}
        config = config.model_copy(update={"engagebay": config.engagebay.model_copy(update=engagebay)})
        if overrides:
            config = config.model_copy(update={"sync": config.sync.model_copy(update=overrides)})
        connector = build_connector(config, token=self.emulator.api_key)
        return SyncRunner(config, connector, SQLiteState(config.sync.state_path, connection_id(config)))


def start(tmp_path: Path, n: int, faults: FaultInjector | None = None, rate_limit: int | None = None) -> Env:
    data = generate(n, seed=21)
    server, emulator = start_engagebay_sandbox(data.contact_records(), data.deal_records(), faults=faults,
                                               emulator=EngageBayEmulator(rate_limit=rate_limit))
    return Env(server, emulator, data, tmp_path)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = start(tmp_path, 1_000)
    yield e
    e.server.stop()


def crm_state(emulator: EngageBayEmulator) -> dict[str, dict[str, str]]:
    """Our fields' texts on every contact (computed_at, the run's clock, left out)."""
    with emulator.account.lock:
        return {contact_id: {p["name"]: p["value"] for p in record["properties"]
                             if p["name"].startswith("clm_") and p["name"] != "clm_computed_at"}
                for contact_id, record in emulator.account.records["contacts"].items()}


def as_the_account_names_them(data: GeneratedData) -> tuple[list[Contact], list[Deal]]:
    """The generated records with their properties under the account's names (what the seed stored)."""
    contacts = [c.model_copy(update={"properties": {seed_name(k): v for k, v in c.properties.items()}})
                for c in data.contact_records()]
    deals = [d.model_copy(update={"properties": {seed_name(k): v for k, v in d.properties.items()}})
             for d in data.deal_records()]
    return contacts, deals


def assert_crm_equals_enrich(env: Env, runner: SyncRunner, tolerance: float = 1e-3) -> None:
    """Our fields in the account equal enrich run directly on the account's data (within ``tolerance``: after
    later runs, a number moved by less than the sync's numeric tolerance is rightly left as it was)."""
    contacts, deals = as_the_account_names_them(env.data)
    with env.emulator.account.lock:
        live = set(env.emulator.account.records["contacts"])
        live_deals = set(env.emulator.account.records["deals"])
    contacts = [c for c in contacts if c.id in live]
    deals = [d for d in deals if d.id in live_deals]
    direct = {r.contact_id: r for r in enrich(contacts, deals, runner.config, env.data.as_of).records()}
    specs = {s.name: s for s in output_specs(runner.config)}
    crm = crm_state(env.emulator)
    assert set(crm) == set(direct)
    dates = runner.connector.writer.dates  # type: ignore[attr-defined]
    for contact_id, props in crm.items():
        expected = direct[contact_id].model_dump()
        for name, spec in specs.items():
            if name == "computed_at" or expected[name] is None:
                continue
            text = props.get(f"clm_{name}")
            value: Any = dates.parse(text) if text and spec.type.value == "datetime" else text
            assert same(spec, value, expected[name], tolerance), (contact_id, name, text, expected[name])


def test_first_sync_writes_what_enrich_computes_and_the_second_writes_nothing(env: Env) -> None:
    runner = env.runner()
    first = runner.run(SyncOptions(as_of=env.data.as_of))
    assert first.status == "ok" and first.written_records == 1_000 and first.rejected_count == 0
    # One update-partial call per contact: EngageBay has no batch update.
    assert first.write_calls == 1_000 == env.emulator.total_writes()
    assert_crm_equals_enrich(env, runner)
    second = runner.run(SyncOptions(as_of=env.data.as_of))
    # Our own writes moved every contact's updated_time; re-read, they are recognised as ours, not as edits.
    assert second.write_calls == 0 and second.planned_records == 0
    # 50 people edited in the app: the next sync writes only what their edits changed.
    edited = env.emulator.ids("contacts")[:50]
    for contact_id in edited:
        env.emulator.edit("contacts", contact_id, {"email_click": 40, "num_conversion_events": 6})
    before = env.emulator.total_writes()
    third = runner.run(SyncOptions(as_of=env.data.as_of))
    assert third.pulled_contacts == 50 and third.written_records == third.planned_records > 0
    assert env.emulator.total_writes() - before == third.written_records
    assert runner.run(SyncOptions(as_of=env.data.as_of)).write_calls == 0


def test_a_value_edited_by_a_person_is_reported_not_overwritten(env: Env) -> None:
    runner = env.runner(on_conflict="report")
    runner.run(SyncOptions(as_of=env.data.as_of))
    victim = env.emulator.ids("contacts")[7]
    env.emulator.edit("contacts", victim, {"clm_grade": "A", "email_click": 50})
    summary = runner.run(SyncOptions(as_of=env.data.as_of))
    assert summary.conflicts >= 1 and any(c["record_id"] == victim for c in summary.conflict_samples)
    assert env.emulator.value(victim, "clm_grade") == "A"


def test_hard_deletes_between_runs_leave_the_mirror_with_the_sweep(env: Env) -> None:
    runner = env.runner(sweep_hours=0.0)
    runner.run(SyncOptions(as_of=env.data.as_of))
    gone = env.emulator.ids("contacts")[-30:]
    for contact_id in gone:
        env.emulator.delete("contacts", contact_id)
    for deal_id in env.emulator.ids("deals")[:40]:
        env.emulator.delete("deals", deal_id)
    summary = runner.run(SyncOptions(as_of=env.data.as_of))
    assert summary.status == "ok"
    assert runner.state.counts()["contacts"] == 1_000 - 30
    assert runner.state.counts()["deals"] == env.emulator.count("deals")
    # Deals deleted move their contacts' values; the account then equals enrich on what is left.
    assert_crm_equals_enrich(env, runner, 2 * runner.config.sync.numeric_tolerance)


def test_deleted_between_pull_and_write_loses_nothing(tmp_path: Path) -> None:
    e = start(tmp_path, 400)
    try:
        runner = e.runner()
        e.emulator.add_fault(FaultRule(kind="deleted_before_write", rate=0.03,
                                       path_prefix="/dev/api/panel/subscribers/update-partial"))
        summary = runner.run(SyncOptions(as_of=e.data.as_of))
        assert summary.status == "ok" and summary.gone > 0
        assert summary.written_records + summary.gone == 400
        assert runner.state.counts()["contacts"] == 400 - summary.gone
    finally:
        e.server.stop()


def test_429_storms_5xx_and_timeouts_end_in_the_clean_state(tmp_path: Path) -> None:
    clean = start(tmp_path / "clean", 500)
    try:
        runner = clean.runner()
        runner.run(SyncOptions(as_of=clean.data.as_of))
        expected = crm_state(clean.emulator)
    finally:
        clean.server.stop()
    faults = FaultInjector(seed=9)
    for kind, extra in (("status", {"status": 503}), ("timeout", {"seconds": 2.5}), ("drop", {})):
        # One call per contact written: per call rates lower than HubSpot's matrix (a batch of 100 per call), the
        # same share of failing records.
        faults.add(FaultRule(kind=kind, rate=0.03, path_prefix="/dev/api/panel/", **extra))  # type: ignore[arg-type]
    faults.add(throttle_burst(40, after=100))  # a storm in the middle of the writes
    faults.add(FaultRule(kind="status", status=429, rate=0.03, path_prefix="/dev/api/panel/subscribers",
                         body={"error": "Too many requests. Please try again later."}))
    # And the account's own limit (80 a second), under the pace the connector is told it may keep (100); whether
    # it is reached depends on how much the faults slow the run (tests/connectors/engagebay covers it alone).
    noisy = start(tmp_path / "noisy", 500, faults, rate_limit=400)
    noisy.emulator.rate_window = 5.0
    try:
        runner = noisy.runner(per_minute=6_000, throttle_pause_seconds=0.5)
        runner.connector.timeout = 2.0  # type: ignore[attr-defined]
        summary = runner.run(SyncOptions(as_of=noisy.data.as_of))
        assert summary.status == "ok" and summary.retries > 0 and summary.throttled > 40
        assert crm_state(noisy.emulator) == expected
    finally:
        noisy.server.stop()


def test_max_runtime_stops_at_a_checkpoint_and_the_next_run_finishes(tmp_path: Path) -> None:
    e = start(tmp_path, 800)
    try:
        e.runner().run(SyncOptions(as_of=e.data.as_of, dry_run=True))  # mirror built; the writes are what remain
        # 360 a minute is 60 calls per 10 s, some of them the pull's: the budget ends while the limiter holds the
        # next call back. The run stops then, mid-batch, keeping what it wrote, instead of waiting out the window.
        partial = e.runner(per_minute=360).run(SyncOptions(as_of=e.data.as_of, max_runtime=3.0))
        assert partial.status == "partial" and "will resume" in partial.message
        assert 0 < partial.written_records < 60 and partial.write_calls == partial.written_records
        assert partial.seconds < 3.0 + 2.0, "within its budget, not a rate-limit window later"
        done = e.runner().run(SyncOptions(as_of=e.data.as_of))
        assert done.status == "ok"
        assert e.emulator.total_writes() == 800 and e.emulator.max_writes_per_record() == 1
    finally:
        e.server.stop()


KILLED_RUN = textwrap.dedent("""
    import sys, json
    from pathlib import Path
    from datetime import datetime
    from cli.demo import engagebay_demo_config
    from cli.wiring import build_connector, connection_id
    from sync.runner import SyncOptions, SyncRunner
    from sync.state import SQLiteState
    url, key, root, as_of = sys.argv[1:5]
    config = engagebay_demo_config(url, Path(root) / "state.db", requests_per_minute=600)
    runner = SyncRunner(config, build_connector(config, token=key),
                        SQLiteState(config.sync.state_path, connection_id(config)))
    print(json.dumps(runner.run(SyncOptions(as_of=datetime.fromisoformat(as_of))).to_dict()["status"]))
""")


@pytest.mark.slow
def test_killed_at_ten_points_during_pull_and_writes_then_resumed(tmp_path: Path) -> None:
    e = start(tmp_path, 1_500)
    try:
        runs = KilledRuns(KILLED_RUN, tmp_path, e.server.url, e.emulator.api_key, str(tmp_path),
                          e.data.as_of.isoformat())
        # The first kills land in the first run's pull, the later ones in its writes: each process may send 600
        # calls at once, then waits for the minute to pass, so no single run writes everything before it dies.
        progress = [0]
        runs.kill_after((1.0, 1.6, 2.4, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.5),
                        observe=lambda: progress.append(e.emulator.total_writes()))
        assert any(a < b < 1_500 for a, b in pairwise(progress)), f"no kill landed mid-write: {progress}"
        runs.finish()
        runner = e.runner()
        assert runner.run(SyncOptions(as_of=e.data.as_of)).planned_records == 0
        # A call in flight when the process died was applied but not recorded: the resumed run re-reads the
        # contact, finds our values on it and does not send them again.
        assert e.emulator.max_writes_per_record() == 1, "a contact was written twice"
        assert e.emulator.total_writes() == 1_500
        assert_crm_equals_enrich(e, runner)
    finally:
        e.server.stop()
