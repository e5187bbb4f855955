"""The sync on the PostgreSQL state store (issue 15): selected by ``sync.state_url``, the same results as the file,
jobs of several portals sharing one database, and one portal's jobs excluded by an advisory lock.

The cluster is the session's throwaway one (tests/sync/conftest.py); without PostgreSQL or psycopg these skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import wiring
from cli.demo import demo_config
from cli.main import cli
from connectors.sandbox.faults import FaultInjector, FaultRule
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from connectors.sandbox.server import SandboxServer
from core.config import ClmConfig, parse_config
from core.engine import enrich
from core.errors import ConfigError, StateError
from sync.planner import same
from sync.runner import SyncOptions, SyncRunner, output_specs
from tests.sync.killing import KilledRuns
from tests.sync.test_sync_hubspot import crm_state

from .conftest import PASSWORD, PASSWORD_ROLE, PostgresCluster

REPO = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)  # the generator's


def sandbox(n: int, seed: int = 21, faults: FaultInjector | None = None) -> tuple[SandboxServer, HubSpotEmulator]:
    data = generate(n, seed=seed)
    return start_hubspot_sandbox(data.contact_records(), data.deal_records(), rate_limits=RateLimits.off(),
                                 faults=faults, search_lag_ms=0)


def config_for(server: SandboxServer, root: Path, url: str | None, per_10s: int = 1000) -> ClmConfig:
    config = demo_config(server.url, root / "state.db")
    return config.model_copy(update={
        "hubspot": config.hubspot.model_copy(update={"requests_per_10s": per_10s, "search_per_second": 50}),
        "sync": config.sync.model_copy(update={"state_url": url})})


def runner_for(config: ClmConfig, emulator: HubSpotEmulator) -> SyncRunner:
    return SyncRunner(config, wiring.build_connector(config, token=emulator.token), wiring.open_state(config))


def assert_crm_equals_enrich(emulator: HubSpotEmulator, config: ClmConfig, n: int, seed: int) -> None:
    """What the sync wrote equals ``enrich`` run directly on the portal's data (as tests/sync/test_sync_hubspot)."""
    data = generate(n, seed=seed)
    # HubSpot returns a deal's contacts in id order, so "primary" attribution means its lowest contact id there.
    deals = [d.model_copy(update={"contact_ids": tuple(sorted(d.contact_ids, key=int))})
             for d in data.deal_records()]
    direct = {r.contact_id: r for r in enrich(data.contact_records(), deals, config, data.as_of).records()}
    specs = {s.name: s for s in output_specs(config) if s.name != "computed_at"}
    crm = crm_state(emulator)
    assert set(crm) == set(direct)
    for contact_id, props in crm.items():
        expected = direct[contact_id].model_dump()
        assert set(props) == {f"clm_{n}" for n in specs if expected[n] is not None}
        for name, spec in specs.items():
            assert same(spec, props.get(f"clm_{name}"), expected[name], 1e-3), (contact_id, name)


def test_a_state_url_with_a_password_or_another_scheme_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"sync": {"state_url": "postgresql://clm:hunter2pass@db.internal/clm"}})
    assert "state_password_env" in str(raised.value) and "hunter2pass" not in str(raised.value)
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL"):
        parse_config({"sync": {"state_url": "sqlite:///state.db"}})


def test_without_psycopg_the_configured_store_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "sync.state_postgres", None)  # import fails as if psycopg were missing
    config = ClmConfig().model_copy(update={"sync": ClmConfig().sync.model_copy(
        update={"state_url": "postgresql://clm@db.internal/clm"})})
    with pytest.raises(StateError, match="psycopg is not installed") as raised:
        wiring.open_state(config)
    assert "crm-lifecycle[postgres]" in (raised.value.hint or "")


def test_an_unreachable_database_is_a_state_error_naming_the_server(postgres: PostgresCluster) -> None:
    from sync.state_postgres import PostgresState

    with pytest.raises(StateError, match="cannot connect to the PostgreSQL state store") as raised:
        PostgresState(postgres.url("no_such_database"), "x")
    assert "sync.state_url" in (raised.value.hint or "")


def test_clm_check_shows_the_store_without_credentials_and_the_password_comes_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres: PostgresCluster) -> None:
    server, emulator = sandbox(50)
    try:
        url = postgres.url(postgres.new_database(owner=PASSWORD_ROLE), user=PASSWORD_ROLE)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("HUBSPOT_TOKEN", emulator.token)
        assert CliRunner().invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
        path = tmp_path / "clm.toml"
        text = path.read_text().replace('base_url = "https://api.hubapi.com"', f'base_url = "{server.url}"')
        path.write_text(text.replace("[sync]", f'[sync]\nstate_url = "{url}"\nstate_password_env = "PG_SECRET"', 1))
        monkeypatch.delenv("PG_SECRET", raising=False)
        monkeypatch.delenv("PGPASSWORD", raising=False)
        refused = {c["name"]: c for c in json.loads(CliRunner().invoke(cli, ["check", "--json"]).stdout)["checks"]}
        assert not refused["state store"]["ok"] and "PG_SECRET" in refused["state store"]["fix"]
        monkeypatch.setenv("PG_SECRET", PASSWORD)
        result = CliRunner().invoke(cli, ["check", "--json"])
        checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        assert checks["state store"]["ok"], checks["state store"]
        assert checks["state store"]["detail"] == url.replace(f"{PASSWORD_ROLE}@", "")
        assert PASSWORD not in result.output and PASSWORD_ROLE not in result.output
    finally:
        server.stop()


