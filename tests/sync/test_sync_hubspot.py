"""The sync end to end against the HubSpot sandbox: what lands in the CRM, diffs, resume, faults."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.demo import demo_config
from cli.wiring import build_connector, connection_id
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.generator import GeneratedData, generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from core.engine import enrich
from core.models import FieldType
from sync.planner import same
from sync.runner import SyncOptions, SyncRunner, output_specs
from sync.state import SQLiteState
from tests.sync.killing import KilledRuns


@dataclass
class Env:
    server: SandboxServer
    emulator: HubSpotEmulator
    data: GeneratedData
    root: Path

    def runner(self, per_10s: int = 1000, native: bool = False, **overrides: object) -> SyncRunner:
        config = demo_config(self.server.url, self.root / "state.db")
        config = config.model_copy(update={"hubspot": config.hubspot.model_copy(
            update={"requests_per_10s": per_10s, "search_per_second": 50, "write_native_lifecyclestage": native})})
        if overrides:
            config = config.model_copy(update={"sync": config.sync.model_copy(update=overrides)})
        connector = build_connector(config, token=self.emulator.token)
        return SyncRunner(config, connector, SQLiteState(config.sync.state_path, connection_id(config)))


def start(tmp_path: Path, n: int, faults: FaultInjector | None = None, limits: RateLimits | None = None) -> Env:
    data = generate(n, seed=21)
    # Search sees edits at once here: these tests are about diffs and faults; the index lag has its own tests
    # (tests/connectors/test_hubspot_real.py).
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=limits or RateLimits.off(), faults=faults, search_lag_ms=0)
    return Env(server, emulator, data, tmp_path)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = start(tmp_path, 2_000)
    yield e
    e.server.stop()


def crm_state(emulator: HubSpotEmulator) -> dict[str, dict[str, str]]:
    out = {}
    for contact_id in emulator.ids("contacts"):
        record = emulator.record("contacts", contact_id) or {}
        out[contact_id] = {k: v for k, v in record.get("properties", {}).items()
                           if k.startswith("clm_") and k != "clm_computed_at"}
    return out


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = start(tmp_path_factory.mktemp("hubspot-50k"), 50_000)
    yield e
    e.server.stop()


@pytest.mark.slow
def test_first_sync_writes_what_enrich_computes_and_the_second_writes_nothing(large: Env) -> None:
    env = large
    runner = env.runner()
    runner.connector.ensure_fields(runner.specs)
    first = runner.run(SyncOptions(as_of=env.data.as_of))
    assert first.status == "ok" and first.written_records == 50_000 and first.rejected_count == 0
    # The values in the CRM equal enrich run directly on the same data.
    # HubSpot returns a deal's contacts in id order, so "primary" attribution means its lowest contact id there.
    deals = [d.model_copy(update={"contact_ids": tuple(sorted(d.contact_ids, key=int))})
             for d in env.data.deal_records()]
    direct = {r.contact_id: r for r in enrich(env.data.contact_records(), deals, runner.config,
                                              env.data.as_of).records()}
    specs = {s.name: s for s in output_specs(runner.config)}
    crm = crm_state(env.emulator)
    assert set(crm) == set(direct)
    for contact_id, props in crm.items():
        expected = direct[contact_id].model_dump()
        # Every field with a value is written (P(alive) has none before a first purchase).
        assert set(props) == {f"clm_{n}" for n in specs if n != "computed_at" and expected[n] is not None}
        for name, spec in specs.items():
            if name == "computed_at":
                continue
            assert same(spec, props.get(f"clm_{name}"), expected[name], 1e-3), (contact_id, name)
    second = runner.run(SyncOptions(as_of=env.data.as_of))
    assert second.write_calls == 0 and second.planned_records == 0
    # 500 people edited in the CRM: the next sync pulls only those and writes only what changed.
    edited = env.emulator.ids("contacts")[:500]
    for contact_id in edited:
        env.emulator.edit("contacts", contact_id, {"hs_email_click": 40, "num_conversion_events": 6})
    before = env.emulator.total_writes()
    third = runner.run(SyncOptions(as_of=env.data.as_of))
    assert third.pulled_contacts == 500 and third.pulled_deals == 0
    # Their scores change; the retrained conversion model and the CLV percentiles can move others too. Only
    # records with a value that really changed are written, and then nothing is left to write.
    assert third.written_records == third.planned_records > 0
    assert third.planned_fields["lead_score"] <= 500
    assert env.emulator.total_writes() - before == third.written_records
    assert runner.run(SyncOptions(as_of=env.data.as_of)).write_calls == 0


def test_a_value_edited_by_a_person_is_reported_not_overwritten(env: Env) -> None:
    runner = env.runner(on_conflict="report")
    runner.connector.ensure_fields(runner.specs)
    runner.run(SyncOptions(as_of=env.data.as_of))
    victim = env.emulator.ids("contacts")[7]
    env.emulator.edit("contacts", victim, {"clm_grade": "A", "hs_email_click": 50})
    summary = runner.run(SyncOptions(as_of=env.data.as_of))
    assert summary.conflicts >= 1 and any(c["record_id"] == victim for c in summary.conflict_samples)
    assert (env.emulator.record("contacts", victim) or {})["properties"]["clm_grade"] == "A"


def test_deleted_and_merged_between_pull_and_write_lose_nothing(tmp_path: Path) -> None:
    faults = FaultInjector()
    e = start(tmp_path, 600, faults)
    try:
        runner = e.runner()
        runner.connector.ensure_fields(runner.specs)
        e.emulator.add_fault(FaultRule(kind="deleted_before_write", rate=0.02,
                                       path_prefix="/crm/v3/objects/contacts/batch/update"))
        summary = runner.run(SyncOptions(as_of=e.data.as_of))
        assert summary.status == "ok" and summary.gone > 0
        assert summary.written_records + summary.gone == 600
        assert runner.state.counts()["contacts"] == 600 - summary.gone
    finally:
        e.server.stop()


def test_429_storms_5xx_and_timeouts_end_in_the_clean_state(tmp_path: Path) -> None:
    clean = start(tmp_path / "clean", 800)
    try:
        runner = clean.runner()
        runner.connector.ensure_fields(runner.specs)
        runner.run(SyncOptions(as_of=clean.data.as_of))
        expected = crm_state(clean.emulator)
    finally:
        clean.server.stop()
    faults = FaultInjector(seed=9)
    for kind, extra in (("status", {"status": 503}), ("timeout", {"seconds": 2.5}), ("drop", {})):
        faults.add(FaultRule(kind=kind, rate=0.08, path_prefix="/crm/v3/objects", **extra))  # type: ignore[arg-type]
    faults.add(FaultRule(kind="status", status=429, rate=0.1, path_prefix="/crm/v3/objects/contacts/batch",
                         body={"status": "error", "message": "ten secondly", "errorType": "RATE_LIMIT",
                               "policyName": "TEN_SECONDLY_ROLLING"}, headers={"Retry-After": "0.1"}))
    noisy = start(tmp_path / "noisy", 800, faults)
    try:
        runner = noisy.runner()
        runner.connector.ensure_fields(runner.specs)
        runner.connector.timeout = 2.0  # type: ignore[attr-defined]
        summary = runner.run(SyncOptions(as_of=noisy.data.as_of))
        assert summary.status == "ok" and summary.retries > 0
        assert crm_state(noisy.emulator) == expected
    finally:
        noisy.server.stop()


def test_daily_limit_mid_run_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    e = start(tmp_path, 1_500)
    try:
        runner = e.runner()
        runner.connector.ensure_fields(runner.specs)
        e.emulator.add_fault(FaultRule(kind="daily_limit", after=5, count=1_000_000,
                                       path_prefix="/crm/v3/objects/contacts/batch/update"))
        partial = runner.run(SyncOptions(as_of=e.data.as_of))
        assert partial.status == "partial" and "daily" in partial.message.lower()
        assert 0 < partial.written_records < 1_500
        e.emulator.clear_faults()
        e.emulator.reset_daily()  # midnight passed
        resumed = e.runner().run(SyncOptions(as_of=e.data.as_of))
        assert resumed.status == "ok"
        # Batches in flight when the limit hit were applied but not yet recorded: the resumed run finds their
        # values already in the CRM and does not send them again.
        assert partial.written_records + resumed.written_records + resumed.already_current >= 1_500
        assert e.emulator.total_writes() == 1_500 and e.emulator.max_writes_per_record() == 1
        assert all(props.get("clm_stage") for props in crm_state(e.emulator).values())
    finally:
        e.server.stop()


def test_max_runtime_stops_at_a_checkpoint_and_the_next_run_finishes(tmp_path: Path) -> None:
    e = start(tmp_path, 2_000)
    try:
        runner = e.runner()
        runner.connector.ensure_fields(runner.specs)
        runner.run(SyncOptions(as_of=e.data.as_of, dry_run=True))  # mirror built; the writes are what remain
        partial = e.runner(per_10s=5).run(SyncOptions(as_of=e.data.as_of, max_runtime=3.0))
        assert partial.status == "partial" and "will resume" in partial.message
        assert partial.written_records < 2_000
        done = e.runner().run(SyncOptions(as_of=e.data.as_of))
        assert done.status == "ok"
        assert e.emulator.total_writes() == 2_000 and e.emulator.max_writes_per_record() == 1
    finally:
        e.server.stop()


KILLED_RUN = textwrap.dedent("""
    import sys, json
    from pathlib import Path
    from datetime import datetime
    from cli.demo import demo_config
    from cli.wiring import build_connector, connection_id
    from sync.runner import SyncOptions, SyncRunner
    from sync.state import SQLiteState
    url, token, root, as_of = sys.argv[1:5]
    config = demo_config(url, Path(root) / "state.db")
    config = config.model_copy(update={"hubspot": config.hubspot.model_copy(update={"requests_per_10s": 50})})
    runner = SyncRunner(config, build_connector(config, token=token),
                        SQLiteState(config.sync.state_path, connection_id(config)))
    print(json.dumps(runner.run(SyncOptions(as_of=datetime.fromisoformat(as_of))).to_dict()["status"]))
