"""Runs read well (issue 16): true counts for an interrupted run, no plan line for a pull, `clm runs` in 80
columns with deals, and `clm runs show N` listing the rejected and conflicting records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import wiring
from cli.main import cli
from connectors.sandbox.faults import FaultRule
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from tests.projects import hubspot_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotEmulator]:
    data = generate(200, seed=3)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                             rate_limits=RateLimits.professional(), search_lag_ms=0)
    hubspot_project(tmp_path, monkeypatch, server.url, emulator.token, per_10s=190)
    yield emulator
    server.stop()


def test_a_killed_run_keeps_its_true_written_count(project: HubSpotEmulator, tmp_path: Path) -> None:
    config = wiring.load(tmp_path / "clm.toml")
    state = wiring.open_state(config)
    # What a process killed after its first batch leaves: a 'running' run with three planned, two settled.
    run_id = state.start_run("incremental", datetime.now(UTC))
    state.save_plan(run_id, [(str(i), {"lead_score": i}) for i in range(3)])
    state.settle_batch(run_id, {"0": {"lead_score": 0}, "1": {"lead_score": 1}}, [], [])
    state.close()
    assert CliRunner().invoke(cli, ["sync", "--dry-run"]).exit_code == 0
    history = {r["id"]: r for r in json.loads(CliRunner().invoke(cli, ["runs", "--json"]).stdout)}
    assert history[run_id]["status"] == "interrupted"
    assert history[run_id]["summary"]["written_records"] == 2
    assert history[run_id]["summary"]["planned_records"] == 3


def test_pull_prints_no_plan_line(project: HubSpotEmulator) -> None:
    pulled = CliRunner().invoke(cli, ["pull"])
    assert pulled.exit_code == 0, pulled.output
    assert "plan:" not in pulled.output and "wrote" not in pulled.output
    assert "pulled 200 contacts" in pulled.output


def test_runs_fit_80_columns_and_count_deals(project: HubSpotEmulator) -> None:
    assert CliRunner().invoke(cli, ["sync", "--dry-run"]).exit_code == 0
    assert CliRunner().invoke(cli, ["sync"]).exit_code == 0
    listing = CliRunner().invoke(cli, ["runs"], terminal_width=80)
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    assert all(len(line) <= 80 for line in lines), listing.output
    assert "…" not in listing.output, "nothing cut short"
    assert "deals" in lines[0] and "dry full" in listing.output and "full" in listing.output
    deals = json.loads(CliRunner().invoke(cli, ["runs", "--json"]).stdout)[-1]["summary"]["pulled_deals"]
    assert deals > 0 and f"{deals:,}" in listing.output


def test_runs_show_lists_rejected_and_conflicting_records(project: HubSpotEmulator) -> None:
    emulator = project
    assert CliRunner().invoke(cli, ["sync"]).exit_code == 0
    victim = emulator.ids("contacts")[7]
    emulator.edit("contacts", victim, {"clm_grade": "A", "hs_email_click": 50})
    emulator.bulk_edit("contacts", emulator.ids("contacts")[20:60], {"hs_email_click": 40})  # scores to write
    emulator.add_fault(FaultRule(kind="partial_failure", path_prefix="/crm/v3/objects/contacts/batch/update",
                                 count=1, body={"category": "VALIDATION_ERROR", "message": "Property values were "
                                                "not valid: clm_stage"}))
    second = json.loads(CliRunner().invoke(cli, ["sync", "--json"]).stdout)
    assert second["rejected_count"] >= 1 and second["conflicts"] >= 1, second
    run_id = second["run_id"]

    shown = CliRunner().invoke(cli, ["runs", "show", str(run_id)])
    assert shown.exit_code == 0, shown.output
    rejected = second["rejected"][0]["record_id"]
    assert any(line.startswith(f"  rejected {rejected}") and "not valid" in line for line in shown.output.splitlines())
    assert any(line.startswith(f"  conflict {victim} grade: CRM has 'A'") for line in shown.output.splitlines())

    detail = json.loads(CliRunner().invoke(cli, ["runs", "show", str(run_id), "--json"]).stdout)
    assert detail["status"] == second["status"] and detail["rejected"][0]["record_id"] == rejected
    assert any(c["record_id"] == victim for c in detail["conflicts"])
    # The next run's text output lists the conflict too, not only a count of them.
    again = CliRunner().invoke(cli, ["sync"])
    lines = again.output.splitlines()
    assert any(line.startswith(f"  conflict {victim} grade: CRM has A, we wrote ") for line in lines)
    missing = CliRunner().invoke(cli, ["runs", "show", "999"])
    assert missing.exit_code == 1 and "no run 999" in missing.output and "clm runs" in missing.output


def test_runs_show_lists_held_back_records_and_exports_every_kind(project: HubSpotEmulator, tmp_path: Path) -> None:
    emulator = project
    assert CliRunner().invoke(cli, ["sync"]).exit_code == 0
    emulator.bulk_edit("contacts", emulator.ids("contacts")[20:60], {"hs_email_click": 40})
    emulator.add_fault(FaultRule(kind="partial_failure", path_prefix="/crm/v3/objects/contacts/batch/update",
                                 count=1, body={"category": "VALIDATION_ERROR", "message": "Property values were "
                                                "not valid: clm_stage"}))
    second = json.loads(CliRunner().invoke(cli, ["sync", "--json"]).stdout)
    refused = {r["record_id"] for r in second["rejected"]}
    assert refused
    # The same values again: the CRM refused them for good, so the next run holds them back instead of resending.
    third = json.loads(CliRunner().invoke(cli, ["sync", "--json"]).stdout)
    assert third["held_back"] == len(refused), third
    shown = CliRunner().invoke(cli, ["runs", "show", str(third["run_id"]), "--export", "records.csv"])
    assert shown.exit_code == 0, shown.output
    assert {line.split()[2] for line in shown.output.splitlines() if line.startswith("  held back ")} == refused
    rows = (tmp_path / "records.csv").read_text().splitlines()
    assert rows[0] == "kind,record_id,field,detail"
    assert {row.split(",")[1] for row in rows[1:] if row.startswith("held_back,")} == refused
    assert all("not valid" in row for row in rows[1:])

    terse = CliRunner().invoke(cli, ["runs", "show", str(third["run_id"]), "--limit", "0"])
    assert f"… {len(refused):,} more held back (--export FILE writes the ones kept)" in terse.output