def test_two_portals_sync_at_once_into_one_database_each_as_enrich_computes(
        tmp_path: Path, postgres: PostgresCluster) -> None:
    url = postgres.url(postgres.new_database())
    portals = [(sandbox(400, seed=21), 400, 21), (sandbox(300, seed=22), 300, 22)]
    try:
        runners = [runner_for(config_for(server, tmp_path / str(i), url), emulator)
                   for i, ((server, emulator), _, _) in enumerate(portals)]
        assert runners[0].state.location == runners[1].state.location
        for runner in runners:
            runner.connector.ensure_fields(runner.specs)
        results: dict[int, object] = {}

        def job(i: int) -> None:
            results[i] = runners[i].run(SyncOptions(as_of=AS_OF))

        threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i, ((_, emulator), n, seed) in enumerate(portals):
            summary = results[i]
            assert summary.status == "ok" and summary.written_records == n, summary  # type: ignore[attr-defined]
            assert runners[i].state.counts()["contacts"] == n, "each job sees its own portal's mirror only"
            assert_crm_equals_enrich(emulator, runners[i].config, n, seed)
            assert [r.id for r in runners[i].state.runs()] == [summary.run_id]  # type: ignore[attr-defined]
        for runner in runners:
            again = runner.run(SyncOptions(as_of=AS_OF))
            assert again.status == "ok" and again.write_calls == 0 and again.planned_records == 0
    finally:
        for (server, _), _, _ in portals:
            server.stop()


HOLDER = textwrap.dedent("""
    import sys, time
    from sync.state_postgres import PostgresState
    state = PostgresState(sys.argv[1], sys.argv[2])
    with state.run_lock():
        print("held", flush=True)
        time.sleep(600)
""")


def test_one_portals_second_job_is_refused_naming_the_holder_until_it_is_killed(
        tmp_path: Path, postgres: PostgresCluster) -> None:
    from sync.state_postgres import PostgresState

    url = postgres.url(postgres.new_database())
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, "hubspot:a"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        same_portal, other_portal = PostgresState(url, "hubspot:a"), PostgresState(url, "hubspot:b")
        with pytest.raises(StateError, match=f"pid {holder.pid} on ") as raised, same_portal.run_lock():
            pass
        assert "hubspot:a" in str(raised.value) and "killed" in (raised.value.hint or "")
        with other_portal.run_lock():  # another portal's job is not held up
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # The server ends the killed process's session when it sees the socket closed: the lock is free then.
        for _ in range(100):
            try:
                with same_portal.run_lock() as lock:
                    assert lock.recovered_from is not None and lock.recovered_from["pid"] == holder.pid
                break
            except StateError:
                time.sleep(0.1)
        else:
            pytest.fail("the lock of a killed holder was not released")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_429_storms_5xx_and_timeouts_end_in_the_state_the_sqlite_file_reaches(
        tmp_path: Path, postgres: PostgresCluster) -> None:
    server, emulator = sandbox(800)
    try:
        runner = runner_for(config_for(server, tmp_path / "clean", None), emulator)
        runner.connector.ensure_fields(runner.specs)
        runner.run(SyncOptions(as_of=AS_OF))
        expected = crm_state(emulator)
    finally:
        server.stop()
    faults = FaultInjector(seed=9)
    for kind, extra in (("status", {"status": 503}), ("timeout", {"seconds": 2.5}), ("drop", {})):
        faults.add(FaultRule(kind=kind, rate=0.08, path_prefix="/crm/v3/objects", **extra))  # type: ignore[arg-type]
    faults.add(FaultRule(kind="status", status=429, rate=0.1, path_prefix="/crm/v3/objects/contacts/batch",
                         body={"status": "error", "message": "ten secondly", "errorType": "RATE_LIMIT",
                               "policyName": "TEN_SECONDLY_ROLLING"}, headers={"Retry-After": "0.1"}))
    server, emulator = sandbox(800, faults=faults)
    try:
        runner = runner_for(config_for(server, tmp_path / "noisy", postgres.url(postgres.new_database())), emulator)
        runner.connector.ensure_fields(runner.specs)
        runner.connector.timeout = 2.0  # type: ignore[attr-defined]
        summary = runner.run(SyncOptions(as_of=AS_OF))
        assert summary.status == "ok" and summary.retries > 0
        assert crm_state(emulator) == expected
    finally:
        server.stop()