""")


@pytest.mark.slow
def test_killed_at_random_points_during_writes_then_resumed(tmp_path: Path) -> None:
    e = start(tmp_path, 3_000)
    try:
        runner = e.runner()
        runner.connector.ensure_fields(runner.specs)
        runner.run(SyncOptions(as_of=e.data.as_of, dry_run=True))  # later runs pull incrementally: writes dominate
        runs = KilledRuns(KILLED_RUN, tmp_path, e.server.url, e.emulator.token, str(tmp_path),
                          e.data.as_of.isoformat())
        runs.kill_after((2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 2.8, 3.8, 4.8, 6.0))
        runs.finish()
        assert e.runner().run(SyncOptions(as_of=e.data.as_of)).planned_records == 0
        written = e.emulator.total_writes()
        assert e.emulator.max_writes_per_record() == 1, "a record was written twice"
        assert written == 3_000, "every record written exactly once across the killed runs"
        specs = {s.name: s for s in output_specs(e.runner().config)}
        assert specs["lead_score"].type is FieldType.NUMBER
        assert all(props.get("clm_stage") for props in crm_state(e.emulator).values())
    finally:
        e.server.stop()


def test_native_lifecyclestage_only_moves_forward(env: Env) -> None:
    from core.stages import is_forward_move

    before = {i: (env.emulator.record("contacts", i) or {})["properties"].get("lifecyclestage")
              for i in env.emulator.ids("contacts")}
    runner = env.runner(native=True)
    summary = runner.run(SyncOptions(as_of=env.data.as_of))
    assert summary.status == "ok" and summary.rejected_count == 0
    after = {i: (env.emulator.record("contacts", i) or {})["properties"].get("lifecyclestage") for i in before}
    moved = [i for i in before if after[i] != before[i]]
    assert moved, "some contacts moved forward"
    assert all(is_forward_move(before[i], after[i]) for i in moved), "never backwards"
    assert env.runner(native=True).run(SyncOptions(as_of=env.data.as_of)).write_calls == 0


def test_cdnow_through_the_sandbox_reproduces_the_published_bgnbd_fit(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from connectors.sandbox.cdnow import default_cdnow_path, load_cdnow

    path = default_cdnow_path()
    if path is None:
        pytest.skip("../shared/data/CDNOW_sample.txt is absent (a user's clone): the published-values check needs it")
    contacts, deals = load_cdnow(path)
    server, emulator = start_hubspot_sandbox(contacts, deals, rate_limits=RateLimits.off())
    try:
        env = Env(server, emulator, generate(1, seed=1), tmp_path)
        runner = env.runner()
        # Pull -> mirror -> enrich, as of the end of the 39-week calibration period (Fader, Hardie & Lee 2005).
        summary = runner.run(SyncOptions(as_of=datetime(1997, 9, 30, tzinfo=UTC), dry_run=True))
    finally:
        server.stop()
    assert summary.pulled_contacts == 2_357 and summary.pulled_deals == 6_919
    fit = summary.diagnostics["clv"]["bgnbd"]
    for name, published in (("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)):
        assert fit[name] == pytest.approx(published, abs=1e-3), name
    assert fit["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
