"""A dry run previews what it would change as reviewers of a reverse-ETL sync expect (issue 16): a few records
field by field old -> new, the plan's stage moves, and a plan export that carries the CRM's value beside ours."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from connectors.sandbox.generator import generate
from connectors.sandbox.hubspot import HubSpotEmulator, RateLimits, start_hubspot_sandbox
from tests.projects import hubspot_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotEmulator]:
    data = generate(150, seed=4)
    server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(), rate_limits=RateLimits.off())
    hubspot_project(tmp_path, monkeypatch, server.url, emulator.token)
    yield emulator
    server.stop()


def test_a_threshold_change_is_previewed_old_to_new_with_its_stage_moves(tmp_path: Path,
                                                                          project: HubSpotEmulator) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["sync"]).exit_code == 0
    writes = project.total_writes()
    config = tmp_path / "clm.toml"
    config.write_text(config.read_text().replace("mql_threshold = 40", "mql_threshold = 25"))

    preview = runner.invoke(cli, ["sync", "--dry-run", "--export-plan", "plan.csv"])
    assert preview.exit_code == 0, preview.output
    moves = json.loads(runner.invoke(cli, ["sync", "--dry-run", "--json"]).stdout)["stage_moves"]
    # A lower MQL bar promotes leads and subscribers whose score lies between the two thresholds, nobody else.
    assert moves and {m["to"] for m in moves} == {"marketing_qualified"}, moves
    assert {m["from"] for m in moves} <= {"subscriber", "lead"}
    lines = [" ".join(line.split()) for line in preview.output.splitlines()]
    assert "stage moves in this plan (CRM now → planned):" in lines
    for move in moves:
        assert f"{move['from']} → marketing_qualified {move['contacts']:,}" in lines
    assert any(f"stage {m['from']} → marketing_qualified" in preview.output for m in moves), "a sample, old -> new"

    rows = [r for r in csv.DictReader((tmp_path / "plan.csv").open(newline="")) if r["field"] == "stage"]
    assert len(rows) == sum(m["contacts"] for m in moves)
    assert {(r["old_value"], r["new_value"]) for r in rows} == {(m["from"], m["to"]) for m in moves}
    assert project.total_writes() == writes, "a dry run writes nothing"