KILLED_RUN = textwrap.dedent("""
    import sys, json
    from pathlib import Path
    from datetime import datetime
    from cli import wiring
    from cli.demo import demo_config
    from sync.runner import SyncOptions, SyncRunner
    url, token, root, as_of, state_url = sys.argv[1:6]
    config = demo_config(url, Path(root) / "state.db")
    config = config.model_copy(update={"hubspot": config.hubspot.model_copy(update={"requests_per_10s": 20}),
                                       "sync": config.sync.model_copy(update={"state_url": state_url})})
    runner = SyncRunner(config, wiring.build_connector(config, token=token), wiring.open_state(config))
    print(json.dumps(runner.run(SyncOptions(as_of=datetime.fromisoformat(as_of))).to_dict()["status"]))
""")


@pytest.mark.slow
def test_killed_during_writes_then_resumed_writes_every_record_once(tmp_path: Path,
                                                                     postgres: PostgresCluster) -> None:
    n = 1_200
    server, emulator = sandbox(n)
    state_url = postgres.url(postgres.new_database())
    try:
        config = config_for(server, tmp_path, state_url)
        runner = runner_for(config, emulator)
        runner.connector.ensure_fields(runner.specs)
        runner.run(SyncOptions(as_of=AS_OF, dry_run=True))  # mirror built: writes remain
        runner.state.close()
        runs = KilledRuns(KILLED_RUN, tmp_path, server.url, emulator.token, str(tmp_path), AS_OF.isoformat(),
                          state_url)
        # Each run is killed once it has written another 100 to 199 records (a batch is 100): mid-write, whatever
        # the machine's load, and with writes left for the next run.
        marks = [100 * k for k in range(1, 5)]
        runs.kill_when(lambda mark=mark: emulator.total_writes() >= mark for mark in marks)
        assert emulator.total_writes() < n, "writes were left for the last run"
        runs.finish()
        assert runner_for(config, emulator).run(SyncOptions(as_of=AS_OF)).planned_records == 0
        assert emulator.max_writes_per_record() == 1, "a record was written twice"
        assert emulator.total_writes() == n, "every record written exactly once across the killed runs"
        assert all(props.get("clm_stage") for props in crm_state(emulator).values())
    finally:
        server.stop()


def test_a_changed_url_takes_over_its_state_in_the_shared_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres: PostgresCluster) -> None:
    # In a shared database a new URL is a new connection id (another portal is a legitimate new job), so a
    # corrected base_url would start from nothing; `clm state rebind --from` hands it the old id's state.
    server, emulator = sandbox(60)
    other, other_emulator = sandbox(30, seed=4)  # another portal's job in the same database
    try:
        url = postgres.url(postgres.new_database())
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("HUBSPOT_TOKEN", emulator.token)
        assert CliRunner().invoke(cli, ["init", "--crm", "hubspot"]).exit_code == 0
        path = tmp_path / "clm.toml"
        starter = path.read_text().replace("[sync]", f'[sync]\nstate_url = "{url}"', 1)

        def point_at(base_url: str) -> None:
            path.write_text(starter.replace('base_url = "https://api.hubapi.com"', f'base_url = "{base_url}"'))

        point_at(other.url)
        monkeypatch.setenv("HUBSPOT_TOKEN", other_emulator.token)
        assert CliRunner().invoke(cli, ["sync"]).exit_code == 0
        monkeypatch.setenv("HUBSPOT_TOKEN", emulator.token)
        point_at(server.url)
        first = CliRunner().invoke(cli, ["sync", "--json"])
        assert first.exit_code == 0 and json.loads(first.stdout)["written_records"] == 60, first.output
        old = wiring.connection_id(wiring.load(path))
        point_at(server.url.replace("127.0.0.1", "localhost"))  # the same portal under another spelling
        listed = json.loads(CliRunner().invoke(cli, ["state", "rebind", "--json"]).stdout)
        assert {c["connection"]: c["contacts"] for c in listed["connections"]}[old] == 60
        assert CliRunner().invoke(cli, ["state", "rebind", "--from", old]).exit_code == 2, "needs --yes"
        moved = CliRunner().invoke(cli, ["state", "rebind", "--from", old, "--yes", "--json"])
        assert moved.exit_code == 0, moved.output
        assert json.loads(moved.stdout)["contacts"] == 60
        again = json.loads(CliRunner().invoke(cli, ["sync", "--json"]).stdout)
        assert again["status"] == "ok" and again["write_calls"] == 0 and again["mode"] == "incremental", again
        runs = json.loads(CliRunner().invoke(cli, ["runs", "--json"]).stdout)
        assert len(runs) == 2, "the run history came along"
        moved_to = wiring.connection_id(wiring.load(path))
        # The other portal's state is untouched, and it cannot take over a state while it has its own.
        point_at(other.url)
        monkeypatch.setenv("HUBSPOT_TOKEN", other_emulator.token)
        assert len(json.loads(CliRunner().invoke(cli, ["runs", "--json"]).stdout)) == 1
        mixed = CliRunner().invoke(cli, ["state", "rebind", "--from", moved_to, "--yes"])
        assert mixed.exit_code != 0 and "already has a state of its own" in mixed.output, mixed.output
        gone = CliRunner().invoke(cli, ["state", "rebind", "--from", old, "--yes"])
        assert gone.exit_code != 0 and "holds no state of" in gone.output, gone.output
    finally:
        server.stop()
        other.stop()
